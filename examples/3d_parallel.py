"""Data, tensor and context parallelism together on a causal LM, the way transformers' 3D example runs.

    torchrun --nproc-per-node 2 examples/3d_parallel.py --dp 2      # FSDP2 over 2 ranks
    torchrun --nproc-per-node 2 examples/3d_parallel.py --cp 2      # sequences split over 2 ranks
    torchrun --nproc-per-node 2 examples/3d_parallel.py --tp 2      # weights split over 2 ranks
    torchrun --nproc-per-node 8 examples/3d_parallel.py --dp 2 --tp 2 --cp 2 --model PATH

`dp * tp * cp` must be the number of processes. On the CPU it runs with gloo; on GPUs with NCCL, one
device per process, unchanged. Without `--model` it trains a tiny random Llama (nothing is downloaded).

The flow: process group (`init_distributed`; `close_distributed` frees it at the end) -> `DeviceMesh`
(dp, tp, cp) -> the model, loaded with `tp_plan="auto"` on the `tp` mesh when tp > 1 -> FSDP2 over dp x
cp -> a `DistributedSampler` over dp -> each step: the batch's sequences split over cp
(`ContextParallel`), forward / backward, gradients reduced by FSDP (summed over cp, averaged over dp),
clipped (DTensor-safe), optimizer step -> a distributed checkpoint of model and optimizer, loaded back
into a freshly sharded model.

Sanity checks (the script exits non-zero when one fails): the first step's loss equals the loss of an
unsharded copy of the model on the whole global batch; the loss goes down; the checkpoint reloads to
the same weights and optimizer state and the same loss.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.utils.data import DataLoader, DistributedSampler

from pretrained.distributed import checkpoint
from pretrained.distributed.clipping import clip_grad_norm_
from pretrained.distributed.context_parallel import ContextParallel
from pretrained.distributed.fsdp import apply_fsdp
from pretrained.distributed.mesh import close_distributed, init_distributed
from pretrained.models.llama import LlamaConfig, LlamaForCausalLM


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dp", type=int, default=1, help="data-parallel ranks (FSDP2)")
    parser.add_argument("--tp", type=int, default=1, help="tensor-parallel ranks")
    parser.add_argument("--cp", type=int, default=1, help="context-parallel ranks")
    parser.add_argument("--model", help="a causal LM folder (default: a tiny random Llama)")
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=2, help="sequences per dp rank and step")
    parser.add_argument("--seq-len", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument(
        "--checkpoint-dir", help="where the distributed checkpoint goes (default: a temp folder)"
    )
    return parser.parse_args()


def tiny_model_folder() -> str:
    """A tiny random Llama saved to a folder of this process (same weights on every rank: same seed)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=128, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)  # fmt: skip
    folder = tempfile.mkdtemp(prefix="tiny-llama-")
    LlamaForCausalLM(config).save_pretrained(folder)
    return folder


def load_model(folder: str, mesh, tp: int, device: torch.device) -> LlamaForCausalLM:
    """The model for training: tensor-parallel on the `tp` dimension when tp > 1, then FSDP2 over dp x cp."""
    if tp > 1:
        model = LlamaForCausalLM.from_pretrained(
            folder, device_mesh=mesh["tp"], tp_plan="auto", dtype=torch.float32
        )
    else:
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device)
    model.train()
    if mesh["dp"].size() * mesh["cp"].size() > 1:
        apply_fsdp(model, mesh)  # over dp and cp flattened; cp gradients summed, dp averaged
    return model


def token_rows(vocab_size: int, count: int, seq_len: int) -> torch.Tensor:
    # a learnable pattern: each row counts up from a random start, so the loss must go down
    g = torch.Generator().manual_seed(42)
    starts = torch.randint(0, vocab_size, (count, 1), generator=g)
    return (starts + torch.arange(seq_len)) % vocab_size


def step_loss(model, batch: dict, context: ContextParallel | None) -> torch.Tensor:
    """Forward and backward of this rank's part; returns the loss of the rank's dp batch."""
    if context is None:
        loss = model(**batch).loss
        loss.backward()
        return loss.detach()
    with context.run(model, batch) as local:
        loss = model(**local).loss  # this rank's share of the batch's loss
        loss.backward()
    loss = loss.detach().clone()
    dist.all_reduce(loss, group=context.group)  # the shares add up to the batch's loss
    return loss


def main() -> int:
    args = parse_args()
    init_distributed()  # gloo on the CPU, NCCL on GPUs
    try:
        return run(args)
    finally:
        # after run() returned, so that the model and meshes holding the group are gone with it
        close_distributed()


def run(args: argparse.Namespace) -> int:
    """Build the mesh and the model folder, then train_and_check; 1 when a sanity check failed."""
    cuda = torch.cuda.is_available()
    world = dist.get_world_size()
    if args.dp * args.tp * args.cp != world:
        raise SystemExit(f"dp * tp * cp = {args.dp * args.tp * args.cp}, but {world} processes were started")
    device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0))) if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    mesh = init_device_mesh(device.type, (args.dp, args.tp, args.cp), mesh_dim_names=("dp", "tp", "cp"))

    folder = args.model or tiny_model_folder()
    try:
        return train_and_check(args, mesh, device, folder)
    finally:
        if not args.model:  # this process's own random model
            shutil.rmtree(folder, ignore_errors=True)


def train_and_check(args: argparse.Namespace, mesh, device: torch.device, folder: str) -> int:
    """Train, compare with the unsharded model, checkpoint and reload; 1 when a sanity check failed."""
    rank = dist.get_rank()
    dp_rank = mesh["dp"].get_local_rank()
    checks: list[tuple[str, bool]] = []
    model = load_model(folder, mesh, args.tp, device)
    reference = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32).to(device)  # unsharded copy
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr)
    context = ContextParallel(mesh) if args.cp > 1 else None

    rows = token_rows(model.config.vocab_size, 64 * args.dp, args.seq_len)
    dataset = [{"input_ids": r, "labels": r} for r in rows]
    # every tp and cp rank of a dp group reads the same batches; dp ranks read different ones
    sampler = DistributedSampler(dataset, num_replicas=args.dp, rank=dp_rank, shuffle=True, seed=42)
    loader = DataLoader(dataset, batch_size=args.batch_size, sampler=sampler, drop_last=True)
    sampler.set_epoch(0)

    losses = []
    for step, batch in zip(range(args.steps), loader):
        batch = {k: v.to(device) for k, v in batch.items()}
        loss = step_loss(model, batch, context)
        dist.all_reduce(loss, group=mesh["dp"].get_group())
        loss /= args.dp  # the global batch's loss: the mean over dp
        if step == 0:  # the same global batch through the unsharded copy
            global_ids = [torch.empty_like(batch["input_ids"]) for _ in range(args.dp)]
            dist.all_gather(global_ids, batch["input_ids"], group=mesh["dp"].get_group())
            ids = torch.cat(global_ids)
            with torch.no_grad():
                expected = reference(input_ids=ids, labels=ids).loss
            checks.append(
                ("first loss equals the unsharded model's", abs(loss.item() - expected.item()) < 1e-4)
            )
        grad_norm = clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
        if rank == 0:
            print(f"step {step}: loss {loss.item():.5f}  grad norm {grad_norm.item():.4f}", flush=True)
    checks.append(("loss went down", losses[-1] < losses[0]))

    # distributed checkpoint: saved by every rank, loaded into a freshly sharded model
    path = args.checkpoint_dir or os.path.join(
        tempfile.gettempdir(), f"3d-parallel-{os.environ.get('TORCHELASTIC_RUN_ID', 'run')}"
    )
    checkpoint.save(path, model, optimizer)
    fresh = load_model(folder, mesh, args.tp, device)
    fresh_optimizer = torch.optim.AdamW(fresh.parameters(), lr=args.lr)
    checkpoint.load(path, fresh, fresh_optimizer)
    same_weights = all(
        torch.equal(_full(a), _full(b))
        for a, b in zip(model.state_dict().values(), fresh.state_dict().values())
    )
    checks.append(("checkpoint reloads the same weights", same_weights))
    states = zip(optimizer.state.values(), fresh_optimizer.state.values())
    same_moments = all(torch.equal(_full(a["exp_avg"]), _full(b["exp_avg"])) for a, b in states)
    checks.append(("checkpoint reloads the same optimizer state", same_moments))

    failed = [name for name, ok in checks if not ok]
    if rank == 0:
        for name, ok in checks:
            print(f"{'ok  ' if ok else 'FAIL'} {name}")
    dist.barrier()  # every rank is done with the checkpoint
    if not args.checkpoint_dir and rank == 0:
        shutil.rmtree(path, ignore_errors=True)
    return 1 if failed else 0


def _full(tensor: torch.Tensor) -> torch.Tensor:
    return tensor.full_tensor() if hasattr(tensor, "full_tensor") else tensor


if __name__ == "__main__":
    sys.exit(main())
