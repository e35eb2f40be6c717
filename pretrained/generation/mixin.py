"""``GenerationMixin``: what makes a causal language model able to ``generate``.

Model classes that generate (``...ForCausalLM``, ``GPT2LMHeadModel``) list it before their pretrained
base, as in transformers. It is the one piece of the generation package a model file imports: the base
class in ``pretrained.modeling`` only declares the hooks it overrides (``_default_generation_config``,
``_load_generation_config``, ``generate``), so the building blocks never import generation.
"""

from __future__ import annotations

from typing import Any

import torch

from pretrained.generation.configuration_utils import GenerationConfig


class GenerationMixin:
    """``generate()``, the model's ``generation_config``, and the inputs of each decode step."""

    def _default_generation_config(self) -> GenerationConfig:
        return GenerationConfig.from_model_config(self.config)

    def _load_generation_config(self, path: Any, hub: dict[str, Any]) -> None:
        from pretrained.hub import cached_file

        file = cached_file(path, "generation_config.json", raise_if_missing=False, **hub)
        if file is not None:
            self.generation_config = GenerationConfig.from_pretrained(file)

    # The function generate() runs, as "module:function". A family with its own decoding (Whisper) names
    # its own here, so its model file still imports nothing of generation but this mixin.
    _generate_entry: str = "pretrained.generation.utils:generate"

    def generate(self, *args: Any, **kwargs: Any) -> Any:
        """Generate token ids; see :func:`pretrained.generation.utils.generate` for the arguments."""
        import importlib

        module, _, name = self._generate_entry.partition(":")
        return getattr(importlib.import_module(module), name)(self, *args, **kwargs)

    def prepare_inputs_for_generation(
        self,
        input_ids: torch.LongTensor,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        cache_position: torch.LongTensor | None = None,
        **kwargs: Any,
    ) -> dict[str, Any]:
        """Inputs for the next forward: only the tokens the cache has not seen yet."""
        past = past_key_values.get_seq_length() if hasattr(past_key_values, "get_seq_length") else 0
        if past:
            input_ids = input_ids[:, past:]
        if position_ids is None and attention_mask is not None:
            position_ids = (attention_mask.long().cumsum(-1) - 1).masked_fill(attention_mask == 0, 0)
        if position_ids is not None:
            position_ids = position_ids[:, -input_ids.shape[1] :]
        return {
            "input_ids": input_ids,
            "past_key_values": past_key_values,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "cache_position": cache_position,
            "use_cache": kwargs.get("use_cache", True),
        }
