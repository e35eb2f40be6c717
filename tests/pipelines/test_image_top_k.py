"""The image-classification pipeline builds dicts for its ``top_k`` labels only: the same labels, scores and
order (ties in label order) as sorting every label's dict, which transformers does, also with ties,
infinities and NaN."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers as T
from vision_fixtures import save_tiny_vit

import pretrained as P


@pytest.fixture(scope="module")
def pipes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vit")
    save_tiny_vit(folder, num_labels=7)
    return (P.pipeline("image-classification", model=str(folder)),
            T.pipeline("image-classification", model=str(folder)))


@pytest.mark.parametrize("function", ["softmax", "sigmoid", "none"])
def test_top_k_equals_sorting_every_label(pipes, function):
    ours, theirs = pipes
    rng = np.random.default_rng(0)
    rows = [rng.standard_normal(7), rng.choice([0.0, -0.0, 2.0, -1.0], 7), np.full(7, 0.5),
            np.array([1.0, np.inf, -np.inf, 1.0, 3.0, 3.0, np.inf]), np.array([1.0, np.nan, 0.0, 2.0, np.nan, 1.0, 2.0])]
    for row in rows:
        outputs = {"logits": torch.tensor(row, dtype=torch.float32)[None]}
        for top_k in (1, 3, 7, 40):
            a = ours.postprocess(dict(outputs), **ours._sanitize_parameters(function_to_apply=function, top_k=top_k)[2])
            b = theirs.postprocess(dict(outputs),
                                   **theirs._sanitize_parameters(function_to_apply=function, top_k=top_k)[2])
            assert len(a) == len(b) == min(top_k, 7)
            for x, y in zip(a, b, strict=True):
                assert x["label"] == y["label"]
                assert x["score"] == y["score"] or (np.isnan(x["score"]) and np.isnan(y["score"]))
