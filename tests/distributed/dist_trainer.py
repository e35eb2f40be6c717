"""`Trainer` under torchrun (or alone, as the reference): a tiny Llama on fixed token rows.

`python dist_trainer.py OUT_DIR BATCH [ddp|fsdp] [max_steps] [resume]` trains with `BATCH` examples per
device and writes the log history of the main process to OUT_DIR/log_history.json.
"""

import atexit
import json
import os
import sys

import torch

from pretrained import Trainer, TrainingArguments
from pretrained.models.llama import LlamaConfig, LlamaForCausalLM

VOCAB, SEQ, ROWS = 64, 8, 16


def rows():
    g = torch.Generator().manual_seed(3)
    ids = torch.randint(0, VOCAB, (ROWS, SEQ), generator=g)
    return [{"input_ids": r, "labels": r.clone()} for r in ids]


def model_init():
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)  # fmt: skip
    return LlamaForCausalLM(config)


def tensor_parallel(model):
    """Llama's attention and MLP split over all the processes (torch's own TP styles), as a model loaded
    with `tp_plan` is: the Trainer sees DTensor weights and `tp_size`."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor.parallel import ColwiseParallel, RowwiseParallel, parallelize_module

    from pretrained.distributed.mesh import init_distributed

    init_distributed("cpu")  # closed at exit
    mesh = init_device_mesh("cpu", (dist.get_world_size(),), mesh_dim_names=("tp",))
    plan = {f"self_attn.{p}": ColwiseParallel() for p in ("q_proj", "k_proj", "v_proj")}
    plan.update({f"mlp.{p}": ColwiseParallel() for p in ("gate_proj", "up_proj")})
    plan.update({"self_attn.o_proj": RowwiseParallel(), "mlp.down_proj": RowwiseParallel()})
    for layer in model.model.layers:
        parallelize_module(layer, mesh, plan)
    model._tp_size = mesh.size()
    return model


def main(out_dir, batch, mode="ddp", max_steps="4", resume=""):
    torch.set_num_threads(1)
    args = TrainingArguments(
        output_dir=out_dir,
        per_device_train_batch_size=int(batch),
        gradient_accumulation_steps=2 if mode == "ddp_accumulate" else 1,
        max_steps=int(max_steps),
        learning_rate=1e-2,
        logging_steps=1,
        save_strategy="steps",
        save_steps=2,
        eval_strategy="steps",
        eval_steps=2,
        per_device_eval_batch_size=4,
        optim="adamw_torch",
        max_grad_norm=0.5,
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        seed=11,
        fsdp="full_shard" if mode == "fsdp" else None,
    )
    model = tensor_parallel(model_init()) if mode == "tp" else model_init()
    trainer = Trainer(model=model, args=args, train_dataset=rows(), eval_dataset=rows()[:6])
    trainer.train(resume_from_checkpoint=resume or None)
    if args.should_save:
        with open(os.path.join(out_dir, "log_history.json"), "w") as f:
            json.dump(trainer.state.log_history, f)


if __name__ == "__main__":
    from backend_threads import check_backend_threads_gone

    # atexit runs its handlers last first: this one after the close registered when the group started
    atexit.register(check_backend_threads_gone)
    main(*sys.argv[1:])
