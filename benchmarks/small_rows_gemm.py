"""The fp32 matrix products of a decode step with 1-8 rows: MKL, oneDNN, and a hand-written kernel.

Run: ``python benchmarks/small_rows_gemm.py [--model llama-100M|t5-small|bart-base] [--threads 2]``
(x86-64 with AVX-512 and a C++ compiler).

Evidence for what limits decoding on the CPU (see README, Generation): the weights one decode step reads
(the ~100M Llama of ``benchmarks/generation.py``, or the decoder of its T5-small / BART-base shapes with the
tied output projection) multiplied by 1, 2, 4 and 8 rows. MKL's matrix-vector kernel (1-2 rows) streams
the weights well below the memory bandwidth, and from 3-4 rows on MKL leaves it for a packing GEMM; oneDNN
is no better there, while a plain AVX-512 kernel that reads each weight row once for all rows stays near
the bandwidth. The library builds that kernel (``pretrained.inference.kernels``, compiled once per machine
and cached) and routes eager and compiled decode steps to it. Prints best-of-6 milliseconds per step's
weights with the read rate, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from pretrained.inference.kernels import load_small_rows_kernel

# (out, in) of the weights one decode step reads
SHAPES = {
    # 12 x (q/k/v fused, o, gate/up fused, down) + the LM head
    "llama-100M": [(1280, 768), (768, 768), (4096, 768), (768, 2048)] * 12 + [(16000, 768)],
    # 6 x (q, k, v, o; cross-attention q, o; wi, wo) + the tied output projection
    "t5-small": [(512, 512)] * 6 * 6 + [(2048, 512), (512, 2048)] * 6 + [(32128, 512)],
    # 6 x (q, k, v, out; cross-attention q, out; fc1, fc2) + the tied output projection
    "bart-base": [(768, 768)] * 6 * 6 + [(3072, 768), (768, 3072)] * 6 + [(50265, 768)],
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=list(SHAPES), default="llama-100M", help="whose step's weights")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fn = load_small_rows_kernel()
    if fn is None:
        raise SystemExit("the kernel needs AVX-512 and a C++ compiler")

    threads = torch.get_num_threads()

    def kernel(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        y = torch.empty(x.shape[0], w.shape[0])
        fn(x.data_ptr(), w.data_ptr(), None, y.data_ptr(), x.shape[0], w.shape[0], x.shape[1], threads)
        return y

    def onednn(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")

    weights = [torch.randn(n, k) for n, k in SHAPES[args.model]]
    megabytes = sum(w.numel() * 4 for w in weights) / 1e6
    results = []
    for rows in (1, 2, 4, 8):
        x = {k: torch.randn(rows, k) for k in {k for _, k in SHAPES[args.model]}}
        impls = {"mkl": F.linear, "onednn": onednn, "kernel": kernel}
        for w in weights[:4]:
            torch.testing.assert_close(
                kernel(x[w.shape[1]], w), F.linear(x[w.shape[1]], w), atol=1e-3, rtol=1e-4
            )
        times: dict[str, list[float]] = {name: [] for name in impls}
        for _ in range(7):  # the three alternate, so load from other processes hits each alike
            for name, impl in impls.items():
                start = time.perf_counter()
                for w in weights:
                    impl(x[w.shape[1]], w)
                times[name].append(time.perf_counter() - start)
        best = {name: round(1e3 * min(t[1:]), 2) for name, t in times.items()}
        results.append({"rows": rows, **best})
        gbps = {k: round(megabytes / v, 1) for k, v in best.items()}
        print(f"{rows} rows: ms per step {best}  GB/s {gbps}", flush=True)
    print(json.dumps({"benchmark": "small_rows_gemm", "model": args.model, "threads": torch.get_num_threads(),
                      "weights_MB": round(megabytes, 1), "results": results}))


if __name__ == "__main__":
    main()
