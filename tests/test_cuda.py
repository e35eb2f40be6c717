"""GPU checks: loading, device maps, generation, training and pipelines on CUDA, compared with the CPU.

Every check runs the same thing on the accelerator and on the CPU and compares results (fp32 within
1e-4 with TF32 off, half precision within a loose bound, generated tokens exactly). Skipped without
CUDA. ``PRETRAINED_TEST_DEVICE=cpu`` runs the same bodies with the CPU standing in for the GPU (the
tests that split a model over two devices are skipped then), which checks the tests' own logic on a
machine without a GPU. The torch.compile test is marked ``slow`` (deselect with ``-m "not slow"``).

Run on a GPU machine: ``PYTHONPATH=. python -m pytest -q -p no:xdist tests/test_cuda.py``.
"""

from __future__ import annotations

import math
import os
import sys

import pytest
import torch

DEVICE = os.environ.get("PRETRAINED_TEST_DEVICE", "cuda")
ON_CUDA = DEVICE.startswith("cuda")
# The device as device_map / pipeline(device=...) index forms spell it.
DEVICE_INDEX = 0 if ON_CUDA else "cpu"
PIPELINE_DEVICE = 0 if ON_CUDA else -1

pytestmark = pytest.mark.skipif(
    ON_CUDA and not torch.cuda.is_available(), reason="needs CUDA (or PRETRAINED_TEST_DEVICE=cpu)"
)
needs_accelerator = pytest.mark.skipif(
    not ON_CUDA, reason="splitting a model over devices needs an accelerator besides the CPU"
)

VOCAB = 64
PAD, BOS, EOS = 0, 1, 3
KINDS = ["llama", "gpt2", "bert"]
DECODERS = ["llama", "gpt2"]


def _on_device(t: torch.Tensor) -> bool:
    return t.device.type == torch.device(DEVICE).type


@pytest.fixture(autouse=True)
def _exact_fp32():
    """fp32 matmuls and convolutions in full precision (no TF32), so CUDA matches the CPU to ~1e-6."""
    if not torch.cuda.is_available():
        yield
        return
    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


# ---------------------------------------------------------------------------------------------------
# tiny models, saved by transformers (the realistic source of a checkpoint folder)


def _save(kind: str, path) -> str:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    special = dict(pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS)
    if kind == "llama":
        config = transformers.LlamaConfig(
            vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
            num_key_value_heads=2, max_position_embeddings=64, **special,
        )  # fmt: skip
        model = transformers.LlamaForCausalLM(config)
    elif kind == "gpt2":
        config = transformers.GPT2Config(vocab_size=VOCAB, n_positions=64, n_embd=32, n_layer=2, n_head=4, **special)
        model = transformers.GPT2LMHeadModel(config)  # lm_head tied to wte
    else:
        config = transformers.BertConfig(
            vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
            max_position_embeddings=64, pad_token_id=PAD,
        )  # fmt: skip
        model = transformers.BertForMaskedLM(config)  # decoder tied to the word embeddings, bias aliased
    model.eval()
    with torch.no_grad():
        head = model.get_output_embeddings().weight
        if head is not model.get_input_embeddings().weight:
            head.mul_(8)  # random tiny models are nearly uniform: sharpen so greedy/beam choices are clear
    model.save_pretrained(path)
    return str(path)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    return {kind: _save(kind, tmp_path_factory.mktemp(kind)) for kind in KINDS}


def _load(kind: str, folder: str, **kwargs):
    from pretrained import AutoModelForCausalLM, AutoModelForMaskedLM

    cls = AutoModelForMaskedLM if kind == "bert" else AutoModelForCausalLM
    return cls.from_pretrained(folder, **kwargs)


@pytest.fixture(scope="module")
def cpu_models(folders):
    """The reference: each model loaded on the CPU in fp32."""
    return {kind: _load(kind, folders[kind]) for kind in KINDS}


def _batch(kind: str):
    """A batch of 2 with padding on row 0: left for decoders, right for BERT."""
    ids = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    if kind == "bert":
        ids[0, -3:], mask[0, -3:] = PAD, 0
    else:
        ids[0, :3], mask[0, :3] = PAD, 0
    return ids, mask


def _logits(model, kind: str, device=None) -> torch.Tensor:
    """fp32 CPU logits of the non-padding positions of ``_batch(kind)``, inputs sent to ``device``."""
    ids, mask = _batch(kind)
    device = device if device is not None else model.device
    inputs = {"input_ids": ids.to(device), "attention_mask": mask.to(device)}
    if kind == "bert":
        inputs["token_type_ids"] = torch.tensor([[0] * 4 + [1] * 3] * 2, device=device)
    with torch.no_grad():
        logits = model(**inputs).logits
    return logits.float().cpu()[mask.bool()]


def _assert_all_on(model, device_type: str) -> None:
    for name, t in [*model.named_parameters(), *model.named_buffers()]:
        assert t.device.type == device_type, f"{name} is on {t.device}, expected {device_type}"


def _gen_inputs():
    ids = torch.randint(4, VOCAB, (2, 7), generator=torch.Generator().manual_seed(2))
    mask = torch.ones_like(ids)
    ids[0, :3], mask[0, :3] = PAD, 0  # left padding
    return ids, mask


def _generate(model, **kwargs) -> torch.Tensor:
    ids, mask = _gen_inputs()
    out = model.generate(ids.to(model.device), attention_mask=mask.to(model.device), **kwargs)
    return out


GREEDY = dict(max_new_tokens=16, do_sample=False)
BEAM = dict(max_new_tokens=10, num_beams=3, num_return_sequences=2, do_sample=False)


# ---------------------------------------------------------------------------------------------------
# 1. loading straight onto the GPU


@pytest.mark.parametrize("form", ["string", "index_dict", "device"])
@pytest.mark.parametrize("kind", KINDS)
def test_device_map_single_device_matches_cpu(folders, cpu_models, kind, form):
    device_map = {"string": DEVICE, "index_dict": {"": DEVICE_INDEX}, "device": torch.device(DEVICE)}[form]
    model = _load(kind, folders[kind], device_map=device_map)
    _assert_all_on(model, torch.device(DEVICE).type)
    assert model.device.type == torch.device(DEVICE).type
    assert model.dtype == torch.float32
    assert set(model.hf_device_map) == {""}
    got, want = _logits(model, kind), _logits(cpu_models[kind], kind)
    torch.testing.assert_close(got, want, atol=1e-4, rtol=1e-4)
    if kind != "llama":  # the tied output embedding is still the input embedding on the GPU
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("kind", KINDS)
def test_half_precision_load_on_device(folders, cpu_models, kind, dtype):
    model = _load(kind, folders[kind], device_map=DEVICE, dtype=dtype)
    _assert_all_on(model, torch.device(DEVICE).type)
    assert model.dtype == dtype
    keep = tuple(model._keep_in_fp32_modules)
    for name, p in model.named_parameters():
        if not any(part in keep for part in name.split(".")):
            assert p.dtype == dtype, name
    ids, mask = _batch(kind)
    with torch.no_grad():
        raw = model(input_ids=ids.to(model.device), attention_mask=mask.to(model.device)).logits
    assert raw.dtype == dtype and _on_device(raw)
    got = raw.float().cpu()[mask.bool()]
    # BERT without token types here: compare against the same call in fp32 on the CPU
    with torch.no_grad():
        want = cpu_models[kind](input_ids=ids, attention_mask=mask).logits[mask.bool()]
    assert torch.isfinite(got).all()
    err = (got - want).abs().max().item()
    assert err <= 0.05 * want.abs().max().item() + 1e-3, f"{dtype} logits differ from fp32 by {err}"
    # and the argmax mostly agrees (random tiny models have near ties, so not all of it)
    assert (got.argmax(-1) == want.argmax(-1)).float().mean() >= 0.8


@pytest.mark.parametrize("kind", DECODERS)
def test_model_to_device_after_cpu_inference(folders, cpu_models, kind):
    """Users load on the CPU, try it, then ``.to("cuda")``: fused q/k/v weights must follow the move."""
    model = _load(kind, folders[kind])
    before = _logits(model, kind)  # first inference call fuses the projections on the CPU
    model.to(DEVICE)
    _assert_all_on(model, torch.device(DEVICE).type)
    torch.testing.assert_close(_logits(model, kind), before, atol=1e-4, rtol=1e-4)
    assert torch.equal(_generate(model, **GREEDY).cpu(), _generate(cpu_models[kind], **GREEDY))
    model.to("cpu")  # and back
    torch.testing.assert_close(_logits(model, kind), before, atol=1e-5, rtol=1e-5)


# ---------------------------------------------------------------------------------------------------
# 2. device_map="auto" split between the GPU and the CPU


def _split_budget(cpu_model, kind: str) -> int:
    """Bytes that hold the embeddings and the first block, but not the second block."""
    from pretrained.loading.device_map import _size

    if kind == "llama":
        parts = [cpu_model.model.embed_tokens, cpu_model.model.layers[0]]
    elif kind == "gpt2":
        parts = [cpu_model.transformer.wte, cpu_model.transformer.wpe, cpu_model.transformer.h[0]]
    else:
        parts = [cpu_model.bert.embeddings, cpu_model.bert.encoder.layer[0]]
    return sum(_size(m, torch.float32) for m in parts) + 256


@needs_accelerator
@pytest.mark.parametrize("kind", KINDS)
def test_auto_device_map_split_between_gpu_and_cpu(folders, cpu_models, kind):
    from pretrained.loading.device_map import device_lookup

    budget = _split_budget(cpu_models[kind], kind)
    model = _load(kind, folders[kind], device_map="auto", max_memory={0: budget, "cpu": 10**10})
    mapping = model.hf_device_map
    assert set(mapping.values()) == {"cuda:0", "cpu"}, mapping
    # every weight sits where the map says, and both devices really hold weights
    lookup = device_lookup({k: torch.device(v) for k, v in mapping.items()})
    devices = set()
    for name, p in model.named_parameters():
        assert p.device == lookup(name), (name, p.device, lookup(name), mapping)
        devices.add(p.device.type)
    assert devices == {"cuda", "cpu"}
    first = {"llama": "model.layers.0.mlp.up_proj.weight", "gpt2": "transformer.h.0.mlp.c_fc.weight",
             "bert": "bert.encoder.layer.0.output.dense.weight"}[kind]
    last = {"llama": "model.layers.1.mlp.up_proj.weight", "gpt2": "transformer.h.1.mlp.c_fc.weight",
            "bert": "bert.encoder.layer.1.output.dense.weight"}[kind]
    assert model.get_parameter(first).device.type == "cuda"
    assert model.get_parameter(last).device.type == "cpu"
    if kind != "llama":  # tied weights stay one tensor
        assert model.get_output_embeddings().weight is model.get_input_embeddings().weight
    # inputs may start on either device: hooks move them
    want = _logits(cpu_models[kind], kind)
    torch.testing.assert_close(_logits(model, kind, device="cuda:0"), want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(_logits(model, kind, device="cpu"), want, atol=1e-4, rtol=1e-4)
    if kind in DECODERS:
        cpu = cpu_models[kind]
        assert torch.equal(_generate(model, **GREEDY).cpu(), _generate(cpu, **GREEDY))
        assert torch.equal(_generate(model, **BEAM).cpu(), _generate(cpu, **BEAM))
        # processors read the logits together with the tokens so far (on the first device)
        penalised = dict(GREEDY, repetition_penalty=1.3, no_repeat_ngram_size=2)
        assert torch.equal(_generate(model, **penalised).cpu(), _generate(cpu, **penalised))
        static = dict(GREEDY, cache_implementation="static")  # each layer's cache on its own device
        assert torch.equal(_generate(model, **static).cpu(), _generate(cpu, **GREEDY))


# ---------------------------------------------------------------------------------------------------
# 3. generate() on the GPU


@pytest.fixture(scope="module")
def device_models(folders):
    return {kind: _load(kind, folders[kind], device_map=DEVICE) for kind in DECODERS}


@pytest.mark.parametrize("mode", ["greedy", "beam", "static", "penalised"])
@pytest.mark.parametrize("kind", DECODERS)
def test_generate_on_device_matches_cpu(device_models, cpu_models, kind, mode):
    kwargs = {
        "greedy": GREEDY,
        "beam": BEAM,
        "static": dict(GREEDY, cache_implementation="static"),
        "penalised": dict(GREEDY, repetition_penalty=1.3, no_repeat_ngram_size=2, bad_words_ids=[[5], [9, 10]],
                          min_new_tokens=4),
    }[mode]
    got = _generate(device_models[kind], **kwargs)
    assert _on_device(got)
    want = _generate(cpu_models[kind], **kwargs)
    assert got.shape[1] > 7 + 3, "generated too little to compare"
    assert torch.equal(got.cpu(), want)


@pytest.mark.parametrize("kind", DECODERS)
def test_static_cache_equals_dynamic_on_device(device_models, kind):
    model = device_models[kind]
    dynamic = _generate(model, **GREEDY)
    assert torch.equal(_generate(model, **GREEDY, cache_implementation="static"), dynamic)
    # a second static call (reused, larger cache) gives the same again
    assert torch.equal(_generate(model, **GREEDY, cache_implementation="static"), dynamic)
    out = _generate(model, **GREEDY, return_dict_in_generate=True, output_scores=True)
    assert torch.equal(out.sequences, dynamic)
    assert all(_on_device(s) and torch.isfinite(s).any() for s in out.scores)


@pytest.mark.parametrize("kind", DECODERS)
def test_seeded_sampling_on_device_is_reproducible(device_models, kind):
    model = device_models[kind]
    kwargs = dict(max_new_tokens=12, do_sample=True, top_k=20, top_p=0.9, temperature=0.8, num_return_sequences=2)
    torch.manual_seed(7)
    first = _generate(model, **kwargs)
    torch.manual_seed(7)
    again = _generate(model, **kwargs)
    assert _on_device(first) and torch.equal(first, again)
    assert first.shape == (4, first.shape[1]) and first.shape[1] > 7
    torch.manual_seed(8)
    other = _generate(model, **kwargs)
    assert not torch.equal(first, other), "different seeds gave identical samples"


@pytest.mark.slow
def test_compiled_static_decode_matches_eager_on_device(folders):
    """``cache_implementation="static"`` + ``compile_config`` (as benchmarks/generation.py): one graph."""
    from torch._dynamo.utils import counters

    model = _load("llama", folders["llama"], device_map=DEVICE)
    eager = _generate(model, max_new_tokens=12)
    compiled = dict(max_new_tokens=12, cache_implementation="static", compile_config={"fullgraph": True})
    torch._dynamo.reset()
    counters.clear()
    assert torch.equal(_generate(model, **compiled), eager)
    assert counters["stats"]["unique_graphs"] == 1  # one graph for every decode step
    with torch._dynamo.config.patch(error_on_recompile=True):
        assert torch.equal(_generate(model, **compiled), eager)
        # Scores and logits kept from every step stay right (a CUDA graph reuses its output memory).
        extra = dict(return_dict_in_generate=True, output_scores=True, output_logits=True)
        want = _generate(model, max_new_tokens=12, **extra)
        got = _generate(model, **compiled, **extra)
        assert torch.equal(got.sequences, want.sequences)
        for a, b in zip(got.logits, want.logits, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
        for a, b in zip(got.scores, want.scores, strict=True):
            torch.testing.assert_close(a, b, atol=1e-4, rtol=0)
    beams = dict(max_new_tokens=12, num_beams=3, do_sample=False)
    assert torch.equal(
        _generate(model, **beams, cache_implementation="static", compile_config={"fullgraph": True}),
        _generate(model, **beams),
    )
    torch._dynamo.reset()


# ---------------------------------------------------------------------------------------------------
# 4. Trainer on the GPU (bf16 / fp16 autocast)


class _CountingText(torch.utils.data.Dataset):
    """Sequences that count up (mod the vocabulary): an easy next-token task."""

    def __init__(self, n: int = 64, length: int = 16, seed: int = 0):
        starts = torch.randint(0, VOCAB - 4, (n,), generator=torch.Generator().manual_seed(seed))
        self.rows = [(s + torch.arange(length)) % (VOCAB - 4) + 4 for s in starts]

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.rows[i], "labels": self.rows[i]}


def _tiny_llama():
    from pretrained import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(
        vocab_size=VOCAB, hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=64, pad_token_id=PAD, bos_token_id=BOS, eos_token_id=EOS,
    ))  # fmt: skip


def _train_args(out, **kwargs):
    from pretrained import TrainingArguments

    base = dict(
        output_dir=str(out), per_device_train_batch_size=8, max_steps=12, learning_rate=1e-2, warmup_steps=0,
        logging_steps=1, save_steps=6, seed=0, report_to="none", disable_tqdm=True,
    )  # fmt: skip
    base.update(kwargs)
    return TrainingArguments(**base)


def _losses(trainer) -> dict[int, float]:
    return {h["step"]: h["loss"] for h in trainer.state.log_history if "loss" in h}


def _assert_learned(trainer) -> None:
    losses = list(_losses(trainer).values())
    print("losses:", " ".join(f"{x:.3f}" for x in losses))
    assert losses and all(math.isfinite(x) for x in losses), losses
    assert sum(losses[-3:]) / 3 < 0.8 * losses[0], f"loss did not fall: {losses}"


def _assert_fp32_on_device(model) -> None:
    for name, p in model.named_parameters():
        assert _on_device(p), (name, p.device)
        assert p.dtype == torch.float32, (name, p.dtype)  # autocast keeps fp32 master weights


@pytest.fixture(autouse=True)
def _quiet_printer(monkeypatch):
    from pretrained.training import callbacks

    monkeypatch.setattr(callbacks.PrinterCallback, "on_log", lambda self, *a, **k: None)


def test_trainer_bf16_learns_and_resumes_on_device(tmp_path):
    from pretrained import Trainer

    data = _CountingText()
    full = Trainer(_tiny_llama(), _train_args(tmp_path / "full", bf16=True), train_dataset=data)
    assert full.args.device.type == torch.device(DEVICE).type
    result = full.train()
    assert result.global_step == 12
    _assert_learned(full)
    _assert_fp32_on_device(full.model)
    checkpoint = tmp_path / "full" / "checkpoint-6"
    assert (checkpoint / "model.safetensors").is_file() and (checkpoint / "optimizer.pt").is_file()
    # the checkpoint loads back onto the GPU with the weights it holds
    from pretrained import AutoModelForCausalLM

    saved = AutoModelForCausalLM.from_pretrained(str(tmp_path / "full" / "checkpoint-12"), device_map=DEVICE)
    for (name, p), q in zip(full.model.named_parameters(), saved.parameters()):
        assert torch.equal(p.detach(), q), name

    # resume from step 6 into a fresh model: same steps, same weights as the uninterrupted run
    resumed = Trainer(_tiny_llama(), _train_args(tmp_path / "resumed", bf16=True), train_dataset=data)
    resumed.train(resume_from_checkpoint=str(checkpoint))
    assert resumed.state.global_step == 12
    # the log history of steps 1-6 comes back from the checkpoint, steps 7-12 are trained again
    assert sorted(_losses(resumed)) == list(range(1, 13))
    a, b = _losses(full), _losses(resumed)
    for step in range(7, 13):
        assert abs(a[step] - b[step]) <= 1e-2 * abs(a[step]) + 1e-3, (step, a[step], b[step])
    worst = 0.0
    for p, q in zip(full.model.parameters(), resumed.model.parameters()):
        worst = max(worst, (p - q).abs().max().item())
    print(f"resume: largest weight difference to the uninterrupted run {worst:.2e}")
    # GPU kernels (attention backward) need not be bit-exact run to run; a resume that lost the optimizer
    # or scheduler state is off by about the learning rate (1e-2).
    assert worst <= 2e-3


def test_trainer_fp16_uses_grad_scaler_on_device(tmp_path):
    from pretrained import Trainer

    trainer = Trainer(_tiny_llama(), _train_args(tmp_path, fp16=True, save_steps=12), train_dataset=_CountingText())
    trainer.train()
    assert trainer.scaler is not None
    scale = trainer.scaler.get_scale()
    assert math.isfinite(scale) and scale > 0
    _assert_learned(trainer)
    _assert_fp32_on_device(trainer.model)
    assert (tmp_path / "checkpoint-12" / "scaler.pt").is_file()


def test_trainer_bert_classification_bf16_on_device(tmp_path):
    from pretrained import BertConfig, BertForSequenceClassification, Trainer

    torch.manual_seed(0)
    model = BertForSequenceClassification(BertConfig(
        vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=37,
        max_position_embeddings=64, num_labels=2,
    ))  # fmt: skip
    g = torch.Generator().manual_seed(0)
    rows = []
    for _ in range(64):
        ids = torch.randint(10, VOCAB, (12,), generator=g)
        label = int(torch.randint(0, 2, (1,), generator=g))
        ids[0] = ids[5] = 4 + label  # the label's marker token
        rows.append({"input_ids": ids, "attention_mask": torch.ones(12, dtype=torch.long), "labels": label})
    trainer = Trainer(model, _train_args(tmp_path, bf16=True, max_steps=16, learning_rate=5e-3, save_steps=100),
                      train_dataset=rows, eval_dataset=rows[:16])
    trainer.train()
    _assert_learned(trainer)
    _assert_fp32_on_device(trainer.model)
    metrics = trainer.evaluate()
    assert math.isfinite(metrics["eval_loss"])
    predictions = trainer.predict(rows[:16])
    assert predictions.predictions.shape == (16, 2)


# ---------------------------------------------------------------------------------------------------
# 5. pipelines on the GPU


@pytest.fixture(scope="module")
def pipeline_dirs(tmp_path_factory):
    pytest.importorskip("transformers")  # the fixtures build their tokenizer with it
    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "pipelines"))
    from pipeline_fixtures import ModelDirs

    return ModelDirs(tmp_path_factory.mktemp("cuda_pipelines"))


def test_text_classification_pipeline_on_device(pipeline_dirs):
    from pipeline_fixtures import TEXTS, assert_close

    from pretrained import pipeline

    on_device = pipeline("text-classification", model=pipeline_dirs["sequence"], device=PIPELINE_DEVICE)
    assert _on_device(next(on_device.model.parameters())) and on_device.device.type == torch.device(DEVICE).type
    on_cpu = pipeline("text-classification", model=pipeline_dirs["sequence"], device=-1)
    assert_close(on_device(TEXTS, top_k=None, batch_size=3), on_cpu(TEXTS, top_k=None, batch_size=3), atol=1e-4)
    assert_close(on_device(TEXTS[0]), on_cpu(TEXTS[0]), atol=1e-4)


def test_text_generation_pipeline_on_device(pipeline_dirs):
    from pipeline_fixtures import assert_close

    from pretrained import pipeline

    prompts = ["I love this", "John Smith lives in", "Hello world, this is a small test of the", "Paris"]
    on_device = pipeline("text-generation", model=pipeline_dirs["causal"], device=PIPELINE_DEVICE)
    assert _on_device(next(on_device.model.parameters()))
    on_cpu = pipeline("text-generation", model=pipeline_dirs["causal"], device=-1)
    greedy = dict(do_sample=False, max_new_tokens=8)
    got = on_device(prompts, batch_size=2, **greedy)
    assert_close(got, on_cpu(prompts, batch_size=2, **greedy))
    assert all(len(r[0]["generated_text"]) > len(p) for r, p in zip(got, prompts))
    beams = dict(greedy, num_beams=2, num_return_sequences=2)
    assert_close(on_device(prompts[:2], **beams), on_cpu(prompts[:2], **beams))
