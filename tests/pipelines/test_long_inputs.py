"""A text longer than the model accepts gets an error naming its length, the limit and the fix."""

import pytest
import torch
from pipeline_fixtures import TEXTS

import pretrained as P
from pretrained.pipelines.base import _position_limit

LONG = " ".join(TEXTS * 20)
MESSAGE = r"The input is (\d+) tokens long, but \w+ accepts at most 64\. Pass truncation=True"


@pytest.mark.parametrize(("task", "name", "call"), [
    ("text-classification", "sequence", {}),
    ("feature-extraction", "base", {}),
    ("fill-mask", "mlm", {}),
])  # fmt: skip
def test_too_long_named_and_truncation_fixes_it(model_dirs, task, name, call):
    pipe = P.pipeline(task, model=model_dirs[name], device="cpu")
    text = LONG + (" [MASK]" if task == "fill-mask" else "")
    with pytest.raises(ValueError, match=MESSAGE) as error:
        pipe(text, **call)
    assert int(error.value.args[0].split()[3]) == len(pipe.tokenizer(text)["input_ids"])
    if task != "fill-mask":  # fill-mask would cut the mask token off
        pipe(text, truncation=True)
    short = TEXTS[0] + (" [MASK]" if task == "fill-mask" else "")
    with pytest.raises(ValueError, match=MESSAGE):  # batched: the padded batch is checked
        pipe([short, text], batch_size=2)


def test_text_generation_prompt_too_long(model_dirs):
    pipe = P.pipeline("text-generation", model=model_dirs["causal"], device="cpu")
    with pytest.raises(ValueError, match=r"The input is \d+ tokens long, but GPT2LMHeadModel accepts at most 128"):
        pipe(LONG * 2, max_new_tokens=2)


def test_position_limits():
    roberta = P.RobertaModel(P.RobertaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                             intermediate_size=20, max_position_embeddings=66, pad_token_id=1))
    assert _position_limit(roberta) == 64  # positions start after the padding index
    bert = P.BertModel(P.BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                    intermediate_size=20, max_position_embeddings=66))
    assert _position_limit(bert) == 66
    llama = P.LlamaModel(P.LlamaConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                       num_key_value_heads=2, intermediate_size=20))
    assert _position_limit(llama) is None  # rotary positions: no table to run past
    with torch.no_grad():
        roberta(torch.ones(1, 64, dtype=torch.long) * 5)  # the limit itself runs
