"""Text generation: GenerationConfig, logits processors, stopping criteria, streamers and ``generate``."""
