"""Run several ``nn.Linear`` layers that read the same input as one matmul, without extra memory.

At the first inference call the weights (and biases) of, e.g., ``q_proj``/``k_proj``/``v_proj`` are
copied into one tensor and each layer's parameter is re-pointed (``param.data``) to its slice of it:
the parameters keep their names, objects and values (checkpoints, optimizers and ``state_dict`` are
unaffected) while a decode step makes one matmul call instead of three. Whenever the parameters stop
being slices of that tensor (``model.to(...)``, a replaced module, a quantized layer), the fused path
is dropped and rebuilt or skipped. It is never used when gradients are needed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FusedLinears:
    """The fused weight of a fixed group of linear layers (see module docstring).

    Args:
        names: Attribute names of the layers on the owning module, in output order.
    """

    def __init__(self, *names: str) -> None:
        self.names = names
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None
        self.sizes: list[int] = []
        self._ptrs: tuple[int, ...] = ()
        self._refused: tuple[int, ...] = ()  # ids of layers that cannot be fused (don't retry every call)

    def _layers(self, owner: nn.Module) -> list[nn.Module]:
        return [getattr(owner, n) for n in self.names]

    def _valid(self, layers: list[nn.Module]) -> bool:
        if self.weight is None:
            return False
        for layer, ptr in zip(layers, self._ptrs):  # noqa: SIM110 - a plain loop is cheaper per token
            if layer.weight.data_ptr() != ptr:
                return False
        return True

    def _fuse(self, layers: list[nn.Module]) -> bool:
        ids = tuple(id(layer) for layer in layers)
        if ids == self._refused:
            return False
        weights = [layer.weight for layer in layers] if all(type(m) is nn.Linear for m in layers) else []
        biases = [layer.bias for layer in layers] if weights else []
        ok = (
            weights
            and all(w.device.type != "meta" and w.dtype == weights[0].dtype for w in weights)
            and len({w.device for w in weights}) == 1
            and (all(b is None for b in biases) or all(b is not None for b in biases))
        )
        if not ok:
            self._refused, self.weight = ids, None
            return False
        # Plain tensors even when called under inference_mode, so training later still works.
        with torch.inference_mode(False), torch.no_grad():
            weight = torch.cat([w.detach() for w in weights])
            bias = None if biases[0] is None else torch.cat([b.detach() for b in biases])
            start = 0
            for layer in layers:
                n = layer.weight.shape[0]
                layer.weight.data = weight[start : start + n]
                if bias is not None:
                    layer.bias.data = bias[start : start + n]
                start += n
        self.weight, self.bias = weight, bias
        self.sizes = [layer.weight.shape[0] for layer in layers]
        self._ptrs = tuple(layer.weight.data_ptr() for layer in layers)
        return True

    def __call__(self, owner: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, ...] | None:
        """The layers' outputs computed with one matmul, or ``None`` when the fused path cannot be used."""
        if torch.compiler.is_compiling():
            if self.weight is None:
                return None
            return F.linear(x, self.weight, self.bias).split_with_sizes(self.sizes, dim=-1)
        layers = self._layers(owner)
        if torch.is_grad_enabled() and layers[0].weight.requires_grad:
            return None
        if not self._valid(layers) and not self._fuse(layers):
            return None
        return F.linear(x, self.weight, self.bias).split_with_sizes(self.sizes, dim=-1)
