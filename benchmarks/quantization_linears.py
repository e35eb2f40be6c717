"""Per-linear read bandwidth of each route for one-row (decode) products: where a quantized step loses time.

Run: ``python benchmarks/quantization_linears.py [--threads 2] [--wait-policy ACTIVE] [--mb 160] [--repeats 5]
[--quick] [--routes a,b,...]``.

For each linear shape of the ~100M Llama of ``benchmarks/generation.py`` (and its output head), enough
distinct layers are made to hold ``--mb`` MB of weights (far more than the last-level cache, so every call
reads its weight from memory, as a decode step does), and one row goes through all of them, layer after
layer; each route's time per layer gives the GB/s it reads (its weight bytes: int8 + fp32 scales, int4
words + zero points + fp16 scales, fp32). The routes:

- ``fp32-mkl``: ``F.linear`` on fp32 weights (eager); ``fp32-compiled``: the same compiled by inductor;
- ``int8-ctypes`` / ``int4-ctypes``: the C++ kernels through ctypes (what eager layers call);
- ``int8-op`` / ``int4-op``: the ``pretrained::`` dispatcher ops with Python bodies (what compiled graphs
  call without the extension), called eagerly;
- ``int8-ext`` / ``int4-ext``: the ``pretrained_quant::`` C++ extension ops, called eagerly;
- ``int8-compiled-cpp`` / ``int8-compiled-ext`` / ``int8-compiled-reduction`` (and int4): one function
  calling every layer, compiled by inductor, with the route's op inside the graph;
- ``int8-layer`` / ``int4-layer``: the ``nn.Module`` layers' own eager ``forward`` (packed memory and all).
- ``int4-vnni-ctypes`` / ``int4-vnni-ext`` (CPUs with AVX-512 VNNI): the int4 kernel that rounds activations
  to int8 (``vnni`` route), through ctypes and as the extension's operator.

A compiled route's time includes the compiled function's own cost per call (guards, wrappers), spread over
the ``CHUNK`` layers one call runs. ``--threads 1 --clock cpu`` gives numbers that hold up on a machine
running other work (CPU time of one thread: what the loops cost, less what waiting for memory shared with
other processes adds); the bandwidth bound of a decode step needs ``--threads 2`` (or more) on a quiet one.

Variants alternate (A, B, C, A, B, C, ...) and medians are printed, so load from other processes hits them
alike; numbers taken on a machine running other work are still rough. ``OMP_WAIT_POLICY`` must be set
before torch starts, hence ``--wait-policy`` (default ACTIVE: threads spin between calls).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--wait-policy", default="ACTIVE", choices=("ACTIVE", "PASSIVE", "default"))
    parser.add_argument("--mb", type=float, default=160.0, help="weight MB per shape (fp32 routes: 4x as much)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small shapes and sizes (a smoke run)")
    parser.add_argument("--routes", default=None, help="comma-separated subset of the routes")
    parser.add_argument("--no-extension", dest="extension", action="store_false", help="skip the *-ext routes")
    parser.add_argument("--clock", default="wall", choices=("wall", "cpu"),
                        help="cpu: the process's CPU time (with --threads 1, robust to other processes' load)")
    parser.add_argument("--shapes", default=None, help="comma-separated OUTxIN shapes (default: the model's)")
    return parser.parse_args()


args = parse()
if args.wait_policy != "default":
    os.environ["OMP_WAIT_POLICY"] = args.wait_policy  # read once, when torch's OpenMP runtime starts

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

# (out, in) of the model's linears: q/o, k/v, gate/up, down; and the 16k-vocabulary head
SHAPES = [(768, 768), (256, 768), (2048, 768), (768, 2048), (16000, 768)]
QUICK_SHAPES = [(128, 128), (512, 256)]
CHUNK = 12  # layers per compiled graph (a decoder layer of the model has 7 linears, a step 84)


def make_layers(out: int, inp: int, count: int) -> list[dict]:
    from pretrained.inference import packed_memory
    from pretrained.quantizers.int4_linear import GPTQLinear, Int8WeightOnlyLinear

    layers = []
    for _ in range(count):
        lin = torch.nn.Linear(inp, out, bias=False)
        i8 = Int8WeightOnlyLinear.from_linear(lin).eval()
        i4 = GPTQLinear.from_linear(lin, 4, 128 if inp % 128 == 0 else 32, dtype=torch.float16).eval()
        with torch.no_grad():  # builds the kernel caches (packed memory) in layer order, as a first step does
            i8(torch.zeros(1, inp))
            i4(torch.zeros(1, inp))
        c8, c4 = i8.__dict__["_kernel_cache"], i4.__dict__["_kernel_cache"]
        layers.append({"fp32": packed_memory.hugepages.empty(lin.weight.shape, torch.float32).copy_(lin.weight.detach())
                       if packed_memory.hugepages.SUPPORTED else lin.weight.detach().clone(),
                       "int8": (c8["weight"], c8["scale"]), "int4": (c4["qweight"], c4["zeros"], c4["scales"],
                                                                      c4["group_size"]),
                       "int8_layer": i8, "int4_layer": i4})  # fmt: skip
    return layers


def nbytes(*tensors) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if isinstance(t, torch.Tensor))


def run_shape(out: int, inp: int, mb: float, ext: bool, results: list) -> None:
    """Measure every route on ``--mb`` MB of ``out x in`` layers; print and append to ``results``."""
    from pretrained.inference import quant_kernels as qk

    count = max(CHUNK, int(mb * 1e6 // (out * inp)) // CHUNK * CHUNK)
    layers = make_layers(out, inp, count)
    x = torch.randn(1, inp)
    b8 = nbytes(*layers[0]["int8"])
    b4 = nbytes(*layers[0]["int4"][:3])
    b32 = nbytes(layers[0]["fp32"])
    fp32_layers = layers[: max(CHUNK, count // 4 // CHUNK * CHUNK)]  # the same MB as int8

    def loop(fn, lst):
        def run():
            for layer in lst:
                fn(layer)
        return run

    def compiled(route: str, kind: str, lst):
        weights = [layer[kind] for layer in lst]

        def step(x, weights):
            outs = []
            for w in weights:
                if kind == "int8":
                    outs.append(qk.int8_linear(x, w[0], w[1], None, route=route))
                elif kind == "int4":
                    outs.append(qk.int4_linear(x, *w, None, route=route))
                else:
                    outs.append(F.linear(x, w))
            return outs

        # one graph of CHUNK layers, run over consecutive chunks (inputs, not constants: one compile)
        # the C++ wrapper, as the compiled decode steps use (pretrained.inference.compiled.compile_options)
        fn = torch.compile(step, fullgraph=True, dynamic=False, options={"cpp_wrapper": True})
        chunks = [weights[i : i + CHUNK] for i in range(0, len(weights) - CHUNK + 1, CHUNK)]

        def run():
            for chunk in chunks:
                fn(x, chunk)

        return run, len(chunks) * CHUNK

    routes = {
        "fp32-mkl": (loop(lambda L: F.linear(x, L["fp32"]), fp32_layers), b32, len(fp32_layers)),
        "int8-ctypes": (loop(lambda L: qk.int8_rows_cpp(x, *L["int8"], None), layers), b8, count),
        "int8-op": (loop(lambda L: torch.ops.pretrained.int8_rows_linear(x, *L["int8"], None), layers), b8, count),
        "int8-layer": (loop(lambda L: L["int8_layer"](x), layers), b8, count),
        "int4-ctypes": (loop(lambda L: qk.int4_rows_cpp(x, *L["int4"], None), layers), b4, count),
        "int4-op": (loop(lambda L: torch.ops.pretrained.int4_rows_linear(x, *L["int4"], None), layers), b4, count),
        "int4-layer": (loop(lambda L: L["int4_layer"](x), layers), b4, count),
    }  # fmt: skip
    if qk.vnni_ready():
        routes["int4-vnni-ctypes"] = (loop(lambda L: qk._rows_call("int4_vnni", x, L["int4"][0].shape[1], qk._int4_args(
            *L["int4"][:3]), None, (L["int4"][3],)), layers), b4, count)  # fmt: skip
    if ext:
        routes["int8-ext"] = (loop(lambda L: torch.ops.pretrained_quant.int8_rows_linear(x, *L["int8"], None),
                                   layers), b8, count)  # fmt: skip
        routes["int4-ext"] = (loop(lambda L: torch.ops.pretrained_quant.int4_rows_linear(x, *L["int4"], None),
                                   layers), b4, count)  # fmt: skip
        if qk.vnni_ready():
            routes["int4-vnni-ext"] = (loop(lambda L: torch.ops.pretrained_quant.int4_rows_linear_vnni(
                x, *L["int4"], None), layers), b4, count)  # fmt: skip
    wanted = set(args.routes.split(",")) if args.routes else None
    compiled_routes = [("fp32-compiled", "auto", "fp32", fp32_layers, b32)]
    for kind, b in (("int8", b8), ("int4", b4)):
        compiled_routes += [(f"{kind}-compiled-reduction", "reduction", kind, layers, b),
                            (f"{kind}-compiled-{'ext' if ext else 'cpp'}", "cpp", kind, layers, b)]  # fmt: skip
    with torch.inference_mode():
        for name, route, kind, lst, b in compiled_routes:
            if wanted is None or name in wanted:
                fn, n = compiled(route, kind, lst)
                routes[name] = (fn, b, n)
        routes = {k: v for k, v in routes.items() if wanted is None or k in wanted}
        times: dict[str, list[float]] = {k: [] for k in routes}
        for fn, _, _ in routes.values():  # warm up (and compile)
            fn()
            fn()
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        for _ in range(args.repeats):
            for name, (fn, _, n) in routes.items():
                start = clock()
                fn()
                times[name].append((clock() - start) / n)
    line = [f"{out}x{inp} ({count} layers):"]
    for name, (_, b, _) in routes.items():
        t = statistics.median(times[name])
        results.append({"shape": [out, inp], "route": name, "us_per_layer": round(t * 1e6, 1),
                        "GBps": round(b / t / 1e9, 2)})  # fmt: skip
        line.append(f"  {name:26s} {t * 1e6:8.1f} us/layer {b / t / 1e9:6.2f} GB/s")
    print("\n".join(line), flush=True)
    del layers


def main() -> None:
    if args.threads:
        torch.set_num_threads(args.threads)
    from pretrained.inference import quant_kernels as qk

    if qk.load_kernels() is None:
        sys.exit("the C++ kernels did not build (no AVX-512 or no compiler)")
    ext = args.extension and qk.load_torch_ops()
    torch._dynamo.config.recompile_limit = 64
    torch._dynamo.config.cache_size_limit = 64
    shapes = QUICK_SHAPES if args.quick else SHAPES
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    mb = 0.5 if args.quick else args.mb
    results = []
    print(f"threads {torch.get_num_threads()}, OMP_WAIT_POLICY {os.environ.get('OMP_WAIT_POLICY')}, "
          f"load {os.getloadavg()[0]:.2f}, extension {ext}", flush=True)  # fmt: skip
    for out, inp in shapes:
        run_shape(out, inp, mb, ext, results)
    setup = {"threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
             "load_average_1min": round(os.getloadavg()[0], 2), "torch": torch.__version__, "extension": ext,
             "clock": args.clock}  # fmt: skip
    print(json.dumps({"benchmark": "quantization_linears", "setup": setup, "results": results}))


if __name__ == "__main__":
    main()
