"""Lists run in batches of similar length; outputs come back in input order and equal unbatched runs."""

import random

import pytest
import torch
from pipeline_fixtures import assert_close

import pretrained as P

WORDS = ["the", "cat", "sat", "on", "a", "mat", "while", "dogs", "ran", "far", "away", "under", "blue", "skies"]


def varied_texts(n=23, seed=0, longest=12):
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(1, longest))) for _ in range(n)]


def _forward_widths(pipe, texts, **kwargs):
    widths = []
    forward = pipe._forward

    def spy(model_inputs, **fwd):
        widths.append(tuple(model_inputs["input_ids"].shape))
        return forward(model_inputs, **fwd)

    pipe._forward = spy
    try:
        return pipe(texts, **kwargs), widths
    finally:
        del pipe._forward


@pytest.mark.parametrize("task,folder", [("feature-extraction", "base"), ("text-classification", "sequence")])
def test_sorted_batches_keep_input_order(model_dirs, task, folder):
    pipe = P.pipeline(task, model=model_dirs[folder])
    texts = varied_texts()
    one_by_one = [pipe(t) if task == "feature-extraction" else pipe([t])[0] for t in texts]
    batched, shapes = _forward_widths(pipe, texts, batch_size=4)
    assert len(batched) == len(texts)
    assert_close(batched, one_by_one, atol=1e-5)
    # Longest first, and each batch is padded only to texts of its own length range.
    lengths = sorted((len(pipe.tokenizer(t)["input_ids"]) for t in texts), reverse=True)
    assert [s[1] for s in shapes] == [lengths[i] for i in range(0, len(texts), 4)]
    assert [s[0] for s in shapes] == [4] * 5 + [3]


def test_padding_drops_against_input_order(model_dirs):
    pipe = P.pipeline("feature-extraction", model=model_dirs["base"])
    texts = varied_texts(64, seed=1)
    _, shapes = _forward_widths(pipe, texts, batch_size=8)
    padded_sorted = sum(b * w for b, w in shapes)
    lengths = [len(pipe.tokenizer(t)["input_ids"]) for t in texts]
    padded_in_order = sum(8 * max(lengths[i:i + 8]) for i in range(0, 64, 8))
    assert padded_sorted < 0.8 * padded_in_order


def test_streams_and_pairs_keep_their_order(model_dirs):
    pipe = P.pipeline("text-classification", model=model_dirs["sequence"])
    texts = varied_texts(9)
    from_stream = list(pipe(iter(texts), batch_size=4))
    assert_close(from_stream, pipe(texts, batch_size=4), atol=1e-5)
    pairs = [{"text": t, "text_pair": "a mat"} for t in texts]
    assert_close(pipe(pairs, batch_size=4), [pipe(p) for p in pairs], atol=1e-5)


def test_truncation_is_measured_as_run(model_dirs):
    pipe = P.pipeline("feature-extraction", model=model_dirs["base"])
    texts = varied_texts(10)
    out = pipe(texts, batch_size=3, truncation=True, tokenize_kwargs={"max_length": 6})
    assert all(len(o[0]) <= 6 for o in out)
    assert torch.tensor(out[0]).shape[1] == len(pipe.tokenizer(texts[0], truncation=True, max_length=6)["input_ids"])
