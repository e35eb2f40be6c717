"""``text-generation``: continue prompts or chats with a causal language model."""

from __future__ import annotations

import copy
import enum
from typing import Any

import torch

from .base import Chat, Pipeline

# Defaults for what neither the call nor the model's generation_config sets (transformers' values).
_GENERATION_DEFAULTS = {"max_new_tokens": 256, "do_sample": True, "temperature": 0.7}
_SAMPLING_PARAMS = {"temperature", "top_k", "top_p", "min_p", "top_h", "typical_p", "epsilon_cutoff", "eta_cutoff"}


class ReturnType(enum.Enum):
    TENSORS = 0
    NEW_TEXT = 1
    FULL_TEXT = 2


def _generation_fields() -> set[str]:
    from pretrained.generation.configuration_utils import _FIELDS

    return {*_FIELDS, "generation_config"}


class TextGenerationPipeline(Pipeline):
    """Generate text with ``...ForCausalLM`` / ``...LMHeadModel`` models.

    Inputs: a prompt, a list of prompts, a chat (list of ``{"role", "content"}`` messages, rendered with
    the tokenizer's chat template) or a list of chats. Each input gets a list of
    ``{"generated_text": ...}`` records (one per returned sequence): the prompt plus its continuation
    (``return_full_text=False``: the continuation only; ``return_tensors=True``:
    ``{"generated_token_ids": [...]}``). For chats the text is the conversation with the assistant's
    reply appended (or the final message continued, ``continue_final_message``).

    Any ``generate`` argument may be given (``max_new_tokens``, ``do_sample``, ``num_return_sequences``,
    ...). Unless the model's ``generation_config.json`` says otherwise, the pipeline uses
    ``max_new_tokens=256, do_sample=True, temperature=0.7`` as transformers does. Other parameters:
    ``prefix`` (text put before every prompt), ``stop_sequence`` (strings that end generation),
    ``handle_long_generation="hole"`` (drop the start of a prompt too long to leave room),
    ``clean_up_tokenization_spaces``, ``skip_special_tokens``, ``tokenizer_encode_kwargs``, ``tools``,
    ``documents``. Batched prompts are left-padded.
    """

    _model_tasks = ("causal_lm",)
    _pipeline_calls_generate = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = _generation_fields()
        self._generate_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in fields}
        super().__init__(*args, **kwargs)
        if self.tokenizer is not None and self.tokenizer.padding_side == "right":
            self.tokenizer.padding_side = "left"  # new tokens must follow every prompt directly
        self._generation_defaults = dict(_GENERATION_DEFAULTS)
        if self.tokenizer is not None and self.tokenizer.pad_token_id is not None:
            self._generation_defaults["pad_token_id"] = self.tokenizer.pad_token_id
        prefix = getattr(self.model.config, "prefix", None)
        if "prefix" not in self._preprocess_params and prefix:
            pre, fwd, _ = self._sanitize_parameters(prefix=prefix)
            self._preprocess_params.update(pre)
            self._forward_params.update(fwd)

    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        from .base import pad_collate

        # Models without a pad token (GPT-2) still batch: pads are masked, so eos serves.
        pad = self.tokenizer.pad_token_id
        if pad is None:
            pad = self.tokenizer.eos_token_id
        return pad_collate(items, pad, "left")

    def _sanitize_parameters(self, return_full_text: bool | None = None, return_tensors: bool | None = None,
                             return_text: bool | None = None, return_type: ReturnType | None = None,
                             clean_up_tokenization_spaces: bool | None = None, prefix: str | None = None,
                             handle_long_generation: str | None = None, stop_sequence: str | list[str] | None = None,
                             truncation: Any = None, max_length: int | None = None,
                             continue_final_message: bool | None = None, skip_special_tokens: bool | None = None,
                             tokenizer_encode_kwargs: dict | None = None, tools: list | None = None,
                             documents: list | None = None, **generate_kwargs: Any):
        pre: dict[str, Any] = {}
        add_special_tokens = False
        if "add_special_tokens" in generate_kwargs:
            add_special_tokens = pre["add_special_tokens"] = generate_kwargs.pop("add_special_tokens")
        if "padding" in generate_kwargs:
            pre["padding"] = generate_kwargs.pop("padding")
        if truncation is not None:
            pre["truncation"] = truncation
        if max_length is not None:
            pre["max_length"] = generate_kwargs["max_length"] = max_length
        for name, value in (("tools", tools), ("documents", documents), ("prefix", prefix),
                            ("continue_final_message", continue_final_message),
                            ("tokenizer_encode_kwargs", tokenizer_encode_kwargs)):
            if value is not None:
                pre[name] = value
        if prefix:
            ids = self.tokenizer(prefix, padding=False, add_special_tokens=add_special_tokens)["input_ids"]
            generate_kwargs["prefix_length"] = len(ids)
        if handle_long_generation is not None:
            if handle_long_generation != "hole":
                raise ValueError(f"{handle_long_generation} is not a valid value for `handle_long_generation` "
                                 "parameter expected [None, 'hole']")
            pre["handle_long_generation"] = handle_long_generation
        pre.update(generate_kwargs)  # "hole" needs the length settings
        if stop_sequence is not None:
            generate_kwargs["stop_strings"] = [stop_sequence] if isinstance(stop_sequence, str) else stop_sequence
            generate_kwargs["tokenizer"] = self.tokenizer
        post: dict[str, Any] = {}
        if return_full_text is not None and return_type is None:
            if return_text is not None:
                raise ValueError("`return_text` is mutually exclusive with `return_full_text`")
            if return_tensors is not None:
                raise ValueError("`return_full_text` is mutually exclusive with `return_tensors`")
            return_type = ReturnType.FULL_TEXT if return_full_text else ReturnType.NEW_TEXT
        if return_tensors is not None and return_type is None:
            if return_text is not None:
                raise ValueError("`return_text` is mutually exclusive with `return_tensors`")
            return_type = ReturnType.TENSORS
        if return_type is not None:
            post["return_type"] = return_type
        for name, value in (("clean_up_tokenization_spaces", clean_up_tokenization_spaces),
                            ("continue_final_message", continue_final_message),
                            ("skip_special_tokens", skip_special_tokens)):
            if value is not None:
                post[name] = value
        return pre, generate_kwargs, post

    def __call__(self, text_inputs: Any = None, **kwargs: Any) -> Any:
        """Complete one prompt or chat (a list of records), or each of a list / stream of them."""
        if isinstance(text_inputs, list) and not text_inputs:
            raise ValueError("The text-generation pipeline received an empty list; pass at least one prompt.")
        return super().__call__(text_inputs, **kwargs)

    # --- generation settings -------------------------------------------------------------------------------
    def _set_generation_params(self, generate_kwargs: dict[str, Any]) -> dict[str, Any]:
        """What a generate() call with these kwargs does not take from the global defaults."""
        params = _diff(getattr(self.model, "generation_config", None))
        if (config := generate_kwargs.get("generation_config")) is not None:
            params.update(_diff(config))
        return {**params, **generate_kwargs}

    def _prepare_generate_kwargs(self, generate_kwargs: dict[str, Any]) -> dict[str, Any]:
        if "generation_config" not in generate_kwargs:
            generate_kwargs = {**self._generate_kwargs, **generate_kwargs}
        given = self._set_generation_params(generate_kwargs)
        added = {k: v for k, v in self._generation_defaults.items()
                 if k not in given and not (k == "max_new_tokens" and "max_length" in given)}
        if not {**given, **added}.get("do_sample"):
            added = {k: v for k, v in added.items() if k not in _SAMPLING_PARAMS}
        if (config := generate_kwargs.get("generation_config")) is None:
            return {**generate_kwargs, **added}
        config = copy.deepcopy(config)
        config.update(**added)
        return {**generate_kwargs, "generation_config": config}

    # --- the three steps -------------------------------------------------------------------------------
    def preprocess(self, prompt_text: Any, prefix: str = "", handle_long_generation: str | None = None,
                   add_special_tokens: bool | None = None, truncation: Any = None, padding: Any = None,
                   max_length: int | None = None, continue_final_message: bool | None = None,
                   tokenizer_encode_kwargs: dict | None = None, tools: list | None = None,
                   documents: list | None = None, **generate_kwargs: Any) -> dict[str, Any]:
        tokenizer_kwargs = {k: v for k, v in {"add_special_tokens": add_special_tokens, "truncation": truncation,
                                              "padding": padding, "max_length": max_length}.items() if v is not None}
        tokenizer_kwargs.update(tokenizer_encode_kwargs or {})
        if isinstance(prompt_text, Chat):
            tokenizer_kwargs.pop("add_special_tokens", None)
            if not prompt_text.messages:
                raise ValueError("The text-generation pipeline received an empty chat.")
            if continue_final_message is None:
                continue_final_message = prompt_text.messages[-1]["role"] == "assistant"
            inputs = self.tokenizer.apply_chat_template(
                prompt_text.messages, add_generation_prompt=not continue_final_message,
                continue_final_message=continue_final_message, return_dict=True, return_tensors="pt",
                tools=tools, documents=documents, **tokenizer_kwargs)
            inputs = dict(inputs)
        elif isinstance(prompt_text, str):
            inputs = dict(self.tokenizer(prefix + prompt_text, return_tensors="pt", **tokenizer_kwargs))
        else:
            raise TypeError("text-generation expects a prompt (str), a chat (list of {'role', 'content'} dicts) or "
                            f"a list of them; got {type(prompt_text).__name__}.")
        inputs["prompt_text"] = prompt_text
        if handle_long_generation == "hole":
            length = inputs["input_ids"].shape[-1]
            params = self._set_generation_params(self._prepare_generate_kwargs(generate_kwargs))
            new_tokens = params.get("max_new_tokens")
            if new_tokens is None:
                new_tokens = params["max_length"] - length
                if new_tokens < 0:
                    raise ValueError("We cannot infer how many new tokens are expected")
            if length + new_tokens > self.tokenizer.model_max_length:
                keep = self.tokenizer.model_max_length - new_tokens
                if keep <= 0:
                    raise ValueError("We cannot use `hole` to handle this generation the number of desired tokens "
                                     "exceeds the models max length")
                inputs["input_ids"] = inputs["input_ids"][:, -keep:]
                if "attention_mask" in inputs:
                    inputs["attention_mask"] = inputs["attention_mask"][:, -keep:]
        return inputs

    def _forward(self, model_inputs: dict[str, Any], **generate_kwargs: Any) -> dict[str, Any]:
        input_ids = model_inputs["input_ids"]
        attention_mask = model_inputs.get("attention_mask")
        if input_ids.shape[1] == 0:  # an empty prompt: generation starts from the BOS token
            input_ids = attention_mask = None
            batch = 1
        else:
            batch = input_ids.shape[0]
        prompt_text = model_inputs.pop("prompt_text")
        prefix_length = generate_kwargs.pop("prefix_length", 0)
        generate_kwargs = self._prepare_generate_kwargs(generate_kwargs)
        if prefix_length:  # a total length must count the prefix too
            params = self._set_generation_params(generate_kwargs)
            for length, new_tokens in (("max_length", "max_new_tokens"), ("min_length", "min_new_tokens")):
                if length in params and new_tokens not in params:
                    generate_kwargs[length] = params[length] + prefix_length
        output = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **generate_kwargs)
        sequences = output if isinstance(output, torch.Tensor) else output.sequences
        sequences = sequences.reshape(batch, sequences.shape[0] // batch, *sequences.shape[1:])
        return {"generated_sequence": sequences, "input_ids": input_ids, "prompt_text": prompt_text}

    def postprocess(self, model_outputs: dict[str, Any], return_type: ReturnType = ReturnType.FULL_TEXT,
                    clean_up_tokenization_spaces: bool | None = None, continue_final_message: bool | None = None,
                    skip_special_tokens: bool | None = None) -> list[dict[str, Any]]:
        sequences = model_outputs["generated_sequence"][0].tolist()
        input_ids = model_outputs["input_ids"]
        prompt = model_outputs["prompt_text"]
        skip = True if skip_special_tokens is None else skip_special_tokens
        prompt_length = 0 if input_ids is None else input_ids.shape[-1]
        records = []
        for sequence in sequences:
            if return_type == ReturnType.TENSORS:
                records.append({"generated_token_ids": sequence})
                continue
            text = self.tokenizer.decode(sequence[prompt_length:], skip_special_tokens=skip,
                                         clean_up_tokenization_spaces=clean_up_tokenization_spaces)
            if return_type == ReturnType.FULL_TEXT:
                if isinstance(prompt, str):
                    text = prompt + text
                elif isinstance(prompt, Chat):
                    messages = list(prompt.messages)
                    final = continue_final_message
                    if final is None:
                        final = messages[-1]["role"] == "assistant"
                    if final:
                        text = [*messages[:-1], {"role": messages[-1]["role"],
                                                 "content": messages[-1]["content"] + text}]
                    else:
                        text = [*messages, {"role": "assistant", "content": text}]
            records.append({"generated_text": text})
        return records


def _diff(config: Any) -> dict[str, Any]:
    if config is None:
        return {}
    out = config.to_diff_dict()
    for key in ("transformers_version", "_from_model_config"):
        out.pop(key, None)
    return out
