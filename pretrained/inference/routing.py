"""``DecodeKernels``: a torch function mode that sends the linear calls of an inference step to the
kernels of :mod:`pretrained.inference.kernels` where they are faster.

Models call ``nn.Linear`` as always; inside ``with DecodeKernels(...)`` those calls are looked at one by
one. A call is rerouted only when its tensors are
plain fp32 CPU tensors outside autograd and its shape is one the kernels serve; anything else (a
quantized layer, which never calls ``F.linear`` with a float weight; a sharded ``DTensor`` weight; bf16;
training) runs exactly as without the mode. Torch function modes are per thread and last only for the
``with`` block: nothing changes for other code.

Fused projections (one-row linears in graphs compiled by inductor): a compiled decoder packs sibling
projections that read the same input (q / k / v, gate / up) side by side and passes the mode a table
``{weight: Group}``. The first member called computes the multiply-and-sum over the whole packed weight
and returns its own columns; a sibling called with the same input tensor (``is``: dynamo resolves that
while tracing) returns its columns of that product. So the traced step holds one reduction per group,
one pass over its weights, while the model still calls its three layers; a member called with another
input computes its own product again (right numbers, no merge). This assumes the input is not changed in
place between the sibling calls, which holds for the projections of every family here. Library calls
(MKL, oneDNN, the small-rows kernel) stay per layer: for more rows each layer keeps its own call.

One-query attention of one sequence (a batch-1 decode step; graphs compiled by inductor, caches up to
``ONE_QUERY_MAX_LENGTH``) is written as multiplies and sums too (:func:`one_query_attention`): inductor
fuses it into the step's loops, where the SDPA kernel's call was mostly fixed cost at one query. The query
is materialised first, else inductor recomputes its rotation for every key position (which made this
form slower than SDPA when it was tried before). More rows, or longer caches, keep SDPA.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from pretrained.inference import kernels

_PLAIN = (torch.Tensor, torch.nn.Parameter)


def plain_fp32_cpu(*tensors: torch.Tensor | None) -> bool:
    """Whether every given tensor (``None`` skipped) is a plain fp32 CPU tensor: what the kernels serve."""
    return all(
        t is None or (type(t) in _PLAIN and t.device.type == "cpu" and t.dtype == torch.float32) for t in tensors
    )


# The int8 kernel's operators that compiled steps call (those registered when last refreshed, outside tracing).
_INT8_OPS: list[Any] = []


def refresh_int8_ops() -> None:
    """Note the int8 kernel's operators registered so far (call before tracing a step that may use them)."""
    ops = []
    for namespace in ("pretrained_quant", "pretrained"):
        space = getattr(torch.ops, namespace)
        if hasattr(space, "int8_rows_linear"):
            ops.append(space.int8_rows_linear)
    _INT8_OPS[:] = ops


# False: one-query attention stays with SDPA in compiled steps too (for measuring what the reduction gains)
ONE_QUERY_REDUCTIONS = True
# The longest cache whose one-query attention is written as reductions: measured faster than SDPA up to 464
# positions at one thread; past that SDPA's own parallel loops may win.
ONE_QUERY_MAX_LENGTH = 512


def one_query_attention(query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
                        scale: float | None = None) -> torch.Tensor:  # fmt: skip
    """SDPA of one query ``(1, heads, 1, dim)`` against ``key`` / ``value`` ``(1, kv_heads, len, dim)`` (fewer
    heads: grouped), ``mask`` boolean or additive ``(1, 1, 1, len)``, written as multiplies and sums."""
    heads, dim = query.shape[1], query.shape[3]
    kv_heads, length = key.shape[1], key.shape[2]
    if torch.compiler.is_compiling():
        # (materialised first: inductor would otherwise recompute the query's rotation for every key position)
        query = torch.ops.prims.inductor_force_stride_order(query, query.stride())
    q = query.reshape(kv_heads, heads // kv_heads, 1, dim)
    scores = (q * key.reshape(kv_heads, 1, length, dim)).sum(-1) * (dim**-0.5 if scale is None else scale)
    if mask is not None:
        mask = mask.reshape(1, 1, length)
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    weights = scores.softmax(-1)  # (kv_heads, groups, len)
    out = (weights.unsqueeze(-1) * value.reshape(kv_heads, 1, length, dim)).sum(-2)
    return out.reshape(1, heads, 1, dim)


class Group(NamedTuple):
    """Where one projection sits in its packed group: the packed weight and bias (``None`` without biases)
    and the member's output columns ``[start, end)``."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    start: int
    end: int
    index: int  # the group's number, shared by its members
    scale: torch.Tensor | None = None  # int8 groups: the packed per-output scales (``weight`` is int8)


class DecodeKernels(TorchFunctionMode):
    """Reroute few-row linears to faster kernels, and in inductor graphs the one-query attention of one
    sequence (see the module docstring).

    Eagerly, 1-8 rows against weights of ``kernels.MIN_KERNEL_WEIGHT`` elements or more go to the small-rows
    kernel through ctypes (built when the mode is made), and 4-32 rows that it does not take against
    weights of ``kernels.MIN_WEIGHT`` or more to oneDNN.

    Args:
        compiled: The step is being traced by ``torch.compile``: the same rows and weights, 2-3 rows
            excepted (they keep MKL), call the opaque custom op (:func:`kernels.small_rows_op`, built by
            :meth:`prepare`), which runs the small-rows kernel or oneDNN.
        reductions: The compiler is inductor, which fuses products written as multiplies and sums into
            the step's loops: one-row linears are written that way. Another backend would materialise a
            weight-sized product, so this is off for them.
        groups: ``{weight: Group}`` of packed projections (see the module docstring); fp32 groups are used
            only when ``compiled`` and ``reductions`` (nothing else merges the sibling calls), int8 groups
            (``Group.scale`` set) by the int8 kernel's operator calls, which the mode sees too.
    """

    def __init__(self, compiled: bool = False, reductions: bool = False, groups: dict | None = None) -> None:
        super().__init__()
        self.compiled = compiled
        self.reductions = reductions
        if not compiled:
            kernels.load_small_rows_kernel()  # eager calls go to it through ctypes (built once per machine)
        self.groups = groups if compiled and groups else None
        self._int8_ops = _INT8_OPS if self.groups else ()
        # group index -> (input, packed product) of the last member called (while tracing: one per group)
        self._products: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    @staticmethod
    def prepare(compiled: bool, reductions: bool) -> None:
        """Build what the mode will call (must run before tracing: tracing cannot compile the kernel)."""
        if compiled:
            kernels.small_rows_op()
        refresh_int8_ops()
        if reductions:
            import torch._inductor.inductor_prims  # noqa: F401 - registers the op one_row_linear uses

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        kwargs = kwargs or {}
        if torch.is_grad_enabled():
            return func(*args, **kwargs)
        if func is F.linear:
            out = self._linear(*args, **kwargs)
        elif func is F.scaled_dot_product_attention and self.reductions and ONE_QUERY_REDUCTIONS:
            out = self._attention(*args, **kwargs)
        else:
            out = None
            for op in self._int8_ops:
                if func is op:
                    out = self._int8_group(func, *args, **kwargs)
        return func(*args, **kwargs) if out is None else out

    def _attention(self, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor,
                   attn_mask: torch.Tensor | None = None, dropout_p: float = 0.0, is_causal: bool = False,
                   scale: float | None = None, enable_gqa: bool = False) -> Any:  # fmt: skip
        """One query of one sequence against a cache, as multiplies and sums; ``None``: another call."""
        if query.dim() != 4 or query.shape[0] != 1 or query.shape[2] != 1 or dropout_p or is_causal:
            return None
        if not plain_fp32_cpu(query, key, value) or key.dim() != 4 or key.shape != value.shape:
            return None
        length, heads, kv_heads = key.shape[2], query.shape[1], key.shape[1]
        if length > ONE_QUERY_MAX_LENGTH or heads % kv_heads or (heads != kv_heads and not enable_gqa):
            return None
        if attn_mask is not None and (tuple(attn_mask.shape) != (1, 1, 1, length)
                                      or attn_mask.dtype not in (torch.bool, torch.float32)):  # fmt: skip
            return None
        return one_query_attention(query, key, value, attn_mask, scale)

    def _int8_group(self, op: Any, x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor,
                    bias: torch.Tensor | None = None) -> Any:  # fmt: skip
        """An int8 kernel call of a packed group's member: the whole group's product (the first member
        called with this input) or this member's columns of it; ``None``: not a member."""
        group = self.groups.get(weight)
        if group is None or group.scale is None or (bias is None) != (group.bias is None):
            return None
        last = self._products.get(group.index)
        if last is not None and last[0] is x:
            return last[1][..., group.start : group.end]
        whole = op(x, group.weight, group.scale, group.bias)
        self._products[group.index] = (x, whole)
        return whole[..., group.start : group.end]

    def _linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> Any:
        if not plain_fp32_cpu(x, weight, bias) or x.dim() == 0 or not x.shape[-1]:
            return None
        rows = x.numel() // x.shape[-1]
        if rows == 1 and self.reductions:
            group = None if self.groups is None else self.groups.get(weight)
            if group is None or (bias is None) != (group.bias is None):
                return kernels.one_row_linear(x, weight, bias)
            last = self._products.get(group.index)
            if last is not None and last[0] is x:  # a sibling already computed it from this input
                return last[1][..., group.start : group.end]
            whole = kernels.one_row_linear(x, group.weight, group.bias)
            self._products[group.index] = (x, whole)
            return whole[..., group.start : group.end]
        if (rows in kernels.KERNEL_ROWS and weight.numel() >= kernels.MIN_KERNEL_WEIGHT
                and kernels.kernel_takes(x, weight, bias)):  # fmt: skip
            if not self.compiled:
                return kernels.kernel_linear(x, weight, bias)
            op = kernels.small_rows_op(build=False) if rows in kernels.LIBRARY_ROWS else None
            if op is not None:  # (2-3 rows keep MKL in graphs: the op's call back into Python costs more)
                return op(x, weight, bias)
        if rows not in kernels.LIBRARY_ROWS or weight.numel() < kernels.MIN_WEIGHT or not kernels.onednn_available():
            return None
        if not self.compiled:
            return kernels.onednn_linear(x, weight, bias)
        op = kernels.small_rows_op(build=False)
        return None if op is None else op(x, weight, bias)
