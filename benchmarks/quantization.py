"""Greedy decoding speed of quantized models: pretrained vs transformers with the same configs.

Run: ``python benchmarks/quantization.py [--quick] [--new 64] [--repeats 3]``.

A Llama-style model with random weights (~107M parameters, tied 4k vocabulary; ``--quick``: a tiny
one for a smoke run) is saved once by transformers and loaded by both libraries in each config:
fp32, bf16, bitsandbytes int8 and nf4, torchao int8 weight-only. For each: greedy decoding of
``--new`` tokens from a 32-token prompt at batch 1 and batch 8, eager (the default ``generate``). Both
libraries run the same quantized layers, so their tokens must agree (reported per row).

The bound: at batch 1 each decode step reads every quantized or float weight once (the embedding table
excepted), so ``tokens/s <= read bandwidth / bytes per token``; the bytes are the model's real
footprint (``get_memory_footprint``: packed values and scales) less the embeddings. The read bandwidth
is measured in the same run by summing a large tensor. Prints a table and one JSON line.

Not covered yet: compiled decoding of quantized models (bitsandbytes layers do not compile; torchao
ones do) and the int4 GPTQ / AWQ layouts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import torch  # noqa: E402

MODELS = {
    "llama-107M": dict(vocab_size=4096, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                       num_attention_heads=16, num_key_value_heads=16, tie_word_embeddings=True),
    "llama-tiny": dict(vocab_size=256, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=4, tie_word_embeddings=True),
}
PROMPT = 32
CONFIGS = ("fp32", "bf16", "bnb-int8", "bnb-nf4", "torchao-int8")


def load_kwargs(lib, name: str) -> dict:
    """``from_pretrained`` arguments of config ``name`` for ``lib`` (pretrained or transformers)."""
    if name == "fp32":
        return {"dtype": torch.float32}
    if name == "bf16":
        return {"dtype": torch.bfloat16}
    if name == "bnb-int8":
        return {"quantization_config": lib.BitsAndBytesConfig(load_in_8bit=True)}
    if name == "bnb-nf4":
        return {"quantization_config": lib.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")}
    from torchao.quantization import Int8WeightOnlyConfig

    return {"quantization_config": lib.TorchAoConfig(Int8WeightOnlyConfig())}


def decode(model, prompt: torch.Tensor, new: int, repeats: int) -> tuple[float, torch.Tensor]:
    """Median seconds of a greedy ``generate`` of ``new`` tokens, and its output."""
    times, out = [], None
    with torch.inference_mode():
        model.generate(prompt, max_new_tokens=2, min_new_tokens=2, do_sample=False)  # warm-up
        for _ in range(repeats):
            start = time.perf_counter()
            out = model.generate(prompt, max_new_tokens=new, min_new_tokens=new, do_sample=False)
            times.append(time.perf_counter() - start)
    return statistics.median(times), out


def read_bandwidth() -> float:
    """Bytes per second of summing a 256 MiB tensor with every thread (best of 5)."""
    x = torch.ones(64 * 2**20, dtype=torch.float32)
    best = float("inf")
    for _ in range(5):
        start = time.perf_counter()
        x.sum()
        best = min(best, time.perf_counter() - start)
    return x.numel() * 4 / best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model: a smoke run, not a measurement")
    parser.add_argument("--new", type=int, default=64, help="new tokens per generate")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--configs", default=",".join(CONFIGS))
    args = parser.parse_args()
    warnings.filterwarnings("ignore")

    import transformers as T

    import pretrained as P

    name = "llama-tiny" if args.quick else "llama-107M"
    torch.manual_seed(0)
    rows = []
    bandwidth = read_bandwidth()
    with tempfile.TemporaryDirectory() as folder:
        T.LlamaForCausalLM(T.LlamaConfig(**MODELS[name])).save_pretrained(folder)
        embed = MODELS[name]["vocab_size"] * MODELS[name]["hidden_size"] * 4
        for config in args.configs.split(","):
            for batch in (1, 8):
                prompt = torch.randint(0, MODELS[name]["vocab_size"], (batch, PROMPT),
                                       generator=torch.Generator().manual_seed(batch))
                result = {"config": config, "batch": batch}
                outputs = {}
                for label, lib in (("pretrained", P), ("transformers", T)):
                    model = lib.LlamaForCausalLM.from_pretrained(folder, **load_kwargs(lib, config)).eval()
                    seconds, outputs[label] = decode(model, prompt, args.new, args.repeats)
                    result[label] = batch * args.new / seconds
                    if label == "pretrained":
                        per_token = model.get_memory_footprint() - (embed if config != "bf16" else embed // 2)
                        result["bound_b1"] = bandwidth / per_token
                    del model
                result["same_tokens"] = bool(torch.equal(outputs["pretrained"], outputs["transformers"]))
                rows.append(result)
                print(f"{config:>13} b{batch}: ours {result['pretrained']:8.1f} tok/s  transformers "
                      f"{result['transformers']:8.1f} tok/s  ratio {result['pretrained'] / result['transformers']:.2f}"
                      f"  b1 bound {result['bound_b1']:8.1f}  same tokens {result['same_tokens']}", flush=True)
    print(json.dumps({"benchmark": "quantization", "model": name, "new_tokens": args.new, "prompt": PROMPT,
                      "threads": torch.get_num_threads(), "torch": torch.__version__, "python": sys.version.split()[0],
                      "machine": platform.machine(), "read_bandwidth_GBps": bandwidth / 1e9, "rows": rows}))


if __name__ == "__main__":
    main()
