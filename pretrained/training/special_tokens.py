"""`align_special_tokens`: make a model's config agree with its tokenizer's special tokens before
training, as transformers' `Trainer.train` does (a tokenizer given a new pad / bos / eos token for
fine-tuning; the saved `config.json` and `generation_config.json` then say so too)."""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)


def _align(name: str, tokenizer: Any, config: Any, generation: Any, changed: dict[str, Any], several: bool) -> None:
    token_id = getattr(tokenizer, name, None)
    if token_id is None:  # a token the tokenizer lacks says nothing about the config's value
        return
    held = getattr(config, name, None)
    keeps_list = isinstance(held, list)
    held_ids = held if keeps_list else [held]
    gen_ids = getattr(generation, name, None) if generation is not None else None
    gen_ids = gen_ids if isinstance(gen_ids, list) else [gen_ids]
    if token_id in held_ids and (generation is None or token_id in gen_ids):
        return
    changed[name] = token_id
    # several stop (eos) tokens: only ever add one, so no stop token is lost
    setattr(config, name, [token_id, *(t for t in held_ids if t != token_id)] if several and keeps_list else token_id)
    if generation is not None:
        value = [token_id, *(t for t in gen_ids if t is not None and t != token_id)] if several else token_id
        setattr(generation, name, value)


def align_special_tokens(model: Any, processing_class: Any) -> None:
    """Copy the tokenizer's eos / bos / pad ids into `model.config` (its text config) and its
    `generation_config` where they differ, with a warning naming what changed.

    Args:
        model: A model with a `config` (and optionally a `generation_config`).
        processing_class: A tokenizer, or a processor holding one as `.tokenizer`.
    """
    tokenizer = getattr(processing_class, "tokenizer", processing_class)
    config = model.config
    if hasattr(config, "get_text_config"):
        config = config.get_text_config()
    generation = getattr(model, "generation_config", None)
    changed: dict[str, Any] = {}
    _align("eos_token_id", tokenizer, config, generation, changed, several=True)
    _align("bos_token_id", tokenizer, config, generation, changed, several=False)
    _align("pad_token_id", tokenizer, config, generation, changed, several=False)
    if changed:
        logger.warning(
            "The tokenizer has PAD/BOS/EOS tokens that differ from the model config and generation config; "
            f"both were updated with the tokenizer's values: {changed}."
        )
