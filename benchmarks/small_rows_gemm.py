"""The fp32 matrix products of a decode step with 1-8 rows: MKL, oneDNN, and a hand-written kernel.

Run: ``python benchmarks/small_rows_gemm.py`` (x86-64 with AVX-512 and a C++ compiler).

Evidence for what limits beam search and batched decoding on the CPU (see README, Generation): the
weights of the ~100M Llama of ``benchmarks/generation.py`` (one decode step) multiplied by 1, 2, 4 and
8 rows. MKL leaves its matrix-vector kernel for a packing GEMM from 3-4 rows on and oneDNN is no
better there, while a plain AVX-512 kernel that reads each weight row once for all rows stays near
the memory bandwidth. The library builds that kernel (``pretrained.inference.kernels``) with inductor's
C++ toolchain and uses it inside compiled decode steps only: loading inductor and the kernel costs
~3 s per process, which only compiling can hide. Prints best-of-6 milliseconds per step's weights
and one JSON line.
"""

from __future__ import annotations

import json
import time

import torch
import torch.nn.functional as F

from pretrained.inference.kernels import load_small_rows_kernel

# one decode step of the 100M model: 12 x (q/k/v fused, o, gate/up fused, down) + the LM head
SHAPES = [(1280, 768), (768, 768), (4096, 768), (768, 2048)] * 12 + [(16000, 768)]


def main() -> None:
    fn = load_small_rows_kernel()
    if fn is None:
        raise SystemExit("the kernel needs AVX-512 and a C++ compiler")

    def kernel(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = torch.empty(x.shape[0], w.shape[0])
        fn(x.data_ptr(), w.data_ptr(), None, y.data_ptr(), x.shape[0], w.shape[0], x.shape[1])
        return y

    def onednn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")

    weights = [torch.randn(n, k) for n, k in SHAPES]
    megabytes = sum(w.numel() * 4 for w in weights) / 1e6
    results = []
    for rows in (1, 2, 4, 8):
        x = {k: torch.randn(rows, k) for k in (768, 2048)}
        impls = {"mkl": F.linear, "onednn": onednn, "kernel": kernel}
        for w in weights[:4]:
            torch.testing.assert_close(
                kernel(x[w.shape[1]], w), F.linear(x[w.shape[1]], w), atol=1e-3, rtol=1e-4
            )
        best = {}
        for name, impl in impls.items():
            times = []
            for _ in range(7):
                start = time.perf_counter()
                for w in weights:
                    impl(x[w.shape[1]], w)
                times.append(time.perf_counter() - start)
            best[name] = round(1e3 * min(times[1:]), 2)
        results.append({"rows": rows, **best})
        gbps = {k: round(megabytes / v, 1) for k, v in best.items()}
        print(f"{rows} rows: ms per step {best}  GB/s {gbps}", flush=True)
    print(json.dumps({"benchmark": "small_rows_gemm", "weights_MB": round(megabytes, 1), "results": results}))


if __name__ == "__main__":
    main()
