"""Run under ``torchrun --nproc-per-node 2``: load a checkpoint with ``tp_plan="auto"`` and record what the
tests compare with a single process (``tests/distributed/test_tensor_parallel.py``).

Usage: ``tp_worker.py CHECKPOINT OUT_DIR`` (the model), or ``tp_worker.py --errors CHECKPOINT OUT_DIR``
(the refusals), ``tp_worker.py --ways CHECKPOINT OUT_DIR`` (the other ways to
ask), or ``tp_worker.py --memory CHECKPOINT OUT_DIR`` (peak RSS while loading).
Rank 0 writes ``OUT_DIR/results.pt``; every rank checks that the others saw the same outputs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
import torch.distributed as dist
from backend_threads import check_backend_threads_gone
from torch.distributed.tensor import DTensor, Shard

import pretrained as P
from pretrained.distributed.mesh import build_device_mesh, close_distributed
from pretrained.distributed.tensor_parallel import gather_state_dict


def batch(vocab_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two prompts of 7 tokens, the second left-padded by 2."""
    ids = torch.randint(0, vocab_size, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[1, :2] = 0
    return ids, mask


def train_steps(model: torch.nn.Module, steps: int = 2, sgd: bool = False) -> list[float]:
    """``steps`` AdamW steps (or SGD steps, whose update is the gradient itself) on a fixed batch (labels =
    inputs); returns the losses."""
    model.train()
    optimizer = (torch.optim.SGD(model.parameters(), lr=0.5) if sgd
                 else torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1))
    ids, mask = batch(model.config.vocab_size)
    losses = []
    for _ in range(steps):
        loss = model(input_ids=ids, attention_mask=mask, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


def reset_peak() -> None:
    """Reset this process's peak RSS (Linux: ``5`` into ``/proc/self/clear_refs``), when allowed."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


def memory_kib(peak: bool = False) -> int:
    """This process's resident memory (``VmRSS``) or its peak since :func:`reset_peak` (``VmHWM``), in KiB."""
    field = "VmHWM" if peak else "VmRSS"
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def same_on_all_ranks(tensor: torch.Tensor) -> bool:
    gathered = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
    dist.all_gather(gathered, tensor.contiguous())
    return all(torch.equal(gathered[0], t) for t in gathered)


def run_model(checkpoint: str, out: Path) -> None:
    model = P.AutoModelForCausalLM.from_pretrained(checkpoint, tp_plan="auto", dtype=torch.float32)
    results: dict = {"tp_size": model.tp_size, "tp_plan": model.tp_plan,
                     "mesh_size": model.device_mesh.size(),
                     "distributed_config": model.config.distributed_config.to_dict()}
    local = full = 0
    for param in model.parameters():  # tied weights once
        shard = param.to_local() if isinstance(param, DTensor) else param
        local += shard.numel() * shard.element_size()
        full += param.numel() * param.element_size()
    results["param_bytes"] = (local, full)
    results["dtensors"] = sorted(n for n, p in model.named_parameters()
                                 if isinstance(p, DTensor))
    ids, mask = batch(model.config.vocab_size)
    with torch.no_grad():
        logits = model(input_ids=ids, attention_mask=mask).logits
    results["logits"] = logits
    results["logits_same_on_ranks"] = same_on_all_ranks(logits)
    generated = model.generate(ids[:1, :5], max_new_tokens=8, do_sample=False)
    results["generated"] = generated
    results["generated_same_on_ranks"] = same_on_all_ranks(generated)
    # The static cache allocates each layer from its first keys (this rank's heads), eagerly.
    results["generated_static"] = model.generate(ids[:1, :5], max_new_tokens=8, do_sample=False,
                                                 cache_implementation="static")
    model.save_pretrained(out / "saved")
    results["tied"] = (model.get_output_embeddings().weight is model.get_input_embeddings().weight)
    results["losses"] = train_steps(model)
    results["trained"] = {k: v.clone() for k, v in
                          gather_state_dict(model).items()}
    model = P.AutoModelForCausalLM.from_pretrained(checkpoint, tp_plan="auto", dtype=torch.float32)
    results["sgd_losses"] = train_steps(model, steps=1, sgd=True)
    results["trained_sgd"] = gather_state_dict(model)
    if dist.get_rank() == 0:
        torch.save(results, out / "results.pt")


def run_errors(checkpoint: str, out: Path) -> None:
    """``checkpoint`` is a Llama with 4 heads and 2 key/value heads, ``OUT_DIR/bin`` the same as
    ``pytorch_model.bin``, ``OUT_DIR/base`` its base model, ``OUT_DIR/bert`` a BERT."""
    messages = {}
    try:
        P.AutoModel.from_pretrained(out / "bert", tp_plan="auto")
    except ValueError as e:
        messages["encoder"] = f"{type(e).__name__}: {e}"
    for key, kwargs in {
        "heads": {"tp_plan": "auto", "num_key_value_heads": 1},
        "strategy": {"tp_plan": {"model.layers.*.mlp.gate_proj": "bogus"}},
        "unsupported": {"tp_plan": {"model.layers.*.mlp.gate_proj": "sequence_parallel"}},
        "parameter": {"tp_plan": {"model.layers.*.mlp.gate_proj.weight": "colwise"}},
        "nothing": {"tp_plan": {"model.layers.*.mlp.nope": "colwise"}},
        "size": {"tp_size": 3},
        "both": {"tp_plan": "auto", "distributed_config": P.DistributedConfig(tp_size=2)},
        "device_map": {"tp_plan": "auto", "device_map": "cpu"},
        "fsdp": {"distributed_config": P.DistributedConfig(tp_size=1, fsdp_size=2)},
    }.items():
        try:
            P.AutoModelForCausalLM.from_pretrained(checkpoint, **kwargs)
        except (ValueError, NotImplementedError) as e:
            messages[key] = f"{type(e).__name__}: {e}"
        else:
            messages[key] = "no error"
    if dist.get_rank() == 0:
        torch.save({"messages": messages}, out / "errors.pt")


def run_ways(checkpoint: str, out: Path) -> None:
    """The other ways to ask for the same sharding, weights the checkpoint lacks, the compiled refusal
    (files as for :func:`run_errors`)."""
    messages = {}
    mesh = build_device_mesh(tp=2)
    meshes = {"tp": (mesh.mesh_dim_names, tuple(mesh.shape)),
              "dp": (build_device_mesh(dp=2).mesh_dim_names, tuple(build_device_mesh(dp=2).shape)),
              "default": tuple(build_device_mesh().shape)}
    try:
        build_device_mesh(tp=3)
    except ValueError as e:
        messages["mesh"] = str(e)
    ids, mask = batch(64)
    ways = {"device_mesh": {"device_mesh": mesh, "tp_plan": "auto"}, "tp_size": {"tp_size": 2},
            "distributed_config": {"distributed_config": P.DistributedConfig(tp_size=2)}}
    ways["bin"] = {"tp_plan": "auto", "use_safetensors": False}  # OUT_DIR/bin: pytorch_model.bin
    logits = {}
    for key, kwargs in ways.items():
        source = out / "bin" if key == "bin" else checkpoint
        model = P.AutoModelForCausalLM.from_pretrained(source, **kwargs)
        with torch.no_grad():
            logits[key] = model(input_ids=ids, attention_mask=mask).logits
        logits[key + "_size"] = model.tp_size
    # Weights the checkpoint lacks are initialised on every rank (seeded apart here), then rank 0's are
    # taken: a new classifier (whole on each rank), and an lm_head missing from a base-model checkpoint (cut).
    extra = {}
    torch.manual_seed(dist.get_rank())
    classifier = P.AutoModelForSequenceClassification.from_pretrained(checkpoint, tp_plan="auto", num_labels=3)
    torch.manual_seed(dist.get_rank())
    headless = P.AutoModelForCausalLM.from_pretrained(out / "base", tp_plan="auto")
    with torch.no_grad():
        extra["classifier_same"] = same_on_all_ranks(classifier(input_ids=ids[:1]).logits)
        extra["missing_head_same"] = same_on_all_ranks(headless(input_ids=ids, attention_mask=mask).logits)
    extra["missing_head"] = gather_state_dict(headless)["lm_head.weight"]
    # DTensor parameters go through torch.distributed.checkpoint as they are, optimizer state included.
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(input_ids=ids, attention_mask=mask, labels=ids).loss.backward()
    optimizer.step()
    model_state, optimizer_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optimizer_state}, checkpoint_id=str(out / "dcp"))
    extra["dcp_full"] = gather_state_dict(model)
    model.eval()
    try:
        model.generate(ids[:1], max_new_tokens=2, cache_implementation="static", compile_config={})
    except NotImplementedError as e:
        messages["compiled"] = f"{type(e).__name__}: {e}"
    if dist.get_rank() == 0:
        torch.save({"messages": messages, "logits": logits, "meshes": meshes, **extra}, out / "results.pt")


def run_memory(checkpoint: str, out: Path, tp: bool) -> None:
    """Peak RSS over loading, reading every weight once and a first forward, less the RSS before; the process group and DTensor's first
    use (imports, caches: about 30 MB) come before the baseline, since their cost does not grow with the
    model."""
    if tp:
        mesh = build_device_mesh(tp=2)["tp"]
        DTensor.from_local(torch.zeros(4, 4), mesh, [Shard(0)], run_check=False)
    reset_peak()
    base = memory_kib()
    if tp:
        model = P.AutoModelForCausalLM.from_pretrained(checkpoint, tp_plan="auto", dtype=torch.float32)
    else:
        model = P.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    # Loading maps the file and reads its pages only when used (a forward reads a few embedding rows):
    # reading every weight once makes the whole model resident, as training or long use would.
    with torch.no_grad():
        for param in model.parameters():
            (param.to_local() if isinstance(param, DTensor) else param).sum()
        model(input_ids=torch.arange(4)[None])
    peak = memory_kib(peak=True)
    del model
    if not tp or dist.get_rank() == 0:
        torch.save({"baseline_kib": base, "peak_kib": peak}, out / ("memory_tp.pt" if tp else "memory_single.pt"))


if __name__ == "__main__":
    args = sys.argv[1:]
    mode = args.pop(0) if args[0].startswith("--") else "--model"
    checkpoint, out_dir = args
    if mode == "--memory-single":
        run_memory(checkpoint, Path(out_dir), tp=False)
        sys.exit(0)
    torch.manual_seed(0)
    {"--model": run_model, "--errors": run_errors, "--ways": run_ways,
     "--memory": lambda c, o: run_memory(c, o, tp=True)}[mode](checkpoint, Path(out_dir))
    dist.barrier()
    close_distributed()  # the group from_pretrained(tp_plan=...) started
    check_backend_threads_gone()
