"""Programs the distributed tests run under `python -m torch.distributed.run` (gloo, on the CPU).

`python -m torch.distributed.run --nproc-per-node N dist_workers.py SCENARIO OUT_DIR` runs one scenario;
results are written with torch.save under OUT_DIR (rank 0, or one file per rank) and compared by the
test against one process running the same thing unsharded.
"""

import os
import sys

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh

from pretrained.models.llama import LlamaConfig, LlamaForCausalLM

VOCAB, SEQ, STEPS, LR = 64, 16, 3, 1e-2


def tiny_llama(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                         tie_word_embeddings=False)  # fmt: skip
    return LlamaForCausalLM(config).train()


def global_batch(n: int = 4) -> dict:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, VOCAB, (n, SEQ), generator=g)
    return {"input_ids": ids, "labels": ids.clone()}


def padded_batch() -> dict:
    batch = global_batch(2)
    mask = torch.ones_like(batch["input_ids"])
    mask[1, 11:] = 0  # right padding: no query is left without a key
    batch["attention_mask"] = mask
    batch["labels"] = batch["labels"].masked_fill(mask == 0, -100)
    return batch


def local_bytes(model, optimizer) -> int:
    """Bytes of this rank's parameters and optimizer state (local shards of DTensors)."""

    def size(t):
        t = t.to_local() if hasattr(t, "to_local") else t
        return t.numel() * t.element_size()

    total = sum(size(p) for p in model.parameters())
    for state in optimizer.state.values():
        total += sum(size(v) for v in state.values() if isinstance(v, torch.Tensor) and v.dim() > 0)
    return total


def train_steps(model, optimizer, batches, clip=True):
    from pretrained.distributed.clipping import clip_grad_norm_

    losses = []
    for batch in batches:
        loss = model(**batch).loss
        loss.backward()
        if clip:
            clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.detach())
    return losses


def full_states(model, optimizer):
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_state_dict(model, optimizer, options=options)


def fsdp(out: str) -> None:
    """dp=2 FSDP2 training steps on halves of the global batch."""
    from pretrained.distributed.fsdp import apply_fsdp

    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("dp",))
    model = apply_fsdp(tiny_llama(), mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    batch = global_batch()
    mine = {k: v[rank * 2 : rank * 2 + 2] for k, v in batch.items()}
    train_steps(model, optimizer, [mine] * STEPS)
    used = local_bytes(model, optimizer)
    model_state, optim_state = full_states(model, optimizer)
    if rank == 0:
        torch.save({"model": model_state, "bytes": used}, os.path.join(out, "fsdp.pt"))


def cp(out: str) -> None:
    """cp=2: forward loss, logits and gradients of a padded batch, its sequences split over 2 ranks."""
    from pretrained.distributed.context_parallel import ContextParallel
    from pretrained.distributed.fsdp import all_reduce_gradients

    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("cp",))
    model = tiny_llama()
    context = ContextParallel(mesh, load_balance=True)
    with context.run(model, padded_batch()) as local:
        outputs = model(**local)
        outputs.loss.backward()
    all_reduce_gradients(model, mesh)
    loss = outputs.loss.detach().clone()
    dist.all_reduce(loss)
    logits = context.unshard(outputs.logits.detach())
    if dist.get_rank() == 0:
        grads = {n: p.grad for n, p in model.named_parameters()}
        torch.save({"loss": loss, "logits": logits, "grads": grads}, os.path.join(out, "cp.pt"))


def fsdp_cp(out: str) -> None:
    """FSDP2 over cp=2 with the sequences split: training steps on one padded batch."""
    from pretrained.distributed.clipping import clip_grad_norm_
    from pretrained.distributed.context_parallel import ContextParallel
    from pretrained.distributed.fsdp import apply_fsdp

    mesh = init_device_mesh("cpu", (1, 2), mesh_dim_names=("dp", "cp"))
    model = apply_fsdp(tiny_llama(), mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    context = ContextParallel(mesh)
    for _ in range(STEPS):
        with context.run(model, padded_batch()) as local:
            model(**local).loss.backward()
        clip_grad_norm_(model.parameters(), 0.5)
        optimizer.step()
        optimizer.zero_grad()
    model_state, _ = full_states(model, optimizer)
    if dist.get_rank() == 0:
        torch.save({"model": model_state}, os.path.join(out, "fsdp_cp.pt"))


def clip(out: str) -> None:
    """Clipping a mix of sharded DTensor gradients and plain ones."""
    from torch.distributed.tensor import Shard, distribute_tensor

    from pretrained.distributed.clipping import clip_grad_norm_

    mesh = init_device_mesh("cpu", (2,))
    g = torch.Generator().manual_seed(0)
    full = [torch.randn(4, 6, generator=g), torch.randn(5, generator=g), torch.randn(3, 3, generator=g)]
    sharded = torch.nn.Parameter(distribute_tensor(full[0].clone(), mesh, [Shard(0)]))
    sharded.grad = distribute_tensor(full[0].clone(), mesh, [Shard(0)])
    plain = [torch.nn.Parameter(torch.zeros_like(t)) for t in full[1:]]
    for p, t in zip(plain, full[1:]):
        p.grad = t.clone()
    results = {}
    for norm_type in (2.0, float("inf")):
        results[norm_type] = clip_grad_norm_([sharded, *plain], 0.5, norm_type=norm_type)
    grads = [sharded.grad.full_tensor(), *(p.grad for p in plain)]
    if dist.get_rank() == 0:
        torch.save({"full": full, "norms": results, "grads": grads}, os.path.join(out, "clip.pt"))


def dcp_save(out: str) -> None:
    """dp=2 FSDP: two steps, then a distributed checkpoint and the full states it should hold."""
    from pretrained.distributed import checkpoint
    from pretrained.distributed.fsdp import apply_fsdp

    rank = dist.get_rank()
    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("dp",))
    model = apply_fsdp(tiny_llama(), mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    batch = global_batch()
    train_steps(model, optimizer, [{k: v[rank * 2 : rank * 2 + 2] for k, v in batch.items()}] * 2)
    checkpoint.save(os.path.join(out, "dcp"), model, optimizer)
    model_state, optim_state = full_states(model, optimizer)
    if rank == 0:
        torch.save({"model": model_state, "optim": optim_state}, os.path.join(out, "saved_full.pt"))


def dcp_save_tp(out: str) -> None:
    """tp=2: the model loaded with tp_plan="auto" (DTensor weights), two steps, then a distributed checkpoint
    and the full states it should hold."""
    from pretrained.distributed import checkpoint

    folder = os.path.join(out, "model")
    if dist.get_rank() == 0:
        tiny_llama().save_pretrained(folder)
    dist.barrier()
    model = LlamaForCausalLM.from_pretrained(folder, tp_plan="auto").train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    train_steps(model, optimizer, [global_batch()] * 2)  # every tp rank sees the whole batch
    checkpoint.save(os.path.join(out, "dcp"), model, optimizer)
    model_state, optim_state = full_states(model, optimizer)
    if dist.get_rank() == 0:
        torch.save({"model": model_state, "optim": optim_state}, os.path.join(out, "saved_full.pt"))


def dcp_load(out: str) -> None:
    """dp=2 FSDP, another seed: load the checkpoint, report the full states."""
    from pretrained.distributed import checkpoint
    from pretrained.distributed.fsdp import apply_fsdp

    mesh = init_device_mesh("cpu", (2,), mesh_dim_names=("dp",))
    model = apply_fsdp(tiny_llama(seed=5), mesh)
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR)
    checkpoint.load(os.path.join(out, "dcp"), model, optimizer)
    model_state, optim_state = full_states(model, optimizer)
    if dist.get_rank() == 0:
        torch.save({"model": model_state, "optim": optim_state}, os.path.join(out, "loaded_full.pt"))


if __name__ == "__main__":
    from backend_threads import check_backend_threads_gone

    from pretrained.distributed.mesh import close_distributed, init_distributed

    torch.set_num_threads(1)
    scenario, out_dir = sys.argv[1], sys.argv[2]
    init_distributed("cpu")
    try:
        globals()[scenario](out_dir)
        dist.barrier()
    finally:
        close_distributed()
    check_backend_threads_gone()
