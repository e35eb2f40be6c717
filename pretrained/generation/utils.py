"""``generate``: greedy decoding, sampling and beam search for decoder-only and encoder-decoder models.

An encoder-decoder (``config.is_encoder_decoder``) runs its encoder once; from then on the decoder's
tokens (``decoder_start_token_id`` first) are the prompt of the same loops, and every step also gets the
encoder's states and padding mask. Its cache is an ``EncoderDecoderCache`` (dynamic or static
self-attention, cross-attention written at the first step and reused).

The loop is kept cheap in Python. Everything that does not change from one token to the next is built
once before it starts: the logits processors, the output buffer (tokens are written in place, never
concatenated), the attention-mask buffer (a view of it is passed each step; no mask at all when the
batch has no padding), the next positions, and the KV cache (a static cache is preallocated and may be
driven by a ``torch.compile``-d decode step). The only host-device synchronisation per token is the
"is every sequence finished?" check, and only when an end-of-sequence token can stop generation.

This file prepares a run (configuration, processors, the encoder's start, the cache and the runner); the
loops themselves are in :mod:`pretrained.generation.search`.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any

import torch

from pretrained.generation.configuration_utils import GenerationConfig
from pretrained.generation.logits_process import (
    EncoderNoRepeatNGramLogitsProcessor,
    EncoderRepetitionPenaltyLogitsProcessor,
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    ExponentialDecayLengthPenalty,
    ForcedBOSTokenLogitsProcessor,
    ForcedEOSTokenLogitsProcessor,
    InfNanRemoveLogitsProcessor,
    LogitNormalization,
    LogitsProcessorList,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)
from pretrained.generation.outputs import (  # noqa: F401 - public names of this module in transformers
    BeamSampleDecoderOnlyOutput,
    BeamSearchDecoderOnlyOutput,
    GenerateBeamDecoderOnlyOutput,
    GenerateBeamEncoderDecoderOutput,
    GenerateDecoderOnlyOutput,
    GenerateEncoderDecoderOutput,
    GreedySearchDecoderOnlyOutput,
    SampleDecoderOnlyOutput,
)
from pretrained.generation.runner import RoutedLinears, Runner, make_cache, make_seq2seq_cache
from pretrained.generation.search import Search, beam_search, sample
from pretrained.generation.stopping_criteria import (
    MaxTimeCriteria,
    StoppingCriteriaList,
    StopStringCriteria,
)
from pretrained.inference import kernels
from pretrained.inference.compiled import compiled_decoder
from pretrained.modeling.cache import StaticCache

_UNSUPPORTED = {
    "assistant_model": "assisted generation",
    "prefix_allowed_tokens_fn": "prefix-constrained decoding",
    "negative_prompt_ids": "classifier-free guidance",
    "negative_prompt_attention_mask": "classifier-free guidance",
}


# --------------------------------------------------------------------------------------------------------
# configuration


def _resolve_config(
    model: Any, generation_config: GenerationConfig | None, kwargs: dict[str, Any]
) -> tuple[GenerationConfig, dict[str, Any], bool]:
    """Merge: explicit kwargs > the given config > the model's config > global defaults."""
    model_config = getattr(model, "generation_config", None) or GenerationConfig()
    config = copy.deepcopy(generation_config if generation_config is not None else model_config)
    default_max = (
        kwargs.get("max_length") is None and config.max_length is None and model_config.max_length is None
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # flags inherited from a checkpoint's file should not warn
        if generation_config is not None:
            config.update(defaults_only=True, **model_config.to_dict())
        config.update(defaults_only=True, **GenerationConfig.default_values())
    model_kwargs = config.update(**kwargs)
    with warnings.catch_warnings():
        # Hard errors still raise; flags that only go unused are not worth a warning on every call.
        warnings.simplefilter("ignore")
        config.validate()
    return config, model_kwargs, default_max


def _id_list(value: Any) -> list[int] | None:
    if value is None:
        return None
    if isinstance(value, torch.Tensor):
        return [int(v) for v in value.reshape(-1).tolist()]
    if isinstance(value, int):
        return [value]
    return [int(v) for v in value]


def build_logits_processor(
    config: GenerationConfig,
    prompt_length: int,
    eos_token_id: list[int] | None,
    attention_mask: torch.Tensor | None = None,
    extra: list[Any] | None = None,
    encoder_input_ids: torch.Tensor | None = None,
) -> LogitsProcessorList:
    """The processors ``config`` asks for, in transformers' order, then the user's, then the warpers.
    ``encoder_input_ids`` (an encoder-decoder's input, one row per prompt) serve the ``encoder_*`` ones."""
    procs = LogitsProcessorList()
    if config.sequence_bias is not None:
        procs.append(SequenceBiasLogitsProcessor(config.sequence_bias))
    encoder_penalty = getattr(config, "encoder_repetition_penalty", None)
    encoder_ngrams = getattr(config, "encoder_no_repeat_ngram_size", None)
    if (encoder_penalty not in (None, 1.0) or encoder_ngrams) and encoder_input_ids is None:
        warnings.warn("encoder_repetition_penalty / encoder_no_repeat_ngram_size need the encoder's input_ids "
                      "passed to generate; ignoring them", UserWarning, stacklevel=3)
    elif encoder_penalty not in (None, 1.0):
        procs.append(EncoderRepetitionPenaltyLogitsProcessor(float(encoder_penalty), encoder_input_ids))
    if config.repetition_penalty is not None and config.repetition_penalty != 1.0:
        # Pad tokens on the left are not part of the text: skip them.
        ignore = (attention_mask != 0).int().argmax(dim=1) if attention_mask is not None else None
        procs.append(
            RepetitionPenaltyLogitsProcessor(float(config.repetition_penalty), prompt_ignore_length=ignore)
        )
    if config.no_repeat_ngram_size:
        procs.append(NoRepeatNGramLogitsProcessor(config.no_repeat_ngram_size))
    if encoder_ngrams and encoder_input_ids is not None:
        procs.append(EncoderNoRepeatNGramLogitsProcessor(int(encoder_ngrams), encoder_input_ids))
    if config.bad_words_ids is not None:
        procs.append(NoBadWordsLogitsProcessor(config.bad_words_ids, eos_token_id))
    if eos_token_id is not None and config.min_length:
        procs.append(MinLengthLogitsProcessor(config.min_length, eos_token_id))
    if eos_token_id is not None and config.min_new_tokens:
        procs.append(MinNewTokensLengthLogitsProcessor(prompt_length, config.min_new_tokens, eos_token_id))
    if config.forced_bos_token_id is not None:
        procs.append(ForcedBOSTokenLogitsProcessor(config.forced_bos_token_id))
    if config.forced_eos_token_id is not None:
        procs.append(ForcedEOSTokenLogitsProcessor(config.max_length, config.forced_eos_token_id))
    if config.remove_invalid_values:
        procs.append(InfNanRemoveLogitsProcessor())
    if config.exponential_decay_length_penalty is not None and eos_token_id is not None:
        procs.append(
            ExponentialDecayLengthPenalty(
                config.exponential_decay_length_penalty, eos_token_id, prompt_length
            )
        )
    if config.suppress_tokens is not None:
        procs.append(SuppressTokensLogitsProcessor(config.suppress_tokens))
    if config.begin_suppress_tokens is not None:
        begin = (
            prompt_length if prompt_length > 1 or config.forced_bos_token_id is None else prompt_length + 1
        )
        procs.append(SuppressTokensAtBeginLogitsProcessor(config.begin_suppress_tokens, begin))
    for processor in extra or ():
        if any(type(p) is type(processor) for p in procs):
            raise ValueError(
                f"a {type(processor).__name__} was passed in logits_processor but the generation config already "
                "creates one; set it in one place only"
            )
        procs.append(processor)
    if config.do_sample:
        keep = (len(eos_token_id) + 1 if eos_token_id else 2) if (config.num_beams or 1) > 1 else 1
        if config.temperature is not None and config.temperature != 1.0:
            procs.append(TemperatureLogitsWarper(float(config.temperature)))
        if config.top_k:
            procs.append(TopKLogitsWarper(config.top_k, min_tokens_to_keep=keep))
        if config.top_p is not None and config.top_p < 1.0:
            procs.append(TopPLogitsWarper(config.top_p, min_tokens_to_keep=keep))
        if config.min_p is not None:
            procs.append(MinPLogitsWarper(config.min_p, min_tokens_to_keep=keep))
        if config.typical_p is not None and config.typical_p < 1.0:
            procs.append(TypicalLogitsWarper(config.typical_p, min_tokens_to_keep=keep))
        if config.epsilon_cutoff and 0.0 < config.epsilon_cutoff < 1.0:
            procs.append(EpsilonLogitsWarper(config.epsilon_cutoff, min_tokens_to_keep=keep))
        if config.eta_cutoff and 0.0 < config.eta_cutoff < 1.0:
            procs.append(EtaLogitsWarper(config.eta_cutoff, min_tokens_to_keep=keep))
    if config.renormalize_logits:
        procs.append(LogitNormalization())
    return procs


# --------------------------------------------------------------------------------------------------------
# entry point


@torch.no_grad()
def generate(
    model: Any,
    inputs: torch.Tensor | None = None,
    generation_config: GenerationConfig | None = None,
    logits_processor: list[Any] | None = None,
    stopping_criteria: list[Any] | None = None,
    prefix_allowed_tokens_fn: Any = None,
    synced_gpus: bool | None = None,
    assistant_model: Any = None,
    streamer: Any = None,
    negative_prompt_ids: torch.Tensor | None = None,
    negative_prompt_attention_mask: torch.Tensor | None = None,
    **kwargs: Any,
) -> torch.LongTensor | GenerateDecoderOnlyOutput | GenerateBeamDecoderOnlyOutput:
    """Generate token ids with a causal or encoder-decoder language model, like ``transformers``'
    ``model.generate``.

    Args:
        model: A causal LM (``...ForCausalLM`` / ``GPT2LMHeadModel``) or an encoder-decoder
            (``...ForConditionalGeneration``, ``MarianMTModel``).
        inputs: ``(batch, prompt_len)`` token ids; left-pad a causal LM's batches (an encoder's may be padded
            on either side) and pass ``attention_mask``.
        generation_config: Base settings (default: ``model.generation_config``).
        logits_processor: Extra processors, applied after the configured ones and before sampling warpers.
        stopping_criteria: Extra criteria (each returns a ``(batch,)`` bool tensor).
        streamer: Receives the prompt, then each new token (``put``), then ``end()``; batch size 1.
        **kwargs: Any ``GenerationConfig`` field (``max_new_tokens=..., do_sample=True, ...``), model inputs
            (``attention_mask``, ``position_ids``, ``token_type_ids``, ``past_key_values``; for an
            encoder-decoder ``encoder_outputs``, ``decoder_input_ids``, ``decoder_attention_mask``), and
            ``tokenizer`` (needed for ``stop_strings``).

    Returns:
        The sequences ``(batch * num_return_sequences, length)`` (an encoder-decoder's: the decoder's tokens,
        start token first), or a ``Generate...Output`` when ``return_dict_in_generate=True``.

    ``cache_implementation="static"`` preallocates the cache; with a ``compile_config`` (a dict of
    ``torch.compile`` options, e.g. ``{"mode": "reduce-overhead"}``) the decode step is compiled.
    """
    passed = {
        "assistant_model": assistant_model,
        "prefix_allowed_tokens_fn": prefix_allowed_tokens_fn,
        "negative_prompt_ids": negative_prompt_ids,
        "negative_prompt_attention_mask": negative_prompt_attention_mask,
    }
    for name, value in passed.items():
        if value is not None:
            raise NotImplementedError(
                f"`{name}` ({_UNSUPPORTED[name]}) is not supported by pretrained's generate"
            )
    tokenizer = kwargs.pop("tokenizer", None)
    config, model_kwargs, default_max = _resolve_config(model, generation_config, kwargs)
    for name in ("guidance_scale",):
        if getattr(config, name, None) not in (None, 1, 1.0):
            raise NotImplementedError(f"`{name}` is not supported by pretrained's generate")
    # Seq2SeqTrainer passes its batch, labels included: they describe the data, never a generation input.
    model_kwargs.pop("labels", None)
    if model_kwargs.pop("inputs_embeds", None) is not None:
        raise NotImplementedError("generate() from inputs_embeds is not supported; pass input_ids")

    # --- inputs and special tokens
    input_ids = inputs if inputs is not None else model_kwargs.pop("input_ids", None)
    device = model.device
    eos = _id_list(config.eos_token_id)
    pad = config.pad_token_id
    if pad is None and eos:
        pad = eos[0]
    seq2seq = bool(getattr(model.config, "is_encoder_decoder", False))
    encoder_outputs = None
    # The encoder's ids (one row per prompt) for the encoder_* processors (a decoder's prompt is its own).
    encoder_ids = input_ids.to(device) if seq2seq and input_ids is not None and input_ids.dim() == 2 else None
    if seq2seq:
        # The encoder runs once; from here on the decoder's tokens are the "prompt" of the loops below.
        input_ids, encoder_outputs, model_kwargs = _start_decoder(model, config, input_ids, pad, eos, model_kwargs)
    if input_ids is None:
        if config.bos_token_id is None:
            raise ValueError("give input_ids, or set bos_token_id so generation can start from it")
        input_ids = torch.full((1, 1), config.bos_token_id, dtype=torch.long, device=device)
    if input_ids.dim() != 2:
        raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
    input_ids = input_ids.to(device)
    attention_mask = model_kwargs.pop("decoder_attention_mask" if seq2seq else "attention_mask", None)
    if attention_mask is None and seq2seq:
        attention_mask = torch.ones_like(input_ids)
    attention_mask = _prompt_mask(input_ids, attention_mask, pad, eos)
    # (an encoder-decoder's prompt here is the decoder's: checked against the decoder's table)
    _check_inputs(model, input_ids, attention_mask,
                  getattr(model.get_decoder(), "embed_tokens", None) if seq2seq else None)
    if streamer is not None and (input_ids.shape[0] > 1 or (config.num_beams or 1) > 1):
        raise ValueError("streamers support batch size 1 only, without beam search")

    # --- lengths
    prompt_len = input_ids.shape[1]
    if config.max_new_tokens is not None:
        config.max_length = config.max_new_tokens + prompt_len
    elif default_max:
        config.max_length = config.max_length + prompt_len
        max_pos = getattr(model.config, "max_position_embeddings", None)
        if max_pos is not None:
            config.max_length = min(config.max_length, max_pos)
    if config.min_new_tokens is not None:
        config.min_length = config.min_new_tokens + prompt_len
    if config.max_length <= prompt_len:
        raise ValueError(
            f"the prompt has {prompt_len} tokens and max_length is {config.max_length}: nothing to generate; "
            "raise max_new_tokens"
        )

    # --- expand for several sequences per prompt
    beams = config.num_beams or 1
    expand = max(beams, config.num_return_sequences or 1)
    if expand > 1:
        input_ids = input_ids.repeat_interleave(expand, dim=0)
        attention_mask = attention_mask.repeat_interleave(expand, dim=0)
        for key, value in list(model_kwargs.items()):
            if (
                isinstance(value, torch.Tensor)
                and value.dim() >= 1
                and value.shape[0] * expand == input_ids.shape[0]
            ):
                model_kwargs[key] = value.repeat_interleave(expand, dim=0)
            elif key == "encoder_outputs":
                model_kwargs[key] = tuple(t.repeat_interleave(expand, dim=0) for t in value)

    # --- loop machinery, built once
    processors = build_logits_processor(config, prompt_len, eos, attention_mask, logits_processor, encoder_ids)
    criteria = StoppingCriteriaList(stopping_criteria or [])
    if config.max_time is not None:
        criteria.append(MaxTimeCriteria(config.max_time))
    if config.stop_strings is not None:
        criteria.append(StopStringCriteria(tokenizer, config.stop_strings))
    # One host check at the start decides whether the loop needs a mask at all.
    has_padding = not bool(attention_mask.all())
    if not config.use_cache:
        raise NotImplementedError("generate() always uses a KV cache; use_cache=False is not supported")
    user_cache = model_kwargs.pop("past_key_values", None)
    # (an encoder-decoder's cache is static when its self-attention part is)
    static = config.cache_implementation == "static" or isinstance(
        getattr(user_cache, "self_attention_cache", user_cache), StaticCache)
    decoder = None
    quantizer = getattr(model, "hf_quantizer", None)
    if static and config.compile_config is not None and not config.disable_compile:
        if quantizer is not None and not quantizer.is_compileable:  # bitsandbytes layers do not compile
            method = getattr(quantizer.quantization_config.quant_method, "value", "")
            warnings.warn(f"The model is quantized with {method}, whose layers cannot be compiled: decoding eagerly.",
                          stacklevel=3)
        else:
            decoder = compiled_decoder(model, config.compile_config)
    if seq2seq:
        cache = make_seq2seq_cache(model, config, config.max_length, user_cache,
                                   decoder.static_len if decoder is not None else 0)  # fmt: skip
    else:
        cache = make_cache(model, config, input_ids.shape[0], config.max_length, user_cache,
                           decoder.static_len if decoder is not None else 0)  # fmt: skip
    runner = Runner(model, config, input_ids, attention_mask, has_padding, config.max_length, cache, model_kwargs,
                    seq2seq=seq2seq)  # fmt: skip
    self_cache = getattr(cache, "self_attention_cache", cache)  # an encoder-decoder's own-token cache
    if decoder is not None and isinstance(self_cache, StaticCache):
        decoder.static_len = self_cache.max_cache_len
        runner.decoder = decoder
        # A CUDA graph reuses its output memory at the next replay: keep copies, not views.
        runner.replayed = model.device.type == "cuda"
    elif model.device.type == "cpu" and input_ids.shape[0] in kernels.SMALL_ROWS:
        routed = RoutedLinears(model)  # few-row steps: our kernel / oneDNN stream big weights faster than MKL
        runner.kernels = routed if routed else None

    search = Search(runner, config, input_ids, processors, criteria, eos, pad)
    result = beam_search(search, beams) if beams > 1 else sample(search, streamer)
    return _with_encoder(result, encoder_outputs) if seq2seq and config.return_dict_in_generate else result


def _prompt_mask(input_ids: torch.Tensor, attention_mask: torch.Tensor | None, pad: int | None,
                 eos: list[int] | None) -> torch.Tensor:
    """A prompt's attention mask on the prompt's device: as given, or 0 on its ``pad`` tokens when it holds
    some and they cannot be end-of-sequence tokens, else all ones."""
    if attention_mask is None:
        can_infer = pad is not None and bool((input_ids == pad).any()) and (not eos or pad not in eos)
        attention_mask = (input_ids != pad).long() if can_infer else torch.ones_like(input_ids)
    return attention_mask.to(input_ids.device)


def _start_decoder(
    model: Any, config: GenerationConfig, input_ids: torch.Tensor | None, pad: int | None, eos: list[int] | None,
    model_kwargs: dict[str, Any],
) -> tuple[torch.Tensor, Any, dict[str, Any]]:
    """An encoder-decoder's start: run the encoder once (unless ``encoder_outputs`` are given) and return
    the decoder's first tokens (``decoder_input_ids``, with ``decoder_start_token_id`` put first when they
    lack it, as transformers does), the encoder's output, and the inputs every decoder step gets (the
    encoder's last states and its padding mask, ``None`` without padding)."""
    attention_mask = model_kwargs.pop("attention_mask", None)
    encoder_outputs = model_kwargs.pop("encoder_outputs", None)
    device = model.device
    if encoder_outputs is None:
        if input_ids is None:
            raise ValueError("an encoder-decoder model needs input_ids (or encoder_outputs) to generate from")
        if input_ids.dim() != 2:
            raise ValueError(f"input_ids must be (batch, length), got shape {tuple(input_ids.shape)}")
        input_ids = input_ids.to(device)
        attention_mask = _prompt_mask(input_ids, attention_mask, pad, eos)
        _check_inputs(model, input_ids, attention_mask)
        flags = {"output_attentions": bool(config.output_attentions),
                 "output_hidden_states": bool(config.output_hidden_states)}
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask, return_dict=True,
                                              **flags)  # fmt: skip
    hidden = encoder_outputs[0]
    batch = hidden.shape[0]
    # The generation config alone decides, then its bos: as in transformers 5.x, a decoder_start_token_id set
    # on model.config after loading (run_translation.py does for mBART) does not reach generate().
    start = config.decoder_start_token_id
    if start is None:
        start = config.bos_token_id
    if start is None:
        raise ValueError("set decoder_start_token_id (or bos_token_id) so the decoder has a first token")
    if isinstance(start, (list, tuple)) or isinstance(start, torch.Tensor) and start.dim():
        starts = torch.as_tensor(start, dtype=torch.long, device=device).view(-1, 1)
        if starts.shape[0] != batch:
            raise ValueError(f"decoder_start_token_id has {starts.shape[0]} entries for a batch of {batch}")
    else:
        starts = torch.full((batch, 1), int(start), dtype=torch.long, device=device)
    decoder_ids = model_kwargs.pop("decoder_input_ids", None)
    if decoder_ids is None:
        decoder_ids = starts
    else:
        decoder_ids = decoder_ids.to(device)
        if bool((decoder_ids[:, 0] != starts[:, 0]).all()):
            decoder_ids = torch.cat([starts, decoder_ids], dim=-1)
            decoder_mask = model_kwargs.get("decoder_attention_mask")
            if decoder_mask is not None:
                model_kwargs["decoder_attention_mask"] = torch.cat(
                    [decoder_mask.new_ones((batch, 1)), decoder_mask.to(device)], dim=-1)
    if attention_mask is not None and bool(attention_mask.all()):
        attention_mask = None  # no padding: every step can skip the cross-attention mask
    model_kwargs["encoder_outputs"] = (hidden,)
    model_kwargs["attention_mask"] = attention_mask
    return decoder_ids, encoder_outputs, model_kwargs


def _with_encoder(result: Any, encoder_outputs: Any) -> Any:
    """A decoder-only ``generate`` output made into transformers' encoder-decoder one."""
    encoder_attentions = getattr(encoder_outputs, "attentions", None)
    encoder_hidden = getattr(encoder_outputs, "hidden_states", None)
    steps_attn = result.attentions
    steps_hidden = result.hidden_states
    common = dict(
        sequences=result.sequences, scores=result.scores, logits=result.logits,
        encoder_attentions=encoder_attentions, encoder_hidden_states=encoder_hidden,
        decoder_attentions=None if steps_attn is None else tuple(a[0] for a in steps_attn),
        cross_attentions=None if steps_attn is None else tuple(a[1] for a in steps_attn),
        decoder_hidden_states=steps_hidden, past_key_values=result.past_key_values,
    )
    if isinstance(result, GenerateBeamDecoderOnlyOutput):
        return GenerateBeamEncoderDecoderOutput(sequences_scores=result.sequences_scores,
                                                beam_indices=result.beam_indices, **common)
    return GenerateEncoderDecoderOutput(**common)


def _check_inputs(model: Any, input_ids: torch.Tensor, attention_mask: torch.Tensor, embeddings: Any = None) -> None:
    """Clear errors for prompts the model would fail on deep inside: empty ones, a mask of another shape,
    ids outside the vocabulary. One host sync per ``generate`` call (the id range), none per token."""
    if input_ids.shape[0] == 0 or input_ids.shape[1] == 0:
        raise ValueError(
            f"input_ids is empty (shape {tuple(input_ids.shape)}): give at least one token per prompt, or no "
            "input_ids to start from bos_token_id"
        )
    if attention_mask.shape != input_ids.shape:
        raise ValueError(
            f"attention_mask has shape {tuple(attention_mask.shape)} but input_ids has shape "
            f"{tuple(input_ids.shape)}; give one mask value per input id"
        )
    if input_ids.is_floating_point() or input_ids.is_complex():
        raise TypeError(f"input_ids must hold integer token ids, got {input_ids.dtype}")
    if embeddings is None and hasattr(model, "get_input_embeddings"):
        embeddings = model.get_input_embeddings()
    vocab = getattr(embeddings, "num_embeddings", None) or getattr(model.config, "vocab_size", None)
    if vocab is None:
        return
    low, high = (int(v) for v in torch.aminmax(input_ids))
    if low < 0 or high >= vocab:
        bad = low if low < 0 else high
        raise ValueError(
            f"input_ids holds the token id {bad}, outside the model's vocabulary of {vocab} ids (0 to "
            f"{vocab - 1}); were they made by another model's tokenizer?"
        )
