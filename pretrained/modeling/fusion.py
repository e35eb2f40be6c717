"""Inference layout for linear layers: fused and stored transposed, without extra memory.

Two things make a decode step faster on CPUs, and neither changes what a checkpoint or an optimizer sees:

* **Fusion.** Layers that read the same input (``q_proj``/``k_proj``/``v_proj``; ``gate_proj``/``up_proj``)
  become one matmul instead of several.
* **Transposed storage.** The weights are kept as ``(in_features, out_features)`` and multiplied as
  ``x @ W``: with a few rows of input (decoding) MKL runs this 15-20% faster than ``x @ W.T`` on the
  checkpoint's ``(out, in)`` layout, which is what ``nn.Linear`` does.

At the first inference call (no gradients needed), the weights of a group are copied into one
``(in, sum of out)`` tensor and each layer's parameter is re-pointed (``param.data``) to its transposed
slice of it. Parameters keep their names, objects, shapes and values (they just become non-contiguous
views), so ``state_dict``/``save_pretrained``, optimizers and tied weights are unaffected. Whenever the
parameters stop being those views (``model.to(...)``, a replaced or quantized module), the packed
weight is rebuilt or the plain layers are used. :func:`unpack` restores contiguous parameters.
"""

from __future__ import annotations

import torch
from torch import nn


class FusedLinears:
    """The packed weight of a fixed group of linear layers of one module (see module docstring).

    Args:
        names: Attribute names of the layers on the owning module, in output order.
    """

    def __init__(self, *names: str) -> None:
        self.names = names
        self.weight_t: torch.Tensor | None = None  # (in_features, sum of out_features)
        self.bias: torch.Tensor | None = None
        self.sizes: list[int] = []
        self._ptrs: tuple[int, ...] = ()
        self._refused: tuple[int, ...] = ()  # ids of layers that cannot be packed (don't retry every call)

    def _valid(self, layers: list[nn.Module]) -> bool:
        if self.weight_t is None:
            return False
        for layer, ptr in zip(layers, self._ptrs):  # noqa: SIM110 - a plain loop is cheaper per token
            if layer.weight.data_ptr() != ptr:
                return False
        return True

    def _pack(self, layers: list[nn.Module]) -> bool:
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
            self._refused, self.weight_t = ids, None
            return False
        sizes = [w.shape[0] for w in weights]
        # Plain tensors even when called under inference_mode, so training later still works.
        with torch.inference_mode(False), torch.no_grad():
            weight_t = weights[0].new_empty((weights[0].shape[1], sum(sizes)))
            bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
            start = 0
            for layer, n in zip(layers, sizes):
                weight_t[:, start : start + n].copy_(layer.weight.detach().t())
                start += n
            start = 0
            for layer, n in zip(layers, sizes):
                layer.weight.data = weight_t[:, start : start + n].t()
                if bias is not None:
                    layer.bias.data = bias[start : start + n]
                start += n
        self.weight_t, self.bias, self.sizes = weight_t, bias, sizes
        self._ptrs = tuple(layer.weight.data_ptr() for layer in layers)
        return True

    def _matmul(self, x: torch.Tensor) -> torch.Tensor:
        if self.bias is None:
            return torch.matmul(x, self.weight_t)
        out = torch.addmm(self.bias, x.reshape(-1, x.shape[-1]), self.weight_t)
        return out.view(*x.shape[:-1], out.shape[-1])

    def __call__(self, owner: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """The layers' outputs from one matmul, or ``None`` when the packed path cannot be used."""
        if torch.compiler.is_compiling():
            if self.weight_t is None:
                return None
        else:
            layers = [getattr(owner, n) for n in self.names]
            if torch.is_grad_enabled() and layers[0].weight.requires_grad:
                return None
            if not self._valid(layers) and not self._pack(layers):
                return None
        out = self._matmul(x)
        return (out,) if len(self.sizes) == 1 else out.split_with_sizes(self.sizes, dim=-1)


def unpack(model: nn.Module) -> None:
    """Give every packed parameter its own contiguous memory again (e.g. before FSDP or export)."""
    with torch.no_grad():
        for module in model.modules():
            for value in list(vars(module).values()):
                if isinstance(value, FusedLinears) and value.weight_t is not None:
                    for name in value.names:
                        layer = getattr(module, name)
                        layer.weight.data = layer.weight.data.contiguous()
                        if layer.bias is not None:
                            layer.bias.data = layer.bias.data.contiguous()
                    value.weight_t = value.bias = None
                    value._ptrs = ()
