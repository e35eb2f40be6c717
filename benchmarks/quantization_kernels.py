"""Weight-only quantized decoding on the CPU: fp32 vs int8 vs int4 layers of ``pretrained``, and each one's
memory-bandwidth bound.

Run: ``python benchmarks/quantization_kernels.py [--quick] [--repeats 3] [--no-compile] [--head fp32]
[--no-packed-memory] [--int8-layers]``.

The ~100M-parameter Llama of ``benchmarks/generation.py`` (random weights, built by ``pretrained``) is
decoded greedily (``NEW`` tokens after a ``PROMPT``-token prompt) at batch 1 and 8 with its linear layers:

- ``fp32``: plain ``nn.Linear``;
- ``int8``: :class:`~pretrained.quantizers.int4_linear.Int8WeightOnlyLinear` (one scale per output);
- ``int4``: :class:`~pretrained.quantizers.int4_linear.GPTQLinear` (4-bit, group 128, symmetric, RTN).

The output head is quantized too unless ``--head fp32`` (transformers' quantizers keep it in float: with a
16k vocabulary it is then the larger part of an int4 model's bytes). Each runs eagerly (``generate``'s
default) and compiled (static cache, ``torch.compile`` of the decode step, compile time not counted); the
quantized compiled steps run with the C++ kernels as opaque custom ops (``cpp``; the torch C++ extension of
``quant_kernels.load_torch_ops`` unless ``--no-extension``), with the PyTorch
reduction inductor fuses (``reduction``) and, on CPUs with AVX-512 VNNI, with the integer-dot-product kernels
that round activations to int8 (``vnni``: not exact, hence opt-in), see ``pretrained.inference.quant_kernels``.
Eager quantized runs use ``auto`` (the exact C++ kernels for few rows) and ``vnni``.

The bound: a decode step reads every weight byte once (the kernels' packed words, zero points, scales;
one row of the embedding table), so ``tokens/s <= batch * read bandwidth / bytes per step``, the bandwidth
measured in the same run. Prints a table, ratios against fp32 eager, and one JSON line; each row also says
whether its tokens equal the eager run's of the same layers (``tokens_as_eager``; the exact kernels must).
The quantized layers keep their kernel tensors in shared huge-page chunks
(:mod:`pretrained.inference.packed_memory`); ``--no-packed-memory`` measures them where they were made.
int8 sibling projections (q / k / v, gate / up) are packed and computed as one kernel call per group, eager
and compiled (``pretrained.inference.compiled.int8_group_table``); ``--int8-layers`` adds rows for a second
int8 model whose layers keep one call each (``int8-layers``: eager with ``runner.INT8_GROUPS = False``,
compiled with ``fuse=False``), interleaved with the rest, to measure what the grouping gains.
Numbers taken on a machine running other work are rough.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# before torch: benchmarks/generation.py also sets the OpenMP wait policy for a loaded machine
generation = importlib.import_module("generation")
MODELS, read_bandwidth = generation.MODELS, generation.read_bandwidth

import torch  # noqa: E402
from torch import nn  # noqa: E402

PROMPT, NEW = 32, 64
BATCHES = (1, 8)
TINY = dict(vocab_size=512, hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip


def build(spec: dict, kind: str, head: str) -> nn.Module:
    from pretrained import LlamaConfig, LlamaForCausalLM
    from pretrained.quantizers.int4_linear import GPTQLinear, Int8WeightOnlyLinear, replace_linears

    torch.manual_seed(0)
    config = LlamaConfig(**spec, eos_token_id=None, bos_token_id=None, pad_token_id=0)
    model = LlamaForCausalLM(config).eval()
    model.generation_config.eos_token_id = None
    skip = ("lm_head",) if head == "fp32" else ()
    if kind == "int8":
        replace_linears(model, Int8WeightOnlyLinear.from_linear, skip=skip)
    elif kind == "int4":
        replace_linears(model, lambda lin: GPTQLinear.from_linear(lin, 4, 128, dtype=torch.float16), skip=skip)
    return model


def bytes_per_step(model: nn.Module, ids: torch.Tensor) -> int:
    """Bytes one decode step reads: each quantized layer's kernel tensors (built by a forward), other
    parameters and buffers whole, one row of the embedding table."""
    with torch.no_grad():
        model(ids[:1, :1])  # builds the layers' kernel caches
    embed = model.get_input_embeddings().weight
    total, seen = 0, set()
    for module in model.modules():
        cache = module.__dict__.get("_kernel_cache")
        if cache is not None:
            tensors = [v for k, v in cache.items() if k != "sources" and isinstance(v, torch.Tensor)]
            tensors += [module.weight_scale] if hasattr(module, "weight_scale") else []
        else:
            tensors = [*module.parameters(recurse=False), *module.buffers(recurse=False)]
        for t in tensors:
            if id(t) in seen or not t.is_floating_point() and t.dtype not in (torch.int8, torch.uint8, torch.int32):
                continue
            seen.add(id(t))
            total += t.element_size() * (t.shape[1] if t is embed else t.numel())
    return total


def set_route(model: nn.Module, route: str) -> None:
    for module in model.modules():
        if hasattr(module, "kernel"):
            module.kernel = route


def generate(model: nn.Module, ids: torch.Tensor, compiled: bool, grouped: bool = True) -> torch.Tensor:
    from pretrained.generation import runner
    from pretrained.inference.compiled import compiled_decoder

    options = dict(cache_implementation="static", compile_config={"fullgraph": True}) if compiled else {}
    if compiled and not grouped:
        compiled_decoder(model, options["compile_config"], fuse=False)  # made once, then reused by generate
    runner.INT8_GROUPS = grouped
    try:
        return model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=NEW, min_new_tokens=None,
                              do_sample=False, **options)  # fmt: skip
    finally:
        runner.INT8_GROUPS = True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="a tiny model, one repeat (a smoke run)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", help="eager runs only")
    parser.add_argument("--head", choices=("quantized", "fp32"), default="quantized", help="the output head")
    parser.add_argument("--no-extension", dest="extension", action="store_false",
                        help="compiled steps call the kernels through Python-bodied ops (no torch C++ extension)")  # fmt: skip
    parser.add_argument("--no-packed-memory", dest="packed", action="store_false",
                        help="quantized layers keep their weights where they were made (4 KB pages), not in the "
                             "shared huge-page chunks of pretrained.inference.packed_memory")  # fmt: skip
    parser.add_argument("--int8-layers", action="store_true",
                        help="also an int8 model whose sibling projections keep one kernel call each (no grouping)")  # fmt: skip
    args = parser.parse_args()
    from pretrained.inference import packed_memory

    packed_memory.ENABLED = args.packed
    if args.threads:
        torch.set_num_threads(args.threads)
    # one decode function is compiled for every model, route and batch here (each a guard set of its own)
    torch._dynamo.config.recompile_limit = 64
    from pretrained.inference import quant_kernels

    kernels_built = quant_kernels.load_kernels() is not None
    extension = args.extension and quant_kernels.load_torch_ops()  # minutes the first time on a machine
    spec, name = (TINY, "llama-tiny") if args.quick else (MODELS["llama-100M"], "llama-100M")
    repeats = 1 if args.quick else args.repeats
    bandwidths = read_bandwidth(0.25 if args.quick else 1.0)
    # the goals' bound reads ordinary memory; the kernels' packed weights sit in huge pages, which read faster
    bandwidth, huge = bandwidths["ordinary"], bandwidths.get("huge_pages")
    vnni = ("vnni",) if quant_kernels.vnni_ready() else ()
    variants = [("fp32", "auto", False)] + [(kind, route, False) for kind in ("int8", "int4") for route in ("auto", *vnni)]
    if args.compile:
        variants += [("fp32", "auto", True)]
        variants += [(kind, route, True) for kind in ("int8", "int4") for route in ("cpp", "reduction", *vnni)]
    kinds = ("fp32", "int8", "int4")
    if args.int8_layers:
        kinds += ("int8-layers",)
        variants += [("int8-layers", "auto", False)] + ([("int8-layers", "cpp", True)] if args.compile else [])
    models = {kind: build(spec, kind.split("-")[0], args.head) for kind in kinds}
    results = []
    for batch in BATCHES:
        ids = torch.randint(1, spec["vocab_size"], (batch, PROMPT), generator=torch.Generator().manual_seed(0))
        times: dict[str, list[float]] = {}
        per_step = {kind: bytes_per_step(model, ids) for kind, model in models.items()}
        tokens: dict[tuple[str, str, bool], torch.Tensor] = {}
        with torch.inference_mode():
            for kind, route, compiled in variants:  # warm up; compiles the compiled variants
                set_route(models[kind], route)
                tokens[kind, route, compiled] = generate(models[kind], ids, compiled, kind != "int8-layers")
            for _ in range(repeats):  # variants alternate, so load from other processes hits each alike
                for kind, route, compiled in variants:
                    set_route(models[kind], route)
                    start = time.perf_counter()
                    generate(models[kind], ids, compiled, kind != "int8-layers")
                    key = f"{kind} {'compiled' if compiled else 'eager'} {route}"
                    times.setdefault(key, []).append(time.perf_counter() - start)
        speeds = {key: batch * NEW / statistics.median(t) for key, t in times.items()}
        base = speeds["fp32 eager auto"]
        for kind, route, compiled in variants:
            key = f"{kind} {'compiled' if compiled else 'eager'} {route}"
            speed = speeds[key]
            bound = batch * bandwidth / per_step[kind]
            # the exact routes must give the eager step's tokens (vnni rounds activations: its own eager run)
            eager = tokens[kind, "vnni" if route == "vnni" else "auto", False]
            same = torch.equal(tokens[kind, route, compiled], eager)
            row = {"model": name, "batch": batch, "config": key, "tok_s": round(speed, 1),
                   "vs_fp32_eager": round(speed / base, 2), "bytes_per_step_MB": round(per_step[kind] / 1e6, 2),
                   "bound_tok_s": round(bound, 1), "pct_of_bound": round(100 * speed / bound, 1),
                   "pct_of_huge_page_bound": None if huge is None else round(100 * speed * per_step[kind] / (batch * huge), 1),
                   "tokens_as_eager": same}  # fmt: skip
            results.append(row)
            print(f"{name} b{batch} {key:24s} {speed:9.1f} tok/s  {row['vs_fp32_eager']:5.2f}x fp32 eager  "
                  f"{row['pct_of_bound']:5.1f}% of its bound ({bound:.1f} tok/s, {row['bytes_per_step_MB']} MB/step)"
                  + ("" if huge is None else f", {row['pct_of_huge_page_bound']:5.1f}% of the huge-page one")
                  + ("" if same else "  TOKENS DIFFER FROM EAGER"), flush=True)  # fmt: skip
    setup = {
        "machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__, "python": sys.version.split()[0], "prompt_tokens": PROMPT, "new_tokens": NEW,
        "head": args.head, "packed_memory": args.packed, "cpp_kernels": kernels_built, "torch_ops_extension": extension, "read_bandwidth_GBps": round(bandwidth / 1e9, 2),
        "huge_page_read_bandwidth_GBps": None if huge is None else round(huge / 1e9, 2),
    }  # fmt: skip
    print(f"setup: {setup}")
    print(json.dumps({"benchmark": "quantization_decode", "setup": setup, "results": results}))


if __name__ == "__main__":
    main()
