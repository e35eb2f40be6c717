"""One-process pieces of the distributed training: FSDP arguments, the sampler's dealing, precision."""

import pytest
import torch

from pretrained import TrainingArguments
from pretrained.distributed.fsdp import mixed_precision_policy
from pretrained.training.distributed import FSDPSettings, fsdp_settings
from pretrained.training.sampling import EpochSampler


def test_fsdp_arguments_as_transformers_spells_them():
    assert fsdp_settings(None, None) is None
    assert fsdp_settings(True, None) == FSDPSettings()
    assert fsdp_settings("full_shard auto_wrap", None) == FSDPSettings()
    assert fsdp_settings(["shard_grad_op", "offload"], None) == FSDPSettings(
        reshard_after_forward=False, cpu_offload=True
    )
    config = {"fsdp_transformer_layer_cls_to_wrap": "LlamaDecoderLayer", "reshard_after_forward": "false",
              "activation_checkpointing": "true", "version": 2}  # fmt: skip
    assert fsdp_settings(True, config) == FSDPSettings(False, False, ("LlamaDecoderLayer",), True)


@pytest.mark.parametrize(
    ("fsdp", "config", "message"),
    [
        ("hybrid_shard", None, "hybrid_shard"),
        (True, {"version": 1}, "FSDP2"),
        (True, {"min_num_params": 1000}, "min_num_params"),
        (True, {"no_such_key": 1}, "no_such_key"),
        (None, {"version": 2}, "fsdp` is off"),
        (True, "/no/such/file.json", "no/such/file.json"),
    ],
)
def test_fsdp_arguments_refused_by_name(fsdp, config, message):
    with pytest.raises(ValueError, match=message):
        TrainingArguments(output_dir="o", fsdp=fsdp, fsdp_config=config)


def test_batches_dealt_out_like_one_process_with_the_global_batch():
    # two processes with batch 2 see, step by step, the batch of 4 one process sees
    one = list(EpochSampler(10, seed=3, batch_size=4))
    ranks = [list(EpochSampler(10, seed=3, batch_size=2, num_replicas=2, rank=r)) for r in range(2)]
    assert len(ranks[0]) == len(ranks[1]) == len(EpochSampler(10, batch_size=2, num_replicas=2)) == 6
    padded = one + one[:2]  # extended with its own beginning to whole global batches
    for step in range(3):
        global_batch = ranks[0][2 * step : 2 * step + 2] + ranks[1][2 * step : 2 * step + 2]
        assert global_batch == padded[4 * step : 4 * step + 4]
    with pytest.raises(ValueError, match="rank 2"):
        EpochSampler(10, num_replicas=2, rank=2)


def test_mixed_precision_policy_from_names():
    policy = mixed_precision_policy("bf16")
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.bfloat16, torch.float32)
    policy = mixed_precision_policy({"param_dtype": "float16", "reduce_dtype": "fp32"})
    assert (policy.param_dtype, policy.reduce_dtype) == (torch.float16, torch.float32)
    assert mixed_precision_policy(None) is None
    with pytest.raises(ValueError, match="int8"):
        mixed_precision_policy("int8")
