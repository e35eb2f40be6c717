"""Key/value caches for autoregressive decoding.

* :class:`DynamicCache` grows as tokens arrive. Each layer keeps a buffer with spare room and grows it
  in steps of ``DynamicLayer.step`` tokens, so a decode step writes one slot instead of re-concatenating
  the whole history (which costs a full copy of the cache per token).
* :class:`StaticCache` preallocates ``max_cache_len`` slots and writes by cache position: shapes never
  change, which is what ``torch.compile`` (and CUDA graphs) want.
* Models with a sliding window (Mistral) get :class:`SlidingWindowLayer` layers in a dynamic cache, which
  keep only the last ``sliding_window - 1`` keys; the static cache keeps every slot and lets the
  attention mask apply the window.

A model calls ``cache.update(key, value, layer_idx, cache_kwargs)`` in every attention layer and asks
``cache.get_mask_sizes(q_len, layer_idx)`` / ``cache.get_seq_length()`` *before* the layers run.
Legacy tuple caches (``((k0, v0), (k1, v1), ...)``) convert with :meth:`DynamicCache.from_legacy_cache`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch


class CacheLayer:
    """The keys and values of one attention layer; subclasses decide how they are stored and count the
    tokens written so far in ``length`` (on the host: asking for it never syncs with the device)."""

    is_sliding = False
    is_static = False

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_position: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        raise NotImplementedError

    def get_seq_length(self) -> int:
        return self.length

    def crop(self, max_length: int) -> None:
        """Keep the first ``max_length`` tokens (a negative value drops that many from the end)."""
        if max_length < 0:
            max_length = self.length + max_length
        self.length = max(0, min(self.length, max_length))

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        """``(kv_len, kv_offset)`` the next update with ``query_length`` new tokens will return."""
        raise NotImplementedError


class DynamicLayer(CacheLayer):
    """A layer cache that grows with the sequence, in place, ``step`` slots at a time."""

    step = 256

    def __init__(self) -> None:
        self._keys: torch.Tensor | None = None
        self._values: torch.Tensor | None = None
        self.length = 0
        self._spare: tuple[torch.Tensor, torch.Tensor] | None = None  # reorder's second buffer (beam search)

    @property
    def keys(self) -> torch.Tensor | None:
        return None if self._keys is None else self._keys[:, :, : self.length]

    @property
    def values(self) -> torch.Tensor | None:
        return None if self._values is None else self._values[:, :, : self.length]

    def _grow(self, needed: int, like: torch.Tensor, value_like: torch.Tensor) -> None:
        capacity = -(-needed // self.step) * self.step
        keys = like.new_empty((*like.shape[:2], capacity, like.shape[3]))
        values = value_like.new_empty((*value_like.shape[:2], capacity, value_like.shape[3]))
        if self.length:
            keys[:, :, : self.length] = self._keys[:, :, : self.length]
            values[:, :, : self.length] = self._values[:, :, : self.length]
        self._keys, self._values = keys, values

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_position: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        new = key_states.shape[2]
        if torch.is_grad_enabled() and (key_states.requires_grad or value_states.requires_grad):
            # In-place writes would break autograd on views handed out earlier: concatenate instead.
            if self._keys is None:
                self._keys, self._values = key_states, value_states
            else:
                self._keys = torch.cat((self.keys, key_states), dim=2)
                self._values = torch.cat((self.values, value_states), dim=2)
            self.length += new
            return self._keys, self._values
        end = self.length + new
        if self._keys is None or end > self._keys.shape[2]:
            self._grow(end, key_states, value_states)
        self._keys.narrow(2, self.length, new).copy_(key_states)
        self._values.narrow(2, self.length, new).copy_(value_states)
        self.length = end
        return self._keys.narrow(2, 0, end), self._values.narrow(2, 0, end)

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.length + query_length, 0

    def reserve(self, new: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The whole key and value buffers ``(batch, heads, capacity, head_dim)``, grown to hold ``new`` more
        tokens: for kernels that write slots ``length ..`` themselves and then advance ``length``."""
        if self.length + new > self._keys.shape[2]:
            self._grow(self.length + new, self._keys, self._values)
        return self._keys, self._values

    def reorder(self, beam_idx: torch.Tensor) -> None:
        # Gathered straight into a second buffer of the same capacity, which then becomes the cache: one pass
        # over the written slots per step (beam search), where gathering in place needs a copy and a copy back.
        if self._keys is None:
            return
        n = self.length
        spare = self._spare
        if spare is None or spare[0].shape != self._keys.shape or spare[1].shape != self._values.shape:
            spare = (torch.empty_like(self._keys), torch.empty_like(self._values))
        keys, values = spare
        torch.index_select(self._keys[:, :, :n], 0, beam_idx.to(keys.device), out=keys[:, :, :n])
        torch.index_select(self._values[:, :, :n], 0, beam_idx.to(values.device), out=values[:, :, :n])
        self._spare = (self._keys, self._values)
        self._keys, self._values = keys, values

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self._keys is not None:
            self._keys = self._keys.repeat_interleave(repeats, dim=0)
            self._values = self._values.repeat_interleave(repeats, dim=0)

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        if self._keys is not None:
            self._keys, self._values = self._keys[indices], self._values[indices]

    def reset(self) -> None:
        self.length = 0


class SlidingWindowLayer(DynamicLayer):
    """A dynamic layer that keeps only the last ``sliding_window - 1`` keys after each update.

    ``update`` still returns the kept keys plus the new ones, so every new query sees its full window.
    """

    is_sliding = True

    def __init__(self, sliding_window: int) -> None:
        super().__init__()
        self.sliding_window = sliding_window
        self.cumulative_length = 0

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_position: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        self.cumulative_length += key_states.shape[2]
        if self._keys is None:
            full_k, full_v = key_states, value_states
        else:
            full_k = torch.cat((self._keys, key_states), dim=2)
            full_v = torch.cat((self._values, value_states), dim=2)
        keep = self.sliding_window - 1
        self._keys, self._values = full_k[:, :, -keep:], full_v[:, :, -keep:]
        self.length = self._keys.shape[2]
        return full_k, full_v

    @property
    def keys(self) -> torch.Tensor | None:
        return self._keys

    @property
    def values(self) -> torch.Tensor | None:
        return self._values

    def get_seq_length(self) -> int:
        return self.cumulative_length

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        kept = min(self.cumulative_length, self.sliding_window - 1)
        return kept + query_length, self.cumulative_length - kept

    def reorder(self, beam_idx: torch.Tensor) -> None:
        if self._keys is not None:
            self._keys = self._keys.index_select(0, beam_idx.to(self._keys.device))
            self._values = self._values.index_select(0, beam_idx.to(self._values.device))

    def crop(self, max_length: int) -> None:
        raise NotImplementedError("a sliding-window cache cannot be cropped: the dropped keys are gone")

    def reset(self) -> None:
        self._keys = self._values = None
        self.length = self.cumulative_length = 0


class StaticLayer(CacheLayer):
    """A preallocated ``(batch, kv_heads, max_cache_len, head_dim)`` layer cache written by position."""

    is_static = True

    def __init__(self, max_cache_len: int) -> None:
        self.max_cache_len = max_cache_len
        self.keys: torch.Tensor | None = None
        self.values: torch.Tensor | None = None
        self.length = 0

    def allocate(self, batch: int, heads: int, head_dim: int, dtype: torch.dtype, device: Any) -> None:
        shape = (batch, heads, self.max_cache_len, head_dim)
        self.keys = torch.zeros(shape, dtype=dtype, device=device)
        self.values = torch.zeros(shape, dtype=dtype, device=device)
        # Fixed addresses let compiled graphs treat the buffers as static inputs.
        if hasattr(torch, "_dynamo"):
            torch._dynamo.mark_static_address(self.keys)
            torch._dynamo.mark_static_address(self.values)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, cache_position: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.keys is None:
            b, h, _, d = key_states.shape
            self.allocate(b, h, d, key_states.dtype, key_states.device)
        new = key_states.shape[2]
        if cache_position is None:
            if self.length + new > self.max_cache_len:
                raise ValueError(
                    f"StaticCache is full: {self.length} + {new} tokens exceed max_cache_len={self.max_cache_len}"
                )
            cache_position = torch.arange(self.length, self.length + new, device=self.keys.device)
        self.keys.index_copy_(2, cache_position, key_states.to(self.keys.dtype))
        self.values.index_copy_(2, cache_position, value_states.to(self.values.dtype))
        # Inside a compiled graph a changing Python int would force a recompile per token; the caller
        # advances the counter instead (see StaticCache.advance).
        if not torch.compiler.is_compiling():
            self.length += new
        return self.keys, self.values

    def get_mask_sizes(self, query_length: int) -> tuple[int, int]:
        return self.max_cache_len, 0

    def reorder(self, beam_idx: torch.Tensor) -> None:
        # Only the slots written so far (generate writes them in order): the rest of a long buffer holds
        # nothing yet (a count of 0 may be one that a compiled forward could not advance: all slots then).
        # The buffers keep their addresses (compiled graphs hold them), hence the copy back.
        if self.keys is not None:
            n = min(self.length, self.max_cache_len) or self.max_cache_len
            for buffer in (self.keys, self.values):
                written = buffer[:, :, :n]
                written.copy_(written.index_select(0, beam_idx.to(buffer.device)))

    def batch_repeat_interleave(self, repeats: int) -> None:
        if self.keys is not None:
            self.keys = self.keys.repeat_interleave(repeats, dim=0)
            self.values = self.values.repeat_interleave(repeats, dim=0)

    def reset(self) -> None:
        if self.keys is not None:
            self.keys.zero_()
            self.values.zero_()
        self.length = 0


class Cache:
    """A list of per-layer caches, addressed by layer index.

    Args:
        layers: Prebuilt layers; when ``None``, ``layer_factory`` builds one lazily per new layer index.
        layer_factory: Callable returning a fresh :class:`CacheLayer`.
    """

    def __init__(self, layers: list[CacheLayer] | None = None, layer_factory: Any = None) -> None:
        if layers is None and layer_factory is None:
            raise ValueError("give either `layers` or `layer_factory`")
        self.layers: list[CacheLayer] = list(layers) if layers is not None else []
        self.layer_factory = layer_factory

    def _layer(self, layer_idx: int) -> CacheLayer:
        while len(self.layers) <= layer_idx:
            if self.layer_factory is None:
                raise IndexError(f"cache has {len(self.layers)} layers, no layer {layer_idx}")
            self.layers.append(self.layer_factory())
        return self.layers[layer_idx]

    def update(
        self,
        key_states: torch.Tensor,
        value_states: torch.Tensor,
        layer_idx: int,
        cache_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the new ``(batch, kv_heads, new_len, head_dim)`` keys/values; return all visible ones."""
        cache_position = cache_kwargs.get("cache_position") if cache_kwargs else None
        return self._layer(layer_idx).update(key_states, value_states, cache_position)

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Number of tokens seen so far (0 for an empty cache)."""
        return self.layers[layer_idx].get_seq_length() if layer_idx < len(self.layers) else 0

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        """``(kv_len, kv_offset)`` for the attention of ``query_length`` new tokens in ``layer_idx``."""
        if layer_idx < len(self.layers):
            return self.layers[layer_idx].get_mask_sizes(query_length)
        if self.layer_factory is not None:
            return self.layer_factory().get_mask_sizes(query_length)
        return query_length, 0

    @property
    def is_sliding(self) -> list[bool]:
        return [layer.is_sliding for layer in self.layers]

    @property
    def is_compileable(self) -> bool:
        return bool(self.layers) and all(layer.is_static for layer in self.layers)

    def get_max_cache_shape(self) -> int | None:
        """The capacity of a static cache, ``None`` for caches that grow."""
        layer = self.layers[0] if self.layers else None
        return getattr(layer, "max_cache_len", None) if layer is not None and layer.is_static else None

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        """Reorder the batch dimension of every layer (beam search)."""
        for layer in self.layers:
            layer.reorder(beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        for layer in self.layers:
            layer.batch_repeat_interleave(repeats)

    def crop(self, max_length: int) -> None:
        for layer in self.layers:
            layer.crop(max_length)

    def reset(self) -> None:
        """Forget every token while keeping the allocated memory."""
        for layer in self.layers:
            layer.reset()

    def __len__(self) -> int:
        return len(self.layers)

    def __getitem__(self, layer_idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        layer = self.layers[layer_idx]
        return layer.keys, layer.values

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for i in range(len(self.layers)):
            yield self[i]

    def to_legacy_cache(self) -> tuple[tuple[torch.Tensor, torch.Tensor], ...]:
        """The ``((keys, values), ...)`` tuple format of older transformers versions."""
        return tuple(self)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(layers={len(self.layers)}, seq_length={self.get_seq_length()})"


def layer_windows(config: Any) -> list[int | None]:
    """The sliding window of each decoder layer (``None`` for full attention), read from a config.

    ``layer_types`` (``"sliding_attention"`` / ``"full_attention"`` per layer) wins; otherwise a
    ``sliding_window`` applies to every layer unless ``use_sliding_window`` is false (Qwen2).
    """
    n = getattr(config, "num_hidden_layers", 0) or 0
    window = getattr(config, "sliding_window", None)
    if window is None or not getattr(config, "use_sliding_window", True):
        return [None] * n
    types = getattr(config, "layer_types", None)
    if types:
        return [int(window) if t == "sliding_attention" else None for t in types[:n]]
    return [int(window)] * n


class DynamicCache(Cache):
    """A cache that grows with the sequence (the default for ``generate`` and ``use_cache=True``).

    Args:
        ddp_cache_data: Optional ``[(keys, values), ...]`` to start from (the legacy tuple format).
        config: The model config; with a sliding window (Mistral) the layers keep only that window.
    """

    def __init__(
        self, ddp_cache_data: Iterable[tuple[torch.Tensor, torch.Tensor]] | None = None, config: Any = None
    ):
        super().__init__(layer_factory=DynamicLayer)
        if config is not None:
            self.layers = [
                DynamicLayer() if w is None else SlidingWindowLayer(w) for w in layer_windows(config)
            ]
        for i, (k, v) in enumerate(ddp_cache_data or ()):
            self.update(k, v, i)

    @classmethod
    def from_legacy_cache(
        cls, past_key_values: Iterable[tuple[torch.Tensor, torch.Tensor]] | None
    ) -> DynamicCache:
        """Build a cache from the legacy ``((keys, values), ...)`` tuple format."""
        return cls(ddp_cache_data=past_key_values)


class StaticCache(Cache):
    """A preallocated cache of ``max_cache_len`` slots per layer (shapes never change).

    Memory is allocated at the first update (or at once when ``max_batch_size`` is given), for the batch,
    dtype and device of the keys.

    Args:
        config: The model config (number of layers, heads and head size).
        max_cache_len: Slots per layer: prompt plus generated tokens.
        max_batch_size: Allocate now for this batch size instead of at the first update.
        device: Device of the eager allocation.
        dtype: Dtype of the eager allocation (default float32).
    """

    def __init__(
        self,
        config: Any,
        max_cache_len: int,
        max_batch_size: int | None = None,
        device: Any = None,
        dtype: torch.dtype | None = None,
        **kwargs: Any,
    ) -> None:
        if max_cache_len is None or max_cache_len <= 0:
            raise ValueError(f"StaticCache needs a positive max_cache_len, got {max_cache_len!r}")
        super().__init__(layers=[StaticLayer(max_cache_len) for _ in range(config.num_hidden_layers)])
        self.max_cache_len = max_cache_len
        if max_batch_size is not None:
            heads = getattr(config, "num_key_value_heads", None) or config.num_attention_heads
            head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
            for layer in self.layers:
                layer.allocate(max_batch_size, heads, head_dim, dtype or torch.float32, device or "cpu")

    def advance(self, tokens: int) -> None:
        """Count ``tokens`` more written slots (after a compiled step, which cannot update the count)."""
        for layer in self.layers:
            layer.length += tokens


class EncoderDecoderCache:
    """The caches of an encoder-decoder: decoder self-attention and cross-attention over the encoder.

    The self-attention cache grows (or fills its static slots) one token at a time. The cross-attention
    cache is written once per layer, from the encoder's output, on the first decoder step;
    ``is_updated[layer_idx]`` tells a layer whether its cross keys/values are already there, so later
    steps reuse them instead of projecting the encoder output again.

    Args:
        self_attention_cache: The decoder's own cache (:class:`DynamicCache` or :class:`StaticCache`).
        cross_attention_cache: Keys/values over the encoder output (a :class:`DynamicCache` by default).
    """

    def __init__(self, self_attention_cache: Cache | None = None, cross_attention_cache: Cache | None = None):
        self.self_attention_cache = self_attention_cache if self_attention_cache is not None else DynamicCache()
        self.cross_attention_cache = cross_attention_cache if cross_attention_cache is not None else DynamicCache()
        self.is_updated: dict[int, bool] = {
            i: self.cross_attention_cache.get_seq_length(i) > 0 for i in range(len(self.cross_attention_cache))
        }

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int,
        cache_kwargs: dict[str, Any] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Update the self-attention cache (cross-attention layers write ``cross_attention_cache``)."""
        return self.self_attention_cache.update(key_states, value_states, layer_idx, cache_kwargs)

    def update_cross(self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int) -> None:
        """Store a layer's cross-attention keys/values (once per generation) and mark it updated."""
        self.cross_attention_cache.update(key_states, value_states, layer_idx)
        self.is_updated[layer_idx] = True

    def get_seq_length(self, layer_idx: int = 0) -> int:
        """Decoder tokens seen so far."""
        return self.self_attention_cache.get_seq_length(layer_idx)

    def get_mask_sizes(self, query_length: int, layer_idx: int = 0) -> tuple[int, int]:
        return self.self_attention_cache.get_mask_sizes(query_length, layer_idx)

    def get_max_cache_shape(self) -> int | None:
        return self.self_attention_cache.get_max_cache_shape()

    def advance(self, tokens: int) -> None:
        """Count ``tokens`` more written self-attention slots (after a compiled step; static caches)."""
        self.self_attention_cache.advance(tokens)

    @property
    def is_compileable(self) -> bool:
        return self.self_attention_cache.is_compileable

    @property
    def is_sliding(self) -> list[bool]:
        return self.self_attention_cache.is_sliding

    def _both(self, method: str, *args: Any) -> None:
        getattr(self.self_attention_cache, method)(*args)
        getattr(self.cross_attention_cache, method)(*args)

    def reorder_cache(self, beam_idx: torch.LongTensor) -> None:
        self._both("reorder_cache", beam_idx)

    def batch_repeat_interleave(self, repeats: int) -> None:
        self._both("batch_repeat_interleave", repeats)

    def crop(self, max_length: int) -> None:
        """Crop the decoder's own history; the encoder side never changes length."""
        self.self_attention_cache.crop(max_length)

    def reset(self) -> None:
        self._both("reset")
        self.is_updated = {}

    def __len__(self) -> int:
        return len(self.self_attention_cache)

    def __getitem__(self, layer_idx: int) -> tuple[torch.Tensor, ...]:
        """``(self_keys, self_values, cross_keys, cross_values)`` of one layer (the legacy layout)."""
        cross = (self.cross_attention_cache[layer_idx] if layer_idx < len(self.cross_attention_cache)
                 else (None, None))
        return (*self.self_attention_cache[layer_idx], *cross)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, ...]]:
        for i in range(len(self)):
            yield self[i]

    def to_legacy_cache(self) -> tuple[tuple[torch.Tensor, ...], ...]:
        return tuple(self)

    @classmethod
    def from_legacy_cache(cls, past_key_values: Iterable[tuple[torch.Tensor, ...]] | None) -> EncoderDecoderCache:
        """Build from ``((self_k, self_v, cross_k, cross_v), ...)``."""
        cache = cls()
        for i, layer in enumerate(past_key_values or ()):
            cache.self_attention_cache.update(layer[0], layer[1], i)
            if len(layer) > 2 and layer[2] is not None:
                cache.update_cross(layer[2], layer[3], i)
        return cache

    def __repr__(self) -> str:
        return (f"EncoderDecoderCache(self={self.self_attention_cache!r}, "
                f"cross={self.cross_attention_cache!r})")
