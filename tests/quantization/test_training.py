"""Training quantized models as transformers allows it: adapters on top of frozen quantized layers train;
a purely quantized model, or a method without a backward, is refused."""

import pytest
import torch
from torch import nn

import pretrained as P


class LoRA(nn.Module):
    """A low-rank adapter of the test's own around a (quantized) linear layer: base(x) + B(A(x))."""

    def __init__(self, base: nn.Module, rank: int = 4):
        super().__init__()
        self.base = base
        self.lora_A = nn.Linear(base.in_features, rank, bias=False)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False)
        nn.init.zeros_(self.lora_B.weight)

    def forward(self, x):
        return self.base(x) + self.lora_B(self.lora_A(x))


def add_adapters(model):
    for param in model.parameters():
        param.requires_grad_(False)
    for layer in model.model.layers:
        layer.self_attn.q_proj = LoRA(layer.self_attn.q_proj)
        layer.self_attn.v_proj = LoRA(layer.self_attn.v_proj)
    model._hf_peft_config_loaded = True  # what peft's add_adapter sets: adapters are attached


def _data(n=16):
    # one sequence repeated: the adapters can learn it, so the loss must fall
    row = torch.randint(0, 128, (12,), generator=torch.Generator().manual_seed(0))
    return [{"input_ids": row, "labels": row} for _ in range(n)]


def _args(tmp_path, **kw):
    return P.TrainingArguments(output_dir=str(tmp_path), max_steps=8, per_device_train_batch_size=4,
                               learning_rate=2e-2, report_to="none", disable_tqdm=True, use_cpu=True,
                               save_strategy="no", logging_steps=1, **kw)


def test_lora_adapters_on_a_4bit_model_train(llama_dir, tmp_path):
    config = P.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=config)
    frozen = model.model.layers[0].mlp.up_proj.weight.data.clone()
    add_adapters(model)
    trainable = [n for n, p in model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    before = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    trainer = P.Trainer(model=model, args=_args(tmp_path), train_dataset=_data())
    trainer.train()
    losses = [log["loss"] for log in trainer.state.log_history if "loss" in log]
    assert len(losses) == 8 and losses[-1] < losses[0] - 0.1, losses
    assert all(not torch.equal(p, before[n]) for n, p in model.named_parameters() if n.endswith("lora_B.weight"))
    assert torch.equal(model.model.layers[0].mlp.up_proj.weight.data, frozen)  # the 4-bit weights stay as loaded


def test_training_a_purely_quantized_model_is_refused(llama_dir, tmp_path):
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.BitsAndBytesConfig(load_in_8bit=True))
    with pytest.raises(ValueError, match="purely quantized models"):
        P.Trainer(model=model, args=_args(tmp_path), train_dataset=_data())


def test_a_method_without_training_support_is_refused(llama_dir, tmp_path, monkeypatch):
    from pretrained.quantizers.bitsandbytes import Bnb4BitHfQuantizer

    monkeypatch.setattr(Bnb4BitHfQuantizer, "is_trainable", property(lambda self: False))
    model = P.LlamaForCausalLM.from_pretrained(llama_dir, quantization_config=P.BitsAndBytesConfig(load_in_4bit=True))
    add_adapters(model)
    with pytest.raises(ValueError, match="does not support training"):
        P.Trainer(model=model, args=_args(tmp_path), train_dataset=_data())
