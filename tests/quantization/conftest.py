"""Tiny Llama and BERT checkpoints saved by transformers (the test-only oracle), for the quantization tests."""

import os
import sys
import warnings

import pytest
import torch
import transformers as T

sys.path.insert(0, os.path.dirname(__file__))  # the tests import quant_fixtures.py next to this file
from quant_fixtures import BERT, LLAMA  # noqa: E402


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("llama")
    T.LlamaForCausalLM(T.LlamaConfig(**LLAMA)).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def bert_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("bert")
    # 32 labels: bitsandbytes' CPU 4-bit kernel (which transformers uses on the classifier too) needs
    # output sizes in multiples of 32
    T.BertForSequenceClassification(T.BertConfig(**BERT, num_labels=32)).save_pretrained(path)
    return path


@pytest.fixture(autouse=True)
def _quiet():
    # bitsandbytes warns on every 8-bit matmul that fp32 inputs are cast to fp16
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="MatMul8bitLt")
        yield
