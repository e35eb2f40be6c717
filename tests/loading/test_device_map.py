"""The "auto" device map: fill devices in order without splitting no-split modules."""

import pytest
import torch

import pretrained as P
from pretrained.loading import device_map as dm


def _meta_model():
    config = P.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                          intermediate_size=128, max_position_embeddings=64)
    with torch.device("meta"):
        return P.BertModel(config)


def test_parse_size():
    assert dm.parse_size("50MB") == 50_000_000
    assert dm.parse_size("2GiB") == 2 * 2**30
    assert dm.parse_size(123) == 123
    with pytest.raises(ValueError, match="size"):
        dm.parse_size("lots")


def test_auto_map_fills_first_device_then_next(monkeypatch):
    model = _meta_model()
    layer = dm._size(model.encoder.layer[0], torch.float32)
    embeddings = dm._size(model.embeddings, torch.float32)
    gpu, cpu = torch.device("cuda", 0), torch.device("cpu")
    # Room for the embeddings and two layers on the "accelerator", the rest on the CPU.
    monkeypatch.setattr(dm, "_available_memory", lambda max_memory: [(gpu, embeddings + 2 * layer + 10),
                                                                      (cpu, 10**9)])
    mapping = dm.infer_device_map(model, dtype=torch.float32, max_memory=None, no_split={"BertLayer"})
    lookup = dm.device_lookup(mapping)
    assert lookup("embeddings.word_embeddings.weight") == gpu
    assert lookup("encoder.layer.0.attention.self.query.weight") == gpu
    assert lookup("encoder.layer.1.output.dense.bias") == gpu
    assert lookup("encoder.layer.2.attention.self.query.weight") == cpu
    assert lookup("pooler.dense.weight") == cpu
    # no BertLayer is split across devices
    for i in range(4):
        devices = {lookup(f"encoder.layer.{i}.{n}") for n, _ in model.encoder.layer[i].named_parameters()}
        assert len(devices) == 1


def test_everything_on_one_device_collapses(monkeypatch):
    model = _meta_model()
    monkeypatch.setattr(dm, "_available_memory", lambda max_memory: [(torch.device("cpu"), 10**9)])
    assert dm.infer_device_map(model, dtype=None, max_memory=None, no_split=set()) == {"": torch.device("cpu")}


def test_auto_map_keeps_tied_head_with_its_embeddings(monkeypatch):
    """A tied lm_head is the embedding tensor: it must run where the embeddings live, even when the
    budget would put the end of the model on another device (the aliased MLM bias follows too)."""
    config = P.BertConfig(vocab_size=1000, hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                          intermediate_size=128, max_position_embeddings=64)
    with torch.device("meta"):
        model = P.BertForMaskedLM(config)
    layer = dm._size(model.bert.encoder.layer[0], torch.float32)
    embeddings = dm._size(model.bert.embeddings, torch.float32)
    gpu, cpu = torch.device("cuda", 0), torch.device("cpu")
    monkeypatch.setattr(dm, "_available_memory", lambda max_memory: [(gpu, embeddings + layer + 10),
                                                                      (cpu, 10**9)])
    lookup = dm.device_lookup(dm.infer_device_map(model, dtype=torch.float32, max_memory=None,
                                                  no_split={"BertLayer"}))
    assert lookup("bert.embeddings.word_embeddings.weight") == gpu
    assert lookup("bert.encoder.layer.3.output.dense.weight") == cpu
    assert lookup("cls.predictions.decoder.weight") == gpu
    assert lookup("cls.predictions.decoder.bias") == lookup("cls.predictions.bias") == gpu
