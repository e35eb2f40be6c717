"""Fused linear layers for inference, without extra memory.

Layers that read the same input (``q_proj``/``k_proj``/``v_proj``; ``gate_proj``/``up_proj``) run as
one matmul instead of several, which saves per-layer overhead on every decode step.

At the first inference call (no gradients needed), the weights (and biases) of a group are copied into
one ``(sum of out_features, in_features)`` tensor and each layer's parameter is re-pointed
(``param.data``) to its rows of it. Parameters keep their names, objects, shapes and values, so
``state_dict``/``save_pretrained``, optimizers and tied weights are unaffected. Whenever the parameters
stop being those slices (``model.to(...)``, a replaced or quantized module), the fused weight is rebuilt
or the plain layers are used. :func:`unpack` gives every parameter its own memory again.

(Storing the fused weight transposed, ``x @ W``, was measured too: 15-20% faster with one thread but
25% slower with two threads at batch 8 on this machine's MKL, so the checkpoint layout is kept.)
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from pretrained.modeling.kernels import linear


class FusedLinears:
    """The fused weight of a fixed group of linear layers of one module (see module docstring).

    Args:
        names: Attribute names of the layers on the owning module, in output order.
    """

    def __init__(self, *names: str) -> None:
        self.names = names
        self.weight: torch.Tensor | None = None  # (sum of out_features, in_features)
        self.bias: torch.Tensor | None = None
        self.sizes: list[int] = []
        self._ptrs: tuple[int, ...] = ()
        self._refused: tuple[int, ...] = ()  # ids of layers that cannot be fused (don't retry every call)

    def _valid(self, layers: list[nn.Module]) -> bool:
        if self.weight is None:
            return False
        for layer, ptr in zip(layers, self._ptrs):  # noqa: SIM110 - a plain loop is cheaper per token
            if layer.weight.data_ptr() != ptr:
                return False
        return True

    def _pack(self, layers: list[nn.Module], empty: Callable[..., torch.Tensor] | None = None) -> bool:
        ids = tuple(id(layer) for layer in layers)
        if ids == self._refused:
            return False
        weights = [layer.weight for layer in layers] if all(type(m) is nn.Linear for m in layers) else []
        biases = [layer.bias for layer in layers] if weights else []
        ok = (
            weights
            and all(w.device.type != "meta" and w.dtype == weights[0].dtype for w in weights)
            and len({w.device for w in weights}) == 1
            and len({w.shape[1] for w in weights}) == 1
            and (all(b is None for b in biases) or all(b is not None for b in biases))
        )
        if not ok:
            self._refused, self.weight = ids, None
            return False
        sizes = [w.shape[0] for w in weights]
        # Plain tensors even when called under inference_mode, so training later still works.
        with torch.inference_mode(False), torch.no_grad():
            parts = [w.detach() for w in weights]
            if empty is None or weights[0].device.type != "cpu":
                weight = torch.cat(parts)
            else:
                weight = torch.cat(parts, out=empty((sum(sizes), *weights[0].shape[1:]), weights[0].dtype))
            bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
            start = 0
            for layer, n in zip(layers, sizes):
                layer.weight.data = weight[start : start + n]
                if bias is not None:
                    layer.bias.data = bias[start : start + n]
                start += n
        self.weight, self.bias, self.sizes = weight, bias, sizes
        self._ptrs = tuple(layer.weight.data_ptr() for layer in layers)
        return True

    def output(self, owner: nn.Module, x: torch.Tensor) -> torch.Tensor | None:
        """The layers' outputs concatenated on the last axis, or ``None`` when fusing is not possible."""
        if torch.compiler.is_compiling():
            if self.weight is None:
                return None
        else:
            layers = [getattr(owner, n) for n in self.names]
            if torch.is_grad_enabled() and layers[0].weight.requires_grad:
                return None
            if not self._valid(layers) and not self._pack(layers):
                return None
        return linear(x, self.weight, self.bias)

    def __call__(self, owner: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """The layers' outputs from one matmul, or ``None`` when the fused path cannot be used."""
        out = self.output(owner, x)
        return None if out is None else out.split_with_sizes(self.sizes, dim=-1)


def pack(
    model: nn.Module, empty: Callable[..., torch.Tensor], keep: Callable[[torch.Tensor], bool] | None = None
) -> None:
    """Pack every fused group of ``model`` now, its CPU weight allocated by ``empty(shape, dtype)``
    (e.g. :func:`pretrained.utils.hugepages.empty`). Packed groups whose weight ``keep`` accepts stay."""
    for module in model.modules():
        for value in list(vars(module).values()):
            if isinstance(value, FusedLinears):
                layers = [getattr(module, n) for n in value.names]
                if not (value._valid(layers) and keep is not None and keep(value.weight)):
                    value._pack(layers, empty)


def unpack(model: nn.Module) -> None:
    """Give every fused parameter its own memory again (e.g. before FSDP or export)."""
    with torch.no_grad():
        for module in model.modules():
            for value in list(vars(module).values()):
                if isinstance(value, FusedLinears) and value.weight is not None:
                    for name in value.names:
                        layer = getattr(module, name)
                        layer.weight.data = layer.weight.data.clone()
                        if layer.bias is not None:
                            layer.bias.data = layer.bias.data.clone()
                    value.weight = value.bias = None
                    value._ptrs = ()
