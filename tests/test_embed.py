"""The README's main job: sentence embeddings on the embedded MiniLM, checked against transformers."""

import subprocess
import sys

import torch
import transformers as T

from pretrained.embed import DEFAULT_SENTENCES, default_model_path, embed


def test_embeddings_match_transformers():
    sentences = DEFAULT_SENTENCES + ["naïve café 東京 🙂", ""]
    ours = embed(sentences)
    path = default_model_path()
    tok = T.AutoTokenizer.from_pretrained(path)
    model = T.AutoModel.from_pretrained(path).eval()
    batch = tok(sentences, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ref = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
    torch.testing.assert_close(ours, ref, atol=1e-5, rtol=0)


def test_main_prints_similarities():
    out = subprocess.run([sys.executable, "-m", "pretrained.embed", "a cat", "a kitten", "tax law"],
                         capture_output=True, text=True, check=True).stdout
    assert "384-dim" in out and "cosine similarity" in out
