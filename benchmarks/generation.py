"""Greedy and beam-search decoding speed: pretrained vs transformers, and the memory-bandwidth bound.

Run: ``python benchmarks/generation.py [--quick] [--repeats 3] [--no-compile] [--compare-unfused]``.

Two Llama-style models with random weights are saved to disk and loaded by both libraries (fp32):
a ~100M-parameter one (where reading the weights dominates) and a ~10M one (where Python overhead per
token dominates). For each: greedy decoding of 128 new tokens from a 32-token prompt at batch 1 and
batch 8, and 4-beam search at batch 1. Both libraries must produce identical tokens (checked).

The bound: at batch 1 every decode step reads every weight once (the embedding table excepted: one
row), so ``tokens/s <= read bandwidth / weight bytes``. The read bandwidth is measured in the same run
by summing a large tensor with all threads, in ordinary memory (the bound of the goals) and, on
Linux, in transparent huge pages (a stricter bound: compiled decoding moves the weights there).
Compiled runs also report the share of the weights the kernel really backs with huge pages
(``AnonHugePages``; compiled decoding collapses them there, see ``pretrained.inference.hugepages``), and
``--compare-unfused`` adds a variant that keeps q/k/v and gate/up as separate products (a copy of the
model, alternating with the others) to measure what packing them gains.
Prints a table, the ratios, and one JSON line.

Encoder-decoders: a BART-base-shaped model (~140M parameters, 6 + 6 layers of width 768, BART's 50k
vocabulary) and a T5-small-shaped one (~60M, 6 + 6 layers of width 512, 32k vocabulary) run greedy batch 1
and 4-beam batch 1 (the encoder reads the 32-token prompt once; 128
decoder tokens), and ``bart-tiny`` / ``t5-tiny`` smoke-test that path in seconds (``--models bart-tiny t5-tiny``). Their bound
counts what a decode step reads: the decoder's weights without the cross-attention key / value projections
(those are cached) plus the full tied output projection.

Each case runs eagerly (the default ``generate``) and compiled: a static cache with the decode step
compiled by ``torch.compile`` (``compile_config={"fullgraph": True}``; compile time not counted). For
transformers the compiled run uses its own ``CompileConfig`` (forced on for the CPU); its beam search
is not compiled here. Every run must give the eager tokens (checked).
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import sys
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
# On cores busy with other processes, OpenMP threads that spin while waiting stall each other (10x
# slower decode seen on the shared 2-core box), but on an idle box passive waiting halves small-model
# speed. So: passive only when the machine is already loaded (and OMP_WAIT_POLICY is not set).
# Passive waiting also slows compiled batch-1 steps by itself: inductor's kernels end each parallel loop
# in a barrier (~180 per step of the 100M model), and a passive barrier sleeps in the kernel (~480 futex
# calls per step counted with strace) instead of spinning. A previous run's load average (the 1-minute
# average decays slowly) can select it, so the policy is printed; set OMP_WAIT_POLICY=ACTIVE on a quiet box.
load_at_start = os.getloadavg()[0]
if load_at_start > (os.cpu_count() or 1) - 0.5:
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

MODELS = {
    # ~100M parameters: 12 layers of width 768, untied 16k vocabulary.
    "llama-100M": dict(
        vocab_size=16000, hidden_size=768, intermediate_size=2048, num_hidden_layers=12,
        num_attention_heads=12, num_key_value_heads=4, max_position_embeddings=512,
    ),
    # ~10M parameters: 6 layers of width 256.
    "llama-10M": dict(
        vocab_size=16000, hidden_size=256, intermediate_size=688, num_hidden_layers=6,
        num_attention_heads=8, num_key_value_heads=4, max_position_embeddings=512,
    ),
    # BART-base's shape (facebook/bart-base): encoder-decoder, tied 50k vocabulary.
    "bart-base": dict(
        family="bart", vocab_size=50265, d_model=768, encoder_layers=6, decoder_layers=6,
        encoder_attention_heads=12, decoder_attention_heads=12, encoder_ffn_dim=3072, decoder_ffn_dim=3072,
        max_position_embeddings=1024,
    ),
    # T5-small's shape (google-t5/t5-small, ~60M): 6 + 6 layers of width 512, 32k tied vocabulary,
    # relative position buckets.
    "t5-small": dict(
        family="t5", vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_decoder_layers=6,
        num_heads=8,
    ),
    "t5-tiny": dict(
        family="t5", vocab_size=1000, d_model=64, d_kv=16, d_ff=128, num_layers=2, num_decoder_layers=2,
        num_heads=4,
    ),
    # A smoke test of the encoder-decoder path (seconds).
    "bart-tiny": dict(
        family="bart", vocab_size=1000, d_model=64, encoder_layers=2, decoder_layers=2,
        encoder_attention_heads=4, decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
        max_position_embeddings=256,
    ),
}  # fmt: skip
PROMPT, NEW = 32, 128
SCENARIOS = {"greedy b1": (1, 1), "greedy b8": (8, 1), "beam4 b1": (1, 4)}
# Encoder-decoders: greedy batch 1 and 4-beam search (the goals of the encoder-decoder issue).
SEQ2SEQ_SCENARIOS = ("greedy b1", "beam4 b1")


def _is_seq2seq(spec: dict) -> bool:
    return spec.get("family") in ("bart", "t5")


DEVICE = torch.device("cpu")  # --device


def _sync() -> None:
    if DEVICE.type == "cuda":
        torch.cuda.synchronize()


def read_bandwidth(gib: float = 1.0, repeats: int = 5) -> dict[str, float]:
    """Bytes per second that ``sum`` streams from memory (best of ``repeats``): from ordinary memory
    (the bound the goals were set against) and, on Linux CPUs, from transparent huge pages, which
    read faster here and where compiled decoding puts the weights (``pretrained.inference.hugepages``)."""
    n = int(gib * 2**30) // 4
    buffers = {"ordinary": torch.ones(n, device=DEVICE)}
    if DEVICE.type == "cpu":
        from pretrained.inference import hugepages

        if hugepages.SUPPORTED:
            buffers["huge_pages"] = hugepages.empty((n,), torch.float32).fill_(1.0)
            hugepages.collapse(buffers["huge_pages"])  # as the weights are
            huge, total = hugepages.huge_page_bytes([buffers["huge_pages"]])
            if huge < total:
                print(f"note: only {huge / total:.0%} of the bandwidth test's huge-page buffer is in huge pages")
    result = {}
    for kind, x in buffers.items():
        x.sum()
        result[kind] = n * 4 / min(_timed(lambda: x.sum()) for _ in range(repeats))  # noqa: B023
    return result


def huge_page_share(model: torch.nn.Module) -> float | None:
    """Share of ``model``'s weights that compiled decoding placed in huge-page regions which the kernel
    really backs with huge pages (``AnonHugePages`` in ``/proc/self/smaps``); ``None`` off Linux CPUs."""
    from pretrained.inference import hugepages

    if DEVICE.type != "cpu" or not hugepages.SUPPORTED:
        return None
    tensors = [p for p in model.parameters() if p.numel() * p.element_size() >= hugepages.HUGE_PAGE]
    huge, total = hugepages.huge_page_bytes(tensors)
    return huge / total if total else None


def _timed(fn) -> float:
    _sync()
    start = time.perf_counter()
    fn()
    _sync()
    return time.perf_counter() - start


def weight_bytes_per_token(model: torch.nn.Module) -> int:
    """Bytes of parameters one batch-1 decode step reads (the embedding table counts as one row)."""
    total = 0
    embed = model.get_input_embeddings().weight
    seen = set()
    for p in model.parameters():
        if id(p) in seen:
            continue
        seen.add(id(p))
        total += p.element_size() * (p.shape[1] if p is embed else p.numel())
    return total


def seq2seq_bytes_per_token(model: torch.nn.Module) -> int:
    """Bytes of parameters one batch-1 decode step of an encoder-decoder reads: the decoder (its token and
    position tables one row each; the cross-attention keys / values come from the cache) and the output
    projection (the whole tied table)."""
    decoder = model.get_decoder()
    skip = {id(decoder.embed_tokens.weight)}
    if hasattr(decoder, "block"):  # T5: relative position buckets, cross-attention in layer[1]
        cross = [(block.layer[1].EncDecAttention.k, block.layer[1].EncDecAttention.v) for block in decoder.block]
        position_rows = 0
    else:
        skip.add(id(decoder.embed_positions.weight))
        cross = [(layer.encoder_attn.k_proj, layer.encoder_attn.v_proj) for layer in decoder.layers]
        position_rows = 1
    skip |= {id(p) for pair in cross for proj in pair for p in proj.parameters()}
    total = sum(p.element_size() * p.numel() for p in decoder.parameters() if id(p) not in skip)
    rows = decoder.embed_tokens.weight
    total += (1 + position_rows) * rows.element_size() * rows.shape[1]  # one token row (and position row)
    head = model.get_output_embeddings().weight
    return total + head.element_size() * head.numel()


def build(folder: str, spec: dict) -> None:
    import transformers

    torch.manual_seed(0)
    if spec.get("family") == "t5":
        config = transformers.T5Config(**{k: v for k, v in spec.items() if k != "family"}, decoder_start_token_id=0)
        model = transformers.T5ForConditionalGeneration(config)
    elif _is_seq2seq(spec):
        config = transformers.BartConfig(**{k: v for k, v in spec.items() if k != "family"})
        model = transformers.BartForConditionalGeneration(config)
        # A fixed number of new tokens: nothing may end a sequence early.
        model.generation_config.forced_eos_token_id = None
        model.generation_config.forced_bos_token_id = None
    else:
        config = transformers.LlamaConfig(**spec, eos_token_id=None, bos_token_id=None, pad_token_id=0)
        model = transformers.LlamaForCausalLM(config)
    model.generation_config.eos_token_id = None
    model.save_pretrained(folder)


def run(model, ids: torch.Tensor, beams: int, **options) -> torch.Tensor:
    kwargs = dict(max_new_tokens=NEW, min_new_tokens=None, do_sample=False, num_beams=beams, **options)
    if beams > 1:
        kwargs["early_stopping"] = False
    out = model.generate(ids, attention_mask=torch.ones_like(ids), **kwargs)
    _sync()
    return out


def compiled_options(lib: str) -> dict:
    """``generate`` options for a static cache and a compiled decode step."""
    if lib == "pretrained":
        return dict(cache_implementation="static", compile_config={"fullgraph": True})
    from transformers import CompileConfig

    config = CompileConfig(fullgraph=True)
    config._compile_all_devices = True  # transformers compiles on CUDA only unless told
    return dict(cache_implementation="static", compile_config=config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per case (median reported)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true", help="only the 10M model, one repeat")
    parser.add_argument("--models", nargs="*", default=None, help="subset of: " + ", ".join(MODELS))
    parser.add_argument(
        "--no-compile",
        dest="compile",
        action="store_false",
        help="skip the compiled (static cache + torch.compile) runs",
    )
    parser.add_argument("--scenarios", nargs="*", default=None, help="subset of: " + ", ".join(SCENARIOS))
    parser.add_argument("--device", default="cpu", help="cpu (the goals) or cuda (for information)")
    parser.add_argument(
        "--compare-unfused",
        action="store_true",
        help="also time pretrained's compiled decoding without packed q/k/v and gate/up projections (a copy "
        "of the model; alternates with the others)",
    )
    args = parser.parse_args()
    global DEVICE
    DEVICE = torch.device(args.device)
    torch.backends.cuda.matmul.allow_tf32 = False  # fp32 on both sides: identical tokens
    import transformers

    import pretrained

    if args.threads:
        torch.set_num_threads(args.threads)
    names = args.models or (["llama-10M"] if args.quick else list(MODELS))
    repeats = 1 if args.quick else args.repeats
    policy = os.environ.get("OMP_WAIT_POLICY")
    print(f"OpenMP wait policy: {policy or 'default'} (load average at start {load_at_start:.2f})", flush=True)
    bandwidth = read_bandwidth()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            folder = os.path.join(tmp, name)
            build(folder, MODELS[name])
            seq2seq = _is_seq2seq(MODELS[name])
            auto = "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM"
            libs = {
                "pretrained": getattr(pretrained, auto).from_pretrained(folder, dtype=torch.float32).to(DEVICE),
                "transformers": getattr(transformers, auto).from_pretrained(folder, dtype=torch.float32)
                .to(DEVICE)
                .eval(),
            }
            # best seen: the machine is shared
            bandwidth = {k: max(v, bandwidth.get(k, 0.0)) for k, v in read_bandwidth().items()}
            unfused = None  # --compare-unfused: a copy of the pretrained model, made once per model
            params = sum(p.numel() for p in libs["pretrained"].parameters())
            per_token = (seq2seq_bytes_per_token if seq2seq else weight_bytes_per_token)(libs["pretrained"])
            bound = bandwidth["ordinary"] / per_token
            strict = bandwidth.get("huge_pages", 0.0) / per_token
            for scenario, (batch, beams) in SCENARIOS.items():
                if args.scenarios and scenario not in args.scenarios:
                    continue
                if seq2seq and scenario not in SEQ2SEQ_SCENARIOS:
                    continue
                ids = torch.randint(
                    1, MODELS[name]["vocab_size"], (batch, PROMPT), generator=torch.Generator().manual_seed(0)
                ).to(DEVICE)
                variants = {lib: (model, {}) for lib, model in libs.items()}
                if args.compile:
                    for lib, model in libs.items():
                        if lib == "pretrained" or beams == 1:  # (transformers' beam search: not compiled)
                            variants[f"{lib}_compiled"] = (model, compiled_options(lib))
                    if args.compare_unfused and DEVICE.type == "cpu":
                        from pretrained.inference.compiled import compiled_decoder

                        unfused = unfused or copy.deepcopy(libs["pretrained"])
                        options = compiled_options("pretrained")
                        compiled_decoder(unfused, options["compile_config"], fuse=False)  # generate reuses it
                        variants["pretrained_compiled_unfused"] = (unfused, options)
                outputs, times = {}, {variant: [] for variant in variants}
                with torch.inference_mode():
                    for model, options in variants.values():
                        # warm up (allocator, kernels, fused weights); compiles the compiled variants
                        run(model, ids if options else ids[:, :8], beams, **options)
                    # All variants alternate, so load from other processes hits each alike.
                    for _ in range(repeats):
                        for variant, (model, options) in variants.items():
                            start = time.perf_counter()
                            outputs[variant] = run(model, ids, beams, **options)
                            times[variant].append(time.perf_counter() - start)
                speed = {variant: batch * NEW / statistics.median(t) for variant, t in times.items()}
                same = all(torch.equal(out, outputs["pretrained"]) for out in outputs.values())
                row = {
                    "model": name, "params_M": round(params / 1e6, 1), "scenario": scenario,
                    "pretrained_tok_s": round(speed["pretrained"], 1),
                    "transformers_tok_s": round(speed["transformers"], 1),
                    "ratio": round(speed["pretrained"] / speed["transformers"], 2),
                    "identical_tokens": same,
                }  # fmt: skip
                for key in ("pretrained_compiled", "transformers_compiled", "pretrained_compiled_unfused"):
                    if key in speed:
                        row[f"{key}_tok_s"] = round(speed[key], 1)
                if "pretrained_compiled" in speed:
                    row["compiled_ratio_vs_transformers_eager"] = round(
                        speed["pretrained_compiled"] / speed["transformers"], 2
                    )
                if "transformers_compiled" in speed:
                    row["compiled_ratio_vs_transformers_compiled"] = round(
                        speed["pretrained_compiled"] / speed["transformers_compiled"], 2
                    )
                if "pretrained_compiled" in speed:
                    share = huge_page_share(libs["pretrained"])
                    if share is not None:
                        row["pretrained_weights_in_huge_pages_pct"] = round(100 * share, 1)
                if scenario == "greedy b1":
                    row["bound_tok_s"] = round(bound, 1)
                    if strict:
                        row["bound_huge_pages_tok_s"] = round(strict, 1)
                        for key in ("pretrained_compiled", "transformers_compiled"):
                            if key in speed:
                                row[f"{key}_pct_of_huge_page_bound"] = round(100 * speed[key] / strict, 1)
                    for key in ("pretrained", "transformers", "pretrained_compiled", "transformers_compiled"):
                        if key in speed:
                            row[f"{key}_pct_of_bound"] = round(100 * speed[key] / bound, 1)
                results.append(row)
                extra = ""
                if "bound_tok_s" in row:
                    extra = (
                        f"  bound {row['bound_tok_s']:.1f} tok/s: pretrained {row['pretrained_pct_of_bound']}%, "
                        f"transformers {row['transformers_pct_of_bound']}%"
                    )
                if "pretrained_compiled" in speed:
                    extra += (
                        f"\n{'':22s}compiled: pretrained {speed['pretrained_compiled']:8.1f} tok/s "
                        f"({row['compiled_ratio_vs_transformers_eager']:.2f}x transformers eager)"
                    )
                    if "transformers_compiled" in speed:
                        extra += (
                            f"  transformers {speed['transformers_compiled']:8.1f} tok/s "
                            f"({row['compiled_ratio_vs_transformers_compiled']:.2f}x)"
                        )
                    if "pretrained_compiled_unfused" in speed:
                        extra += (f"  (unfused projections: {speed['pretrained_compiled_unfused']:8.1f} tok/s, fused "
                                  f"{speed['pretrained_compiled'] / speed['pretrained_compiled_unfused']:.3f}x)")
                    if "pretrained_weights_in_huge_pages_pct" in row:
                        extra += f"  weights in huge pages: {row['pretrained_weights_in_huge_pages_pct']}%"
                    if "bound_tok_s" in row:
                        extra += f"  pretrained at {row['pretrained_compiled_pct_of_bound']}% of the bound"
                        if "pretrained_compiled_pct_of_huge_page_bound" in row:
                            extra += (f" ({row['pretrained_compiled_pct_of_huge_page_bound']}% of "
                                      f"{row['bound_huge_pages_tok_s']:.1f} tok/s from huge pages)")
                print(
                    f"{name:11s} {scenario:10s} pretrained {speed['pretrained']:8.1f} tok/s  transformers "
                    f"{speed['transformers']:8.1f} tok/s  ratio {row['ratio']:.2f}x  identical={same}{extra}",
                    flush=True,
                )
            del libs, unfused
    setup = {
        "machine": platform.processor() or platform.machine(),
        "device": torch.cuda.get_device_name() if DEVICE.type == "cuda" else "cpu",
        "threads": torch.get_num_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
        "dtype": "float32",
        "prompt_tokens": PROMPT,
        "new_tokens": NEW,
        "read_bandwidth_GBps": round(bandwidth["ordinary"] / 1e9, 2),
        "read_bandwidth_huge_pages_GBps": round(bandwidth.get("huge_pages", 0.0) / 1e9, 2),
    }
    print(f"setup: {setup}")
    print(json.dumps({"benchmark": "generation", "setup": setup, "results": results}))


if __name__ == "__main__":
    main()
