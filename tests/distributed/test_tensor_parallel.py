"""Tensor parallelism on two CPU processes (gloo), against one process and against transformers.

Each architecture's checkpoint (written by transformers) is loaded once under
``torchrun --standalone --nproc-per-node 2 tp_worker.py`` with ``tp_plan="auto"``; the worker records
logits, generated tokens, two AdamW training steps, a ``save_pretrained`` folder and the parameter bytes of
its rank, and the tests here compare them with the same work done by one process.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
import transformers as T
from dist_helpers import torchrun as run_script

import pretrained as P

HERE = Path(__file__).parent
WORKER = HERE / "tp_worker.py"
ROOT = Path(P.__file__).resolve().parent.parent  # the pretrained under test, for the workers too
ARCHS = ("llama", "qwen3", "gpt2")


def _load_worker():
    spec = importlib.util.spec_from_file_location("tp_worker", WORKER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


worker = _load_worker()


def torchrun(*args: str) -> None:
    """Run the worker on two processes (see ``dist_helpers.torchrun``)."""
    run_script(str(WORKER), *args, timeout=240)


def tiny(arch: str) -> T.PreTrainedModel:
    """A tiny transformers model of ``arch`` with random biases (they start at zero, where a bias added once
    per rank instead of once would not show)."""
    model = _tiny(arch)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("bias"):
                param.normal_(0.0, 0.5)
    return model


def _tiny(arch: str) -> T.PreTrainedModel:
    torch.manual_seed(0)
    if arch == "llama":  # untied head, biases on every projection (colwise: cut; rowwise: added once)
        return T.LlamaForCausalLM(T.LlamaConfig(
            vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=False, attention_bias=True,
            mlp_bias=True))
    if arch == "qwen3":  # tied head, per-head q/k norms, odd MLP width (uneven shards: 21 + 20)
        return T.Qwen3ForCausalLM(T.Qwen3Config(
            vocab_size=64, hidden_size=32, intermediate_size=41, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, head_dim=8, max_position_embeddings=64, tie_word_embeddings=True))
    return T.GPT2LMHeadModel(T.GPT2Config(  # Conv1D, fused q|k|v, tied head, odd vocabulary, no dropout
        vocab_size=63, n_embd=32, n_layer=2, n_head=4, n_positions=32, resid_pdrop=0.0, embd_pdrop=0.0,
        attn_pdrop=0.0, bos_token_id=0, eos_token_id=0))


@pytest.fixture(scope="module", params=ARCHS)
def run(request, tmp_path_factory):
    """``(checkpoint folder, worker output folder, worker results)`` for one architecture (``results["arch"]``)."""
    base = tmp_path_factory.mktemp(request.param)
    checkpoint, out = base / "checkpoint", base / "out"
    out.mkdir()
    tiny(request.param).save_pretrained(checkpoint)
    torchrun(str(checkpoint), str(out))
    results = torch.load(out / "results.pt", weights_only=False)
    results["arch"] = request.param
    return checkpoint, out, results


@pytest.fixture(scope="module")
def single(run):
    checkpoint, _, _ = run
    torch.manual_seed(0)
    return P.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)


def test_sharded_as_planned(run):
    _, _, results = run
    assert results["tp_size"] == 2 and results["mesh_size"] == 2
    assert results["distributed_config"]["tp_size"] == 2 and results["distributed_config"]["tp_plan"] == "auto"
    assert "distributed_config" not in (run[1] / "saved" / "config.json").read_text()
    assert results["tied"] == (results["arch"] != "llama")  # one DTensor for both names
    sharded = results["dtensors"]
    assert any(name.endswith("mlp.down_proj.weight") or name.endswith("mlp.c_proj.weight") for name in sharded)
    assert any("embed_tokens" in name or "wte" in name for name in sharded)


def test_parameter_bytes_per_rank(run):
    local, full = run[2]["param_bytes"]
    assert local <= 0.55 * full, (local, full)


def test_logits_equal_single_process(run, single):
    _, _, results = run
    ids, mask = worker.batch(single.config.vocab_size)
    with torch.no_grad():
        expected = single(input_ids=ids, attention_mask=mask).logits
    assert results["logits_same_on_ranks"]
    torch.testing.assert_close(results["logits"], expected, rtol=0, atol=1e-5)


def test_generate_identical_tokens(run, single):
    _, _, results = run
    ids, _ = worker.batch(single.config.vocab_size)
    expected = single.generate(ids[:1, :5], max_new_tokens=8, do_sample=False)
    assert results["generated_same_on_ranks"]
    assert torch.equal(results["generated"], expected)
    assert torch.equal(results["generated_static"], expected)


@pytest.mark.parametrize("optimizer", ["adamw", "sgd"])
def test_training_steps_equal_single_process(run, optimizer):
    checkpoint, _, results = run
    torch.manual_seed(0)
    model = P.AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    sgd = optimizer == "sgd"
    losses = worker.train_steps(model, steps=1 if sgd else 2, sgd=sgd)
    assert results["sgd_losses" if sgd else "losses"] == pytest.approx(losses, abs=1e-5)
    trained = results["trained_sgd" if sgd else "trained"]
    state = model.state_dict()
    assert set(trained) == set(state)
    for name, tensor in state.items():
        torch.testing.assert_close(trained[name], tensor, rtol=0, atol=1e-5, msg=name)
    assert any(not torch.equal(trained[name], tensor) for name, tensor in
               P.AutoModelForCausalLM.from_pretrained(checkpoint).state_dict().items())  # it did train


def test_save_under_tp_loads_in_transformers(run, single):
    _, out, _ = run
    ids, mask = worker.batch(single.config.vocab_size)
    with torch.no_grad():
        expected = single(input_ids=ids, attention_mask=mask).logits
        theirs = T.AutoModelForCausalLM.from_pretrained(out / "saved")(input_ids=ids, attention_mask=mask).logits
        ours = P.AutoModelForCausalLM.from_pretrained(out / "saved")(input_ids=ids, attention_mask=mask).logits
    torch.testing.assert_close(theirs, expected, rtol=0, atol=1e-5)
    torch.testing.assert_close(ours, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["llama", "mistral", "qwen2", "qwen3"])
def test_tp_plan_is_transformers(family, tmp_path):
    config = T.AutoConfig.for_model(
        family, vocab_size=64, hidden_size=32, intermediate_size=40, num_hidden_layers=1, num_attention_heads=4,
        num_key_value_heads=2, head_dim=8)
    theirs = T.AutoModelForCausalLM.from_config(config)
    theirs.save_pretrained(tmp_path)
    ours = P.AutoModelForCausalLM.from_pretrained(tmp_path)
    assert ours.tp_plan == theirs.tp_plan
    assert ours.supports_tp_plan and theirs.supports_tp_plan
    assert ours.tp_size is None and ours.device_mesh is None


def test_encoders_declare_no_plan(tmp_path):
    torch.manual_seed(0)
    T.BertModel(T.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                             intermediate_size=37)).save_pretrained(tmp_path)
    model = P.BertModel.from_pretrained(tmp_path)
    assert model.tp_plan == {} and not model.supports_tp_plan


def test_tp_plan_without_process_group_is_refused(tmp_path):
    tiny("llama").save_pretrained(tmp_path)
    with pytest.raises(ValueError, match="needs torch.distributed: launch with torchrun"):
        P.AutoModelForCausalLM.from_pretrained(tmp_path, tp_plan="auto")
    with pytest.raises(ValueError, match="needs torch.distributed"):
        P.AutoModelForCausalLM.from_pretrained(tmp_path, tp_size=2)
    # No sharding asked for: an ordinary load.
    assert P.AutoModelForCausalLM.from_pretrained(tmp_path, distributed_config=P.DistributedConfig()).tp_size is None


@pytest.fixture(scope="module")
def llama_files(tmp_path_factory):
    """A tiny Llama (4 heads, 2 key/value heads) as safetensors, as ``pytorch_model.bin``, its base model,
    and a BERT: ``(checkpoint, out)`` with the others in ``out``."""
    tmp_path = tmp_path_factory.mktemp("llama_files")
    checkpoint, out = tmp_path / "llama", tmp_path / "out"
    out.mkdir()
    model = tiny("llama")
    model.save_pretrained(checkpoint)
    model.model.save_pretrained(out / "base")
    model.config.save_pretrained(out / "bin")  # transformers 5 writes only safetensors
    torch.save(model.state_dict(), out / "bin" / "pytorch_model.bin")
    T.BertModel(T.BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                             intermediate_size=37)).save_pretrained(out / "bert")
    return checkpoint, out


def test_errors(llama_files):
    checkpoint, out = llama_files
    torchrun("--errors", str(checkpoint), str(out))
    messages = torch.load(out / "errors.pt", weights_only=False)["messages"]
    assert "num_attention_heads (4)" in messages["heads"] and "num_key_value_heads (1)" in messages["heads"]
    assert "multiples of 2" in messages["heads"]
    assert "Unknown tensor-parallel strategy 'bogus'" in messages["strategy"]
    assert "'sequence_parallel' is not supported" in messages["unsupported"]
    assert "not parameters: ['model.layers.*.mlp.gate_proj.weight']" in messages["parameter"]
    assert "tp_plan keys ['model.layers.*.mlp.nope'] match nothing" in messages["nothing"]
    assert "tp_size=3 needs 3 processes" in messages["size"]
    assert "either distributed_config or tp_plan" in messages["both"]
    assert "tp_plan and device_map are mutually exclusive" in messages["device_map"]
    assert messages["fsdp"].startswith("NotImplementedError: DistributedConfig(fsdp_size=2)")
    assert "BertModel declares no tensor-parallel plan" in messages["encoder"]


def test_other_ways_to_ask_and_missing_weights(llama_files):
    checkpoint, out = llama_files
    torchrun("--ways", str(checkpoint), str(out))
    results = torch.load(out / "results.pt", weights_only=False)
    messages = results["messages"]
    assert results["meshes"] == {"tp": (("dp", "cp", "tp"), (1, 1, 2)), "dp": (("dp", "cp", "tp"), (2, 1, 1)),
                                 "default": (2, 1, 1)}
    assert "does not split into cp=1 x tp=3" in messages["mesh"]
    assert messages["compiled"].startswith("NotImplementedError: A compiled decode step of a tensor-parallel")
    assert results["classifier_same"] and results["missing_head_same"]
    assert results["missing_head"].shape == (64, 32) and results["missing_head"].std() > 0
    single = P.AutoModelForCausalLM.from_pretrained(checkpoint)
    ids, mask = worker.batch(64)
    with torch.no_grad():
        expected = single(input_ids=ids, attention_mask=mask).logits
    for way in ("device_mesh", "tp_size", "distributed_config", "bin"):
        assert results["logits"][way + "_size"] == 2
        torch.testing.assert_close(results["logits"][way], expected, rtol=0, atol=1e-5)
    # A distributed checkpoint saved from tp=2 (after a step) loads into one plain process.
    import torch.distributed.checkpoint as dcp

    state = single.state_dict()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "assuming the intent is to load in a single process"
        dcp.load({"model": state}, checkpoint_id=str(out / "dcp"))
    assert set(state) == set(results["dcp_full"])
    for name, tensor in state.items():
        assert torch.equal(tensor, results["dcp_full"][name]), name


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.int64])
def test_safetensors_slices_read_with_pread(tmp_path, dtype):
    from safetensors.torch import save_file

    from pretrained.loading.checkpoint import read_safetensors_slice

    full = (torch.randn(5, 6, 7) * 100).to(dtype)
    save_file({"other": torch.ones(3), "x": full}, tmp_path / "w.safetensors")
    for dim in range(3):
        for start, stop in ((0, 2), (1, 4), (2, 5), (3, 3)):
            part = read_safetensors_slice(str(tmp_path / "w.safetensors"), "x", dim, start, stop)
            assert part.dtype == dtype and torch.equal(part, full.narrow(dim, start, stop - start))
    with pytest.raises(ValueError, match=r"\[4:7\] is outside dimension 0"):
        read_safetensors_slice(str(tmp_path / "w.safetensors"), "x", 0, 4, 7)


def test_distributed_env():
    from pretrained.distributed.mesh import DistributedEnv

    env = DistributedEnv.from_environ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
                                       "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"})
    assert (env.rank, env.world_size, env.local_rank, env.local_world_size) == (3, 4, 1, 2)
    assert env.launched and env.master_addr == "10.0.0.1" and env.master_port == 29500
    assert not DistributedEnv.from_environ({}).launched
    with pytest.raises(ValueError, match="RANK=4 and WORLD_SIZE=4"):
        DistributedEnv.from_environ({"RANK": "4", "WORLD_SIZE": "4"})
    with pytest.raises(ValueError, match="LOCAL_RANK='x' is not an integer"):
        DistributedEnv.from_environ({"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "x"})


def test_distributed_config_sizes(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert P.DistributedConfig(tp_plan="auto").tp_size == 4
    assert P.DistributedConfig(tp_plan="auto", fsdp_size=2).tp_size == 2
    assert P.DistributedConfig().tp_size == 1
    config = P.DistributedConfig.from_dict({"tp_size": 2, "unknown": 1})
    assert config.to_dict()["tp_size"] == 2 and config.dp_size == 1
    with pytest.raises(ValueError, match="tp_size must be an integer of at least 1"):
        P.DistributedConfig(tp_size=0)
    with pytest.raises(ValueError, match="not a multiple of"):
        P.DistributedConfig(tp_plan="auto", fsdp_size=3)


def test_peak_memory_while_loading(tmp_path):
    """Peak RSS over ``from_pretrained``, reading every weight once and a first forward, less the RSS just
    before, for a 268 MB fp32 checkpoint: one process (whose weights stay in the file's memory map until
    used) against one rank of two (which reads only its slices). The baselines exclude the interpreter, torch and, under TP, the
    process group and DTensor's first use (see ``tp_worker.run_memory``)."""
    torch.manual_seed(0)
    config = T.LlamaConfig(vocab_size=4096, hidden_size=2048, intermediate_size=2048, num_hidden_layers=2,
                           num_attention_heads=16, num_key_value_heads=8, tie_word_embeddings=False)
    T.LlamaForCausalLM(config).save_pretrained(tmp_path / "big")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    subprocess.run([sys.executable, str(WORKER), "--memory-single", str(tmp_path / "big"), str(tmp_path)],
                   env=env, check=True, capture_output=True, timeout=240)
    torchrun("--memory", str(tmp_path / "big"), str(tmp_path))
    single = torch.load(tmp_path / "memory_single.pt")
    sharded = torch.load(tmp_path / "memory_tp.pt")
    grown_single = single["peak_kib"] - single["baseline_kib"]
    grown_sharded = sharded["peak_kib"] - sharded["baseline_kib"]
    print(f"peak RSS growth: one process {grown_single} KiB, one rank of two {grown_sharded} KiB "
          f"({grown_sharded / grown_single:.0%})")
    assert grown_single > 200_000  # the weights did become resident
    assert grown_sharded <= 0.6 * grown_single
