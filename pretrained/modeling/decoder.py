"""Pieces shared by the decoder-only families (GPT-2, Llama and relatives).

* :func:`prepare_cache` turns the ``past_key_values`` argument (a cache, a legacy tuple, or nothing) into
  a cache object.
* :func:`build_masks` builds one SDPA mask per attention kind (full / sliding window) for a forward pass.
* :func:`begin_decoder`, :func:`run_layers` and :func:`finish_decoder` are the start, layer loop and end
  of every decoder stack's forward; :func:`init_decoder_weights` their weight initialisation.
* :class:`CausalSelfAttention` is the families' one attention path (project → optional norm → rotate →
  cache update → attend → project): a family supplies the projections (``_project``, ``_output``), the
  cache update and the attend step are shared. :class:`PreNormDecoderLayer` is their residual block,
  ``x + attn(norm(x))`` then ``x + mlp(norm(x))``, over the sub-modules a family names (``_sublayers``).
* :func:`causal_lm_forward` / :func:`sequence_classifier_forward` are the task heads' passes;
  :class:`DecoderLMForward` / :class:`DecoderClassifierForward` their public ``forward`` with transformers'
  argument list (Llama, Mistral, Qwen: transformers' generic heads).
* :func:`causal_lm_loss` is the shifted next-token cross-entropy, normalised by ``num_items_in_batch``
  when the trainer passes it (so gradient accumulation matches one big batch).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pretrained.modeling.attention import attention_function, merge_heads
from pretrained.modeling.cache import Cache, DynamicCache
from pretrained.modeling.checkpointing import call_layer
from pretrained.modeling.embeddings import OutputEmbeddings, check_token_inputs
from pretrained.modeling.linear import Conv1D
from pretrained.modeling.losses import sequence_classification_loss
from pretrained.modeling.masks import causal_mask
from pretrained.modeling.norms import RMSNorm
from pretrained.modeling.outputs import (
    BaseModelOutputWithPast,
    CausalLMOutputWithPast,
    SequenceClassifierOutputWithPast,
    output_flag,
)


def prepare_cache(past_key_values: Any, use_cache: bool, config: Any) -> Cache | None:
    """Return the cache a forward pass should use (creating a :class:`DynamicCache` when asked).

    Accepts a :class:`Cache`, the legacy ``((keys, values), ...)`` tuple, or ``None``.
    """
    if past_key_values is None:
        return DynamicCache(config=config) if use_cache else None
    if isinstance(past_key_values, Cache):
        return past_key_values
    if isinstance(past_key_values, (tuple, list)):
        return DynamicCache.from_legacy_cache(past_key_values)
    raise TypeError(
        f"past_key_values must be a Cache or a tuple of (keys, values) pairs, got {type(past_key_values)}"
    )


def requested_cache(module: Any, past_key_values: Any, use_cache: bool | None,
                    kwargs: dict[str, Any]) -> tuple[Any, bool]:
    """What a stack's forward was asked of its cache: the one given (``cache`` in ``kwargs`` is accepted as
    the transformers 5 name of ``past_key_values``) and whether to return one (by default
    ``config.use_cache`` outside training)."""
    if past_key_values is None:
        past_key_values = kwargs.get("cache")
    if use_cache is None:
        use_cache = module.config.use_cache and not module.training
    return past_key_values, use_cache


def cache_positions(cache: Cache | None, seq_len: int, device: torch.device) -> torch.Tensor:
    """``(seq_len,)`` cache indices of the new tokens: they follow what the cache already holds."""
    past = cache.get_seq_length() if cache is not None else 0
    return torch.arange(past, past + seq_len, device=device)


def build_masks(
    attention_mask: torch.Tensor | None,
    cache: Cache | None,
    cache_position: torch.Tensor,
    windows: list[int | None],
) -> dict[int | None, torch.Tensor | None]:
    """One boolean SDPA mask (or ``None``) per distinct sliding window in ``windows`` (``None`` = full).

    Sizes come from the first cache layer of each kind, so the mask matches what ``cache.update``
    will return in that layer.
    """
    q_len = cache_position.shape[0]
    if attention_mask is not None and attention_mask.device != cache_position.device:
        # (with a device_map the inputs may start on another device than the first layers)
        attention_mask = attention_mask.to(cache_position.device)
    masks: dict[int | None, torch.Tensor | None] = {}
    for layer_idx, window in enumerate(windows):
        if window in masks:
            continue
        if cache is None:
            # Without a cache the keys are exactly the new tokens.
            positions = torch.arange(q_len, device=cache_position.device)
            masks[window] = causal_mask(attention_mask, positions, q_len, 0, window, True)
            continue
        kv_len, kv_offset = cache.get_mask_sizes(q_len, layer_idx)
        written = not (layer_idx < len(cache.layers) and cache.layers[layer_idx].is_static)
        masks[window] = causal_mask(attention_mask, cache_position, kv_len, kv_offset, window, written)
    return masks


def causal_lm_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    num_items_in_batch: int | torch.Tensor | None = None,
    ignore_index: int = -100,
    shift_labels: torch.Tensor | None = None,
) -> torch.Tensor:
    """Next-token cross-entropy: position ``t`` predicts ``labels[t + 1]``; ``ignore_index`` is skipped.

    Args:
        logits: ``(batch, seq, vocab)``.
        labels: ``(batch, seq)`` token ids (usually the inputs), ``-100`` where no loss is wanted.
        num_items_in_batch: Total number of target tokens over all gradient-accumulation micro-batches.
            When given, the summed loss is divided by it instead of averaged per micro-batch.
        ignore_index: Label value that contributes no loss.
        shift_labels: Already shifted labels (then ``labels`` is not shifted).
    """
    logits = logits.float()
    if shift_labels is None:
        shift_labels = F.pad(labels, (0, 1), value=ignore_index)[..., 1:]
    shift_labels = shift_labels.reshape(-1).to(logits.device)
    flat = logits.reshape(-1, logits.shape[-1])
    if num_items_in_batch is None:
        return F.cross_entropy(flat, shift_labels, ignore_index=ignore_index)
    loss = F.cross_entropy(flat, shift_labels, ignore_index=ignore_index, reduction="sum")
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def last_token_pool(
    logits: torch.Tensor, input_ids: torch.Tensor | None, pad_token_id: int | None
) -> torch.Tensor:
    """Pick, per row, the logits of the last token that is not padding (sequence classification).

    Like transformers, the last non-pad token is the rightmost position whose id differs from
    ``pad_token_id`` (works for left and right padding); without input ids the last position is used.
    """
    batch = logits.shape[0]
    if input_ids is None:
        if batch != 1 and pad_token_id is None:
            raise ValueError("batches of inputs_embeds need a pad_token_id to find the last token")
        last = torch.full((batch,), logits.shape[1] - 1, device=logits.device)
    elif pad_token_id is None:
        if batch != 1:
            raise ValueError(
                "sequence classification of a batch needs config.pad_token_id to find each last token"
            )
        last = torch.full((batch,), logits.shape[1] - 1, device=logits.device)
    else:
        not_pad = (input_ids != pad_token_id).to(logits.device, torch.int32)
        positions = torch.arange(input_ids.shape[-1], device=logits.device, dtype=torch.int32)
        last = (positions * not_pad).argmax(-1)
    return logits[torch.arange(batch, device=logits.device), last]


def causal_lm_forward(
    model: Any, labels: torch.Tensor | None, logits_to_keep: int | torch.Tensor, inputs: dict[str, Any]
) -> CausalLMOutputWithPast | tuple:
    """A causal LM head's forward: the base model (``model.base_model``) on ``inputs``, then
    ``model.lm_head`` on the kept positions (the last ``logits_to_keep``, or those indexed by it) and the
    shifted next-token loss when ``labels`` are given. ``inputs`` may carry ``num_items_in_batch`` (the
    Trainer's token count under gradient accumulation: the loss becomes ``sum / num_items_in_batch``),
    ``shift_labels`` and ``return_dict``; the rest goes to the base model."""
    return_dict = inputs.pop("return_dict", None)
    num_items_in_batch = inputs.pop("num_items_in_batch", None)
    shift_labels = inputs.pop("shift_labels", None)
    outputs = model.base_model(**inputs, return_dict=True)
    hidden_states = outputs.last_hidden_state
    if isinstance(logits_to_keep, int):
        if logits_to_keep:
            hidden_states = hidden_states[:, -logits_to_keep:]
    else:
        hidden_states = hidden_states[:, logits_to_keep]
    logits = model.lm_head(hidden_states)
    loss = None
    if labels is not None:
        loss = causal_lm_loss(logits, labels, num_items_in_batch, shift_labels=shift_labels)
    out = CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                 hidden_states=outputs.hidden_states, attentions=outputs.attentions)
    return model._outputs(out, return_dict)


def sequence_classifier_forward(
    model: Any, labels: torch.Tensor | None, inputs: dict[str, Any]
) -> SequenceClassifierOutputWithPast | tuple:
    """A decoder's ``ForSequenceClassification`` forward: the base model on ``inputs``, ``model.score``
    read at the last non-padding token, and the loss ``config.problem_type`` asks for."""
    return_dict = inputs.pop("return_dict", None)
    outputs = model.base_model(**inputs, return_dict=True)
    logits = last_token_pool(model.score(outputs.last_hidden_state), inputs.get("input_ids"),
                             model.config.pad_token_id)  # fmt: skip
    loss = sequence_classification_loss(logits, labels, model.config) if labels is not None else None
    out = SequenceClassifierOutputWithPast(loss=loss, logits=logits, past_key_values=outputs.past_key_values,
                                           hidden_states=outputs.hidden_states, attentions=outputs.attentions)
    return model._outputs(out, return_dict)


class DecoderLMForward(OutputEmbeddings):
    """A decoder's ``...ForCausalLM`` forward: the base model, ``lm_head`` and the shifted loss."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        logits_to_keep: int | torch.Tensor = 0,
        **kwargs: Any,
    ) -> CausalLMOutputWithPast | tuple:
        """Logits for every position (or the last ``logits_to_keep``), and the loss when ``labels`` are given
        (see :func:`causal_lm_forward` for ``num_items_in_batch``). Other keyword arguments (``cache_position``,
        ``output_attentions``, ...) go to the base model."""
        return causal_lm_forward(self, labels, logits_to_keep, head_inputs(locals(), "labels", "logits_to_keep"))


class DecoderClassifierForward:
    """A decoder's ``...ForSequenceClassification`` forward: ``score`` read at the last non-padding token."""

    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        position_ids: torch.LongTensor | None = None,
        past_key_values: Any = None,
        inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> SequenceClassifierOutputWithPast | tuple:
        """Class scores ``(batch, num_labels)``; a loss chosen by ``config.problem_type`` with ``labels``.
        Other keyword arguments (``output_attentions``, ...) go to the base model."""
        return sequence_classifier_forward(self, labels, head_inputs(locals(), "labels"))


def head_inputs(arguments: dict[str, Any], *own: str) -> dict[str, Any]:
    """What a task head's ``forward`` passes on to its base model: its arguments (``locals()``) except
    ``self``, its ``own`` ones (``labels``, ...) and ``kwargs``, merged with ``kwargs``. (A config subclass's
    ``__init__`` passes its arguments on to its base class the same way.)"""
    skip = {"self", "kwargs", "__class__", *own}
    return {**{k: v for k, v in arguments.items() if k not in skip}, **arguments.get("kwargs", {})}


@dataclass
class DecoderRun:
    """What one forward of a decoder stack carries from its inputs to its output (see :func:`begin_decoder`)."""

    hidden_states: torch.Tensor
    cache: Cache | None
    cache_position: torch.Tensor
    position_ids: torch.Tensor
    use_cache: bool
    output_attentions: bool
    output_hidden_states: bool
    return_dict: bool


def begin_decoder(
    model: Any,
    embed: Any,
    input_ids: torch.Tensor | None,
    inputs_embeds: torch.Tensor | None,
    past_key_values: Any,
    use_cache: bool | None,
    position_ids: torch.Tensor | None,
    kwargs: dict[str, Any],
) -> DecoderRun:
    """The shared start of every decoder stack's forward: flags resolved from ``kwargs`` or the config
    (``output_attentions``, ``output_hidden_states``, ``return_dict``), tokens embedded, the cache prepared
    (``cache`` is accepted as the transformers 5 name of ``past_key_values``), and the cache slots
    (``cache_position``) and positions of the new tokens (by default they follow what the cache holds)."""
    check_token_inputs(input_ids, inputs_embeds)
    config = model.config
    past_key_values, use_cache = requested_cache(model, past_key_values, use_cache, kwargs)
    if inputs_embeds is None:
        inputs_embeds = embed(input_ids)
    cache = prepare_cache(past_key_values, use_cache, config)
    cache_position = kwargs.get("cache_position")
    if cache_position is None:
        cache_position = cache_positions(cache, inputs_embeds.shape[1], inputs_embeds.device)

    def flag(name: str) -> bool:
        return output_flag(config, name, kwargs.get(name))

    return DecoderRun(
        hidden_states=inputs_embeds,
        cache=cache,
        cache_position=cache_position,
        position_ids=cache_position.unsqueeze(0) if position_ids is None else position_ids,
        use_cache=use_cache,
        output_attentions=flag("output_attentions"),
        output_hidden_states=flag("output_hidden_states"),
        return_dict=flag("return_dict"),
    )


def run_layers(
    owner: Any,
    layers: Any,
    run: DecoderRun,
    masks: dict[int | None, torch.Tensor | None],
    windows: list[int | None],
    position_embeddings: Any = None,
) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
    """The layer loop of every decoder stack: each layer takes ``(hidden, mask, position_embeddings,
    cache, cache_position, output_attentions)`` and returns ``(hidden, weights)``; layer ``i`` gets the
    mask of its sliding window ``windows[i]``. Recomputes activations in backward when ``owner`` has
    gradient checkpointing on and trains. Returns the last hidden states and, when asked, the inputs of
    every layer and their attention weights."""
    hidden = run.hidden_states
    all_hidden: list[torch.Tensor] = []
    all_attn: list[torch.Tensor] = []
    for layer, window in zip(layers, windows):
        if run.output_hidden_states:
            all_hidden.append(hidden)
        args = (hidden, masks[window], position_embeddings, run.cache, run.cache_position, run.output_attentions)
        hidden, weights = call_layer(owner, layer, *args)
        if run.output_attentions:
            all_attn.append(weights)
    return hidden, all_hidden, all_attn


def finish_decoder(
    hidden_states: torch.Tensor, run: DecoderRun, all_hidden: list[torch.Tensor], all_attn: list[torch.Tensor]
) -> BaseModelOutputWithPast | tuple:
    """The output of a decoder stack from its final (normalised) hidden states."""
    if run.output_hidden_states:
        all_hidden.append(hidden_states)
    out = BaseModelOutputWithPast(
        last_hidden_state=hidden_states,
        past_key_values=run.cache if run.use_cache else None,
        hidden_states=tuple(all_hidden) if run.output_hidden_states else None,
        attentions=tuple(all_attn) if run.output_attentions else None,
    )
    return out if run.return_dict else out.to_tuple()


class CausalSelfAttention(nn.Module):
    """Causal self-attention over a KV cache, taking what :func:`run_layers` passes a layer. Subclasses set
    ``config``, ``layer_idx`` and ``attention_dropout`` (the dropout of the attention weights, in training
    only) and define ``_project`` and ``_output``; ``scaling`` is the score scale (``None``: the attend
    function's ``head_dim ** -0.5``)."""

    scaling: float | None = None

    def _project(
        self, hidden_states: torch.Tensor, position_embeddings: Any
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Queries, keys and values ``(batch, heads, seq, head_dim)`` of the new tokens (keys and values may
        have fewer heads), normalised and rotated as the family does."""
        raise NotImplementedError(f"{type(self).__name__} must define _project")

    def _output(self, attended: torch.Tensor) -> torch.Tensor:
        """The output projection of the merged heads ``(batch, seq, heads * head_dim)``."""
        raise NotImplementedError(f"{type(self).__name__} must define _output")

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        position_embeddings: Any = None,
        cache: Any = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        q, k, v = self._project(hidden_states, position_embeddings)
        if cache is not None:
            k, v = cache.update(k, v, self.layer_idx, {"cache_position": cache_position})
        attend = attention_function(self.config._attn_implementation, output_attentions)
        dropout = self.attention_dropout if self.training else 0.0
        out, weights = attend(q, k, v, mask, dropout=dropout, scale=self.scaling, is_causal=True)
        return self._output(merge_heads(out)), weights


class PreNormDecoderLayer(nn.Module):
    """A pre-norm residual block, ``x + attn(norm_1(x))`` then ``x + mlp(norm_2(x))``, taking what
    :func:`run_layers` passes a layer."""

    def _sublayers(self) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """The block's ``(norm_1, attention, norm_2, mlp)``, under the family's checkpoint names."""
        raise NotImplementedError(f"{type(self).__name__} must define _sublayers")

    def forward(
        self,
        hidden_states: torch.Tensor,
        mask: torch.Tensor | None,
        position_embeddings: Any = None,
        cache: Any = None,
        cache_position: torch.Tensor | None = None,
        output_attentions: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        norm_1, attention, norm_2, mlp = self._sublayers()
        attn, weights = attention(
            norm_1(hidden_states), mask, position_embeddings, cache, cache_position, output_attentions
        )
        hidden_states = hidden_states + attn
        return hidden_states + mlp(norm_2(hidden_states)), weights


def init_decoder_weights(module: nn.Module, std: float) -> None:
    """The decoders' weight initialisation: linear weights (``nn.Linear`` and the transposed ``Conv1D``)
    and embeddings ~ N(0, std), biases and the padding row zero, norms one (and zero bias)."""
    if isinstance(module, (nn.Linear, Conv1D)):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.Embedding):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        if module.padding_idx is not None:
            module.weight.data[module.padding_idx].zero_()
    elif isinstance(module, (RMSNorm, nn.LayerNorm)):
        if module.weight is not None:
            nn.init.ones_(module.weight)
        if getattr(module, "bias", None) is not None:
            nn.init.zeros_(module.bias)
