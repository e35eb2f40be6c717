"""Whisper log-mel feature extraction: pretrained vs transformers, items/s in one process.

Run: ``python benchmarks/feature_extraction.py [--clips 16] [--seconds 30] [--batch-sizes 1 8] [--repeats 3]``.

Inputs: synthetic 16 kHz mono clips (a chirp plus noise) of ``--seconds`` seconds, padded or cut to 30 s
by both extractors (``WhisperFeatureExtractor()``, 80 mel bins, ``return_tensors="pt"``), called on slices
of B clips. Interleaved, best of ``--repeats``; prints items/s, the ratio and one JSON line. Features are
checked to agree within 1e-5 first.
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    args = parser.parse_args()

    import numpy as np
    import torch
    import transformers

    import pretrained

    if args.threads:
        torch.set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    n = int(16000 * args.seconds)
    sweep = np.sin(2 * np.pi * np.cumsum(np.linspace(80, 7000, n)) / 16000) * 0.5
    clips = [(sweep + 0.05 * rng.standard_normal(n)).astype(np.float32) for _ in range(args.clips)]
    ours, theirs = pretrained.WhisperFeatureExtractor(), transformers.WhisperFeatureExtractor()
    a = ours(clips[:2], sampling_rate=16000, return_tensors="pt")["input_features"]
    b = theirs(clips[:2], sampling_rate=16000, return_tensors="pt")["input_features"]
    assert torch.allclose(a, b, atol=1e-5, rtol=0), "features differ"
    results = []
    for batch_size in args.batch_sizes:
        runs = {name: (lambda e=e, b=batch_size: [e(clips[i:i + b], sampling_rate=16000, return_tensors="pt")
                                                  for i in range(0, len(clips), b)])
                for name, e in (("pretrained", ours), ("transformers", theirs))}
        seconds = dict.fromkeys(runs, float("inf"))
        for run in runs.values():  # warm-up
            run()
        for _ in range(args.repeats):
            for name, run in runs.items():
                start = time.perf_counter()
                run()
                seconds[name] = min(seconds[name], time.perf_counter() - start)
        row = {"batch_size": batch_size, **{f"{k}_items_per_s": round(len(clips) / v, 1) for k, v in seconds.items()},
               "speedup_vs_transformers": round(seconds["transformers"] / seconds["pretrained"], 2)}
        results.append(row)
        print(f"whisper log-mel batch {batch_size:3d}: pretrained {row['pretrained_items_per_s']:7.1f}/s  "
              f"transformers {row['transformers_items_per_s']:7.1f}/s  -> {row['speedup_vs_transformers']:.2f}x",
              flush=True)
    setup = {"clips": args.clips, "seconds": args.seconds, "repeats": args.repeats, "threads": torch.get_num_threads(),
             "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
             "machine": platform.machine()}
    print(json.dumps({"benchmark": "whisper-log-mel", "setup": setup, "results": results}))


if __name__ == "__main__":
    main()
