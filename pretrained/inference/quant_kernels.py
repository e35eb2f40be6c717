"""Weight-only int8 and int4 linear kernels for the CPU, for inference steps of few rows (decoding).

Decoding reads every weight once per step, so its speed is memory bandwidth over the bytes of the weights:
fewer bytes per weight is the only way up. These kernels read the packed integers (and the scales) once per
step for all rows, and never write a dequantized weight to memory:

- int8 weight-only: ``weight`` int8 ``(out, in)`` with one fp32 scale per output:
  ``y = (x @ weight.T) * scale + bias``.
- int4, GPTQ's word layout: ``qweight`` int32 ``(in / 8, out)`` (input features ``8p .. 8p+7`` of output
  ``n`` in word ``[p, n]``, lowest nibble first), contiguous groups of ``group_size`` input features, zero
  points as uint8 ``(groups, out)`` and scales fp16 or fp32 ``(groups, out)``:
  ``y[n] = sum_g scale[g, n] * (sum_{k in g} x[k] q[k, n] - zero[g, n] * sum_{k in g} x[k])``.
  Callers with other layouts (AWQ, act-order) bring their weights to this one
  (:mod:`pretrained.quantizers.int4_linear` does).

Routes, chosen per call by ``route``:

- ``"cpp"``: a small AVX-512 C++ kernel (sources in :mod:`~pretrained.inference.quant_kernel_sources`),
  built once per process with inductor's C++ toolchain (:func:`load_kernels`) and called through ctypes
  when eager, or through the custom ops ``pretrained::int8_rows_linear`` / ``pretrained::int4_rows_linear``
  inside compiled graphs (inductor cannot see into them, so they are opaque calls). Those ops have Python
  bodies, so a compiled step calls back into Python once per linear; :func:`load_torch_ops` builds the same
  kernels as a torch C++ extension (``pretrained_quant::...``, minutes on first use, then cached) that
  compiled graphs call directly (and eager calls too, once built: a dispatcher call costs less than
  ctypes'). int8: the products are computed in fp32 (the int8 values converted exactly), so results equal
  dequantize-then-matmul up to summation order. int4 on CPUs with AVX-512 VNNI: each activation is split
  into three signed 8-bit digits at a power-of-two step per (row, group) (23 significant bits for the
  group's largest value) and multiplied with integer dot products (``vpdpbusd``), exact integer sums per
  group: results equal dequantize-then-matmul up to fp32 rounding (an error per activation of at most
  2^-23 of its group's largest); elsewhere (and for group sizes not a multiple of 16 or over 4096) the
  products are computed in fp32 FMAs.
- ``"cpp_float"``: as ``"cpp"``, but int4 always on the fp32-FMA kernel (the one CPUs without VNNI take).
- ``"vnni"`` (opt-in, CPUs with AVX-512 VNNI): the activations are rounded per row to int8 (steps of
  ``max|x| / 127``) and multiplied with integer dot products (``vpdpbusd``: 64 byte products per
  instruction against 16 float products per FMA), which pays where the exact kernels run out of compute
  (several rows against int4 words). It changes results as dynamic activation quantization does
  (:func:`quantize_activations` gives the rounded input it computes with); elsewhere it falls back to ``"cpp"``.
- ``"reduction"``: the same sums written in PyTorch (unpack, multiply, sum) for inductor to fuse into one
  loop over the packed weights; eagerly this materialises the unpacked weight and is slow.
- ``"dequant"``: dequantize to fp32 and call ``F.linear`` (the route for many rows: prefill).

``"auto"`` takes ``"cpp"`` for ``SMALL_ROWS`` rows when the kernel is built and the shapes fit, else
``"dequant"``. ``benchmarks/quantization.py`` measures the routes.
"""

from __future__ import annotations

import ctypes
from typing import Any

import torch
import torch.nn.functional as F

from pretrained.inference.quant_kernel_sources import EXTENSION_SOURCE, KERNEL_SOURCE
from pretrained.utils.native import load_library

SMALL_ROWS = 32  # up to this many rows take the kernels; more dequantize and use a GEMM
KERNEL_ROWS = 8  # the C++ kernels handle this many rows per pass over the weights
ROUTES = ("auto", "cpp", "cpp_float", "vnni", "reduction", "dequant")

# What was built once per process: "kernels" (dict of ctypes functions, or None), "ops" (bool: the
# ``pretrained::`` ops with Python bodies), "ext" (bool: the ``pretrained_quant::`` C++ operators).
_built: dict[str, Any] = {}
# every product and sum rounded separately, as the flags of inductor's toolchain (which built them before) had it
_FLAGS = ("-O3", "-mavx512f", "-mavx512bw", "-mfma", "-ffp-contract=off")


def load_kernels() -> dict[str, Any] | None:
    """Build the C++ kernels once per machine (a few seconds; then loaded from the kernel cache in
    milliseconds) and return their ctypes functions, or ``None`` without
    AVX-512 or a working C++ toolchain. Must run before ``torch.compile`` traces a step that should use them."""
    if "kernels" not in _built:
        _built["kernels"] = None
        if "AVX512" in torch.backends.cpu.get_cpu_capability():
            int4_args = [ctypes.c_void_p] * 4 + [ctypes.c_int64] + [ctypes.c_void_p] * 2 + [ctypes.c_int64] * 4
            symbols = {"int8": ("int8_rows_linear", [ctypes.c_void_p] * 5 + [ctypes.c_int64] * 3),
                       "int4": ("int4_rows_linear", int4_args),
                       "int4_float": ("int4_rows_linear_float", int4_args)}  # fmt: skip
            if cpu_has_vnni():
                symbols["int8_vnni"] = ("int8_rows_linear_vnni", [ctypes.c_void_p] * 6 + [ctypes.c_int64] * 3)
                symbols["int4_vnni"] = ("int4_rows_linear_vnni", int4_args)
            # the VNNI functions carry their own target attribute: the rest runs on any AVX-512 CPU
            lib = load_library("quant_kernels", KERNEL_SOURCE, _FLAGS,
                               {symbol: (None, args) for symbol, args in symbols.values()},
                               inductor_fallback=True)  # fmt: skip
            if lib is not None:  # else the PyTorch routes remain
                _built["kernels"] = {key: getattr(lib, symbol) for key, (symbol, _) in symbols.items()}
        _register_ops()
    return _built["kernels"]


def load_torch_ops(verbose: bool = False) -> bool:
    """Build the kernels as a torch C++ extension (``torch.utils.cpp_extension.load_inline``: minutes the
    first time on a machine, then cached) and use its operators inside compiled graphs, where the default
    ops call back into Python for every linear of every step. Returns whether they are in use. Call it
    before ``torch.compile`` traces a step."""
    if "ext" not in _built:
        _built["ext"] = False
        if load_kernels() is not None:
            try:
                from torch.utils.cpp_extension import load_inline

                flags = ["-O3", "-mavx512f", "-mavx512bw", "-mfma", "-fopenmp"]
                load_inline("pretrained_quant_kernels", cpp_sources=[KERNEL_SOURCE + EXTENSION_SOURCE],
                            is_python_module=False, extra_cflags=flags, extra_ldflags=["-fopenmp"],
                            verbose=verbose)  # fmt: skip
                _register_fakes("pretrained_quant")
                ops = torch.ops.pretrained_quant
                # eager calls go to the same operators: a dispatcher call costs less than the ctypes one
                _built["ext_ops"] = {"int8": ops.int8_rows_linear.default, "int4": ops.int4_rows_linear.default,
                                     "int8_vnni": ops.int8_rows_linear_vnni.default,
                                     "int4_vnni": ops.int4_rows_linear_vnni.default,
                                     "int4_float": ops.int4_rows_linear_float.default}  # fmt: skip
                _built["ext"] = True
            except Exception:  # noqa: BLE001 - no headers, no compiler...: the Python-bodied ops remain
                if verbose:
                    raise
    return _built["ext"]


def _ops() -> Any:
    """The operators compiled graphs call: the C++ extension's when built, else ours with Python bodies."""
    return torch.ops.pretrained_quant if _built.get("ext") else torch.ops.pretrained


def _ptr(t: torch.Tensor | None) -> int | None:
    return None if t is None else t.data_ptr()


def cpu_has_vnni() -> bool:
    """Whether the CPU has AVX-512 VNNI (``/proc/cpuinfo``; False where it cannot be read)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            return any(line.startswith("flags") and " avx512_vnni" in line for line in f)
    except OSError:
        return False


def vnni_ready() -> bool:
    """Whether the VNNI kernels are built (the CPU has AVX-512 VNNI)."""
    return "int8_vnni" in (_built.get("kernels") or {})


def kernels_ready() -> bool:
    """Whether the C++ kernels are built (cheap: for per-call checks)."""
    return _built.get("kernels") is not None


def int8_weights_fit(weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Whether the C++ int8 kernel takes these weights (for fp32 CPU inputs)."""
    return (weight.device.type == "cpu" and weight.dtype == torch.int8 and weight.is_contiguous()
            and weight.shape[1] % 16 == 0 and scale.dtype == torch.float32 and scale.is_contiguous()
            and (bias is None or (bias.dtype == torch.float32 and bias.is_contiguous())))  # fmt: skip


def int4_weights_fit(qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int,
                     bias: torch.Tensor | None) -> bool:  # fmt: skip
    """Whether the C++ int4 kernel takes these weights (for fp32 CPU inputs)."""
    k, n = qweight.shape[0] * 8, qweight.shape[1]
    return (qweight.device.type == "cpu" and qweight.dtype == torch.int32 and qweight.is_contiguous()
            and zeros.dtype == torch.uint8 and zeros.is_contiguous()
            and scales.dtype in (torch.float16, torch.float32) and scales.is_contiguous()
            and n % 16 == 0 and group_size % 8 == 0 and k % group_size == 0
            and (bias is None or (bias.dtype == torch.float32 and bias.is_contiguous())))  # fmt: skip


def _x_fits(x: torch.Tensor, k: int) -> bool:
    return x.dtype == torch.float32 and x.device.type == "cpu" and x.shape[-1] == k


def _rows_call(
    key: str, x: torch.Tensor, n: int, args: tuple, bias: torch.Tensor | None, tail: tuple
) -> torch.Tensor:
    """Run the ctypes kernel ``key`` as ``fn(x, *args, bias, out, rows, n, in, *tail)``: the argument order
    all four kernels share (``args``: the weight tensors' pointers and flags)."""
    x = x.contiguous()
    bias = None if bias is None else bias.contiguous()
    out = x.new_empty((*x.shape[:-1], n))
    _built["kernels"][key](x.data_ptr(), *args, _ptr(bias), out.data_ptr(), x.numel() // x.shape[-1], n,
                           x.shape[-1], *tail)  # fmt: skip
    return out


def int8_rows_cpp(
    x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None
) -> torch.Tensor:
    """The C++ int8 kernel, eagerly, for callers that checked :func:`kernels_ready` and the shapes."""
    ext = _built.get("ext_ops")
    if ext is not None:
        return ext["int8"](x, weight, scale, bias)
    scale = scale.contiguous()  # held while the kernel reads it (a temporary's address would dangle)
    return _rows_call("int8", x, weight.shape[0], (weight.data_ptr(), scale.data_ptr()), bias, ())


def int8_op() -> Any:
    """The eager entry of the C++ int8 kernel, ``fn(x, weight, scale, bias)``: the extension's operator when
    built (a dispatcher call costs less than ctypes'), else :func:`int8_rows_cpp`. For callers that checked
    :func:`kernels_ready` and the shapes."""
    ext = _built.get("ext_ops")
    return int8_rows_cpp if ext is None else ext["int8"]


def _int4_args(qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor) -> tuple:
    return qweight.data_ptr(), zeros.data_ptr(), scales.data_ptr(), int(scales.dtype == torch.float32)


def int4_rows_cpp(x: torch.Tensor, qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int,
                  bias: torch.Tensor | None, key: str = "int4") -> torch.Tensor:  # fmt: skip
    """The exact C++ int4 kernel, eagerly (``key="int4_float"``: the fp32-FMA one even on VNNI CPUs), for
    callers that checked :func:`kernels_ready` and the shapes."""
    ext = _built.get("ext_ops")
    if ext is not None:
        return ext[key](x, qweight, zeros, scales, group_size, bias)
    return _rows_call(key, x, qweight.shape[1], _int4_args(qweight, zeros, scales), bias, (group_size,))


def int4_rows_cpp_float(x: torch.Tensor, qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor,
                        group_size: int, bias: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """The fp32-FMA int4 kernel, eagerly; as :func:`int4_rows_cpp`."""
    return int4_rows_cpp(x, qweight, zeros, scales, group_size, bias, key="int4_float")


def int8_rows_vnni(x: torch.Tensor, weight: torch.Tensor, weight_sums: torch.Tensor, scale: torch.Tensor,
                   bias: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """The VNNI int8 kernel (activations rounded to int8 per row), eagerly; ``weight_sums`` is
    ``weight.sum(1)`` as int32. For callers that checked :func:`vnni_ready` and the shapes (in % 64)."""
    ext = _built.get("ext_ops")
    if ext is not None:
        return ext["int8_vnni"](x, weight, weight_sums, scale, bias)
    scale = scale.contiguous()  # held while the kernel reads it
    args = (weight.data_ptr(), weight_sums.data_ptr(), scale.data_ptr())
    return _rows_call("int8_vnni", x, weight.shape[0], args, bias, ())


def int4_rows_vnni(x: torch.Tensor, qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor,
                   group_size: int, bias: torch.Tensor | None) -> torch.Tensor:  # fmt: skip
    """The VNNI int4 kernel (activations rounded to int8 per row), eagerly; as :func:`int4_rows_cpp`."""
    ext = _built.get("ext_ops")
    if ext is not None:
        return ext["int4_vnni"](x, qweight, zeros, scales, group_size, bias)
    return _rows_call(
        "int4_vnni", x, qweight.shape[1], _int4_args(qweight, zeros, scales), bias, (group_size,)
    )


def quantize_activations(x: torch.Tensor) -> torch.Tensor:
    """What the VNNI routes multiply by: ``x`` rounded per row to int8 steps of ``max|x| / 127`` (returned
    dequantized, fp32), for references and accuracy checks."""
    x = x.float()
    amax = x.abs().amax(-1, keepdim=True)
    inv = torch.where(amax > 0, 127.0 / amax, torch.zeros_like(amax))
    step = torch.where(amax > 0, amax / 127.0, torch.zeros_like(amax))
    return torch.round(x * inv).clamp(-128, 127) * step


def _register_ops() -> None:
    """Register the custom ops compiled graphs call; their CPU bodies are the ctypes kernels.

    Registered through ``torch.library.Library`` rather than ``custom_op``: the dispatcher then calls the
    body directly, without ``custom_op``'s Python wrapping, which costs more per call than a small
    decode-step matrix-vector product."""
    if "ops" in _built or _built.get("kernels") is None:
        _built.setdefault("ops", False)
        return
    lib = torch.library.Library("pretrained", "FRAGMENT")
    lib.define("int8_rows_linear(Tensor x, Tensor weight, Tensor scale, Tensor? bias) -> Tensor")
    lib.define("int4_rows_linear(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, "
               "Tensor? bias) -> Tensor")  # fmt: skip
    lib.impl("int8_rows_linear", int8_rows_cpp, "CPU")
    lib.impl("int4_rows_linear", int4_rows_cpp, "CPU")
    lib.define("int4_rows_linear_float(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, "
               "Tensor? bias) -> Tensor")  # fmt: skip
    lib.impl("int4_rows_linear_float", int4_rows_cpp_float, "CPU")
    lib.define(
        "int8_rows_linear_vnni(Tensor x, Tensor weight, Tensor weight_sums, Tensor scale, Tensor? bias) -> Tensor"
    )
    lib.define("int4_rows_linear_vnni(Tensor x, Tensor qweight, Tensor zeros, Tensor scales, int group_size, "
               "Tensor? bias) -> Tensor")  # fmt: skip
    if vnni_ready():
        lib.impl("int8_rows_linear_vnni", int8_rows_vnni, "CPU")
        lib.impl("int4_rows_linear_vnni", int4_rows_vnni, "CPU")

    _register_fakes("pretrained", lib)
    _built["library"] = lib  # the registrations live as long as this object
    _built["ops"] = True


def _register_fakes(namespace: str, lib: Any = None) -> None:
    """Output shapes of the ops, for tracing."""

    def int8_fake(x, weight, *rest):
        return x.new_empty((*x.shape[:-1], weight.shape[0]))

    def int4_fake(x, qweight, zeros, scales, group_size, bias):
        return x.new_empty((*x.shape[:-1], qweight.shape[1]))

    for name, fake in (("int8_rows_linear", int8_fake), ("int8_rows_linear_vnni", int8_fake),
                       ("int4_rows_linear", int4_fake), ("int4_rows_linear_vnni", int4_fake),
                       ("int4_rows_linear_float", int4_fake)):  # fmt: skip
        torch.library.register_fake(f"{namespace}::{name}", fake, lib=lib)


def _choose(route: str, rows: int, fits: bool, vnni_fits: bool = True) -> str:
    if route not in ROUTES:
        raise ValueError(f"route must be one of {ROUTES}, got {route!r}")
    if route == "auto":
        route = "cpp" if rows <= SMALL_ROWS else "dequant"
    if route == "vnni":
        # opt-in (it changes results: activations in int8); without VNNI, the exact kernel
        if fits and vnni_fits and vnni_ready() and _built.get("ops") and not torch.is_grad_enabled():
            return "vnni"
        route = "cpp"
    if route in ("cpp", "cpp_float"):
        compiling = torch.compiler.is_compiling()
        built = _built.get("ops") if compiling else (_built.get("kernels") or (load_kernels() is not None))
        if not (fits and built and not torch.is_grad_enabled()):
            route = "dequant"
    return route


def int8_linear(x: torch.Tensor, weight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None = None,
                route: str = "auto", weight_sums: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """``x @ (weight * scale[:, None]).T + bias`` for int8 ``weight`` ``(out, in)`` and fp32 ``scale`` ``(out,)``,
    computed in fp32 and returned in ``x``'s dtype (route ``"vnni"``: ``x`` rounded to int8 first, see
    :func:`quantize_activations`; ``weight_sums``, int32 ``weight.sum(1)``, saves a pass over the weight)."""
    rows = x.numel() // x.shape[-1]
    fits = _x_fits(x, weight.shape[1]) and int8_weights_fit(weight, scale, bias)
    route = _choose(route, rows, fits, vnni_fits=weight.shape[1] % 64 == 0)
    route = "cpp" if route == "cpp_float" else route  # one int8 kernel: fp32 products
    if route == "vnni":
        if weight_sums is None:
            weight_sums = weight.sum(1, dtype=torch.int32)
        if torch.compiler.is_compiling():
            return _ops().int8_rows_linear_vnni(x, weight, weight_sums, scale, bias)
        return int8_rows_vnni(x, weight, weight_sums, scale, bias)
    if route == "cpp":
        if torch.compiler.is_compiling():
            return _ops().int8_rows_linear(x, weight, scale, bias)
        return int8_rows_cpp(x, weight, scale, bias)
    xf = x.float()
    if route == "reduction":
        xf = (
            torch.ops.prims.inductor_force_stride_order(xf, xf.stride())
            if torch.compiler.is_compiling()
            else xf
        )
        out = (xf.unsqueeze(-2) * weight.float()).sum(-1) * scale
    else:
        out = F.linear(xf, weight.float()) * scale
    return (out if bias is None else out + bias.float()).to(x.dtype)


def int4_dequantize(
    qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int
) -> torch.Tensor:
    """The fp32 weight ``(out, in)`` of GPTQ-layout words with contiguous groups."""
    k8, n = qweight.shape
    shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=qweight.device)
    q = (qweight.unsqueeze(1) >> shifts.view(1, 8, 1)) & 0xF  # (in/8, 8, out)
    q = q.reshape(-1, group_size, n).float()  # (groups, group_size, out)
    w = (q - zeros.float().unsqueeze(1)) * scales.float().unsqueeze(1)
    return w.reshape(k8 * 8, n).t()


def int4_linear(x: torch.Tensor, qweight: torch.Tensor, zeros: torch.Tensor, scales: torch.Tensor, group_size: int,
                bias: torch.Tensor | None = None, route: str = "auto") -> torch.Tensor:  # fmt: skip
    """``x @ W.T + bias`` for the int4 weight ``W = (q - zeros) * scales`` in GPTQ's word layout with contiguous
    groups (see the module docstring), computed in fp32 and returned in ``x``'s dtype (route ``"vnni"``: ``x``
    rounded to int8 first, see :func:`quantize_activations`)."""
    rows = x.numel() // x.shape[-1]
    fits = _x_fits(x, qweight.shape[0] * 8) and int4_weights_fit(qweight, zeros, scales, group_size, bias)
    route = _choose(route, rows, fits)
    if route == "vnni":
        if torch.compiler.is_compiling():
            return _ops().int4_rows_linear_vnni(x, qweight, zeros, scales, group_size, bias)
        return int4_rows_vnni(x, qweight, zeros, scales, group_size, bias)
    if route == "cpp":
        if torch.compiler.is_compiling():
            return _ops().int4_rows_linear(x, qweight, zeros, scales, group_size, bias)
        return int4_rows_cpp(x, qweight, zeros, scales, group_size, bias)
    if route == "cpp_float":
        if torch.compiler.is_compiling():
            return _ops().int4_rows_linear_float(x, qweight, zeros, scales, group_size, bias)
        return int4_rows_cpp_float(x, qweight, zeros, scales, group_size, bias)
    xf = x.float()
    if route == "reduction":
        if torch.compiler.is_compiling():
            xf = torch.ops.prims.inductor_force_stride_order(xf, xf.stride())
        k8, n = qweight.shape
        groups = k8 * 8 // group_size
        shifts = torch.arange(0, 32, 4, dtype=torch.int32, device=qweight.device)
        q = ((qweight.unsqueeze(1) >> shifts.view(1, 8, 1)) & 0xF).reshape(groups, group_size, n)
        xg = xf.reshape(-1, groups, group_size)  # (rows, groups, group_size)
        acc = (xg.unsqueeze(-1) * q.float()).sum(-2)  # (rows, groups, out): integer sums per group
        out = (scales.float() * (acc - zeros.float() * xg.sum(-1, keepdim=True))).sum(-2)
        out = out.reshape(*x.shape[:-1], n)
    else:
        out = F.linear(xf, int4_dequantize(qweight, zeros, scales, group_size))
    return (out if bias is None else out + bias.float()).to(x.dtype)
