"""Every logits processor against transformers' processor of the same name, on the same inputs."""

from __future__ import annotations

import pytest
import torch

transformers = pytest.importorskip("transformers")
from transformers.generation import logits_process as hf  # noqa: E402

from pretrained.generation import logits_process as ours  # noqa: E402

VOCAB = 50


@pytest.fixture
def inputs():
    gen = torch.Generator().manual_seed(0)
    input_ids = torch.randint(0, VOCAB, (4, 12), generator=gen)
    input_ids[0, -3:] = torch.tensor([7, 8, 7])  # repeats for the n-gram processor
    scores = torch.randn(4, VOCAB, generator=gen) * 3
    scores[1, :5] = torch.tensor([9.0, 8.5, 8.4, -2.0, 0.1])  # a peaked row
    return input_ids, scores


CASES = [
    ("TemperatureLogitsWarper", (0.7,), {}),
    ("TemperatureLogitsWarper", (1.6,), {}),
    ("TopKLogitsWarper", (5,), {}),
    ("TopKLogitsWarper", (1,), {"min_tokens_to_keep": 3}),
    ("TopPLogitsWarper", (0.9,), {}),
    ("TopPLogitsWarper", (0.3,), {"min_tokens_to_keep": 2}),
    ("MinPLogitsWarper", (0.1,), {}),
    ("MinPLogitsWarper", (0.5,), {"min_tokens_to_keep": 3}),
    ("TypicalLogitsWarper", (0.9,), {}),
    ("TypicalLogitsWarper", (0.5,), {"min_tokens_to_keep": 2}),
    ("EpsilonLogitsWarper", (0.01,), {}),
    ("EtaLogitsWarper", (0.01,), {}),
    ("RepetitionPenaltyLogitsProcessor", (1.3,), {}),
    ("RepetitionPenaltyLogitsProcessor", (0.8,), {"prompt_ignore_length": 4}),
    ("NoRepeatNGramLogitsProcessor", (2,), {}),
    ("NoRepeatNGramLogitsProcessor", (3,), {}),
    ("NoBadWordsLogitsProcessor", ([[3], [7, 8], [1, 2, 4], [9]],), {"eos_token_id": 9}),
    ("SequenceBiasLogitsProcessor", ({(3,): 2.0, (7, 5): -1.5},), {}),
    ("MinLengthLogitsProcessor", (15, [2, 3]), {}),
    ("MinLengthLogitsProcessor", (5, 2), {}),
    ("MinNewTokensLengthLogitsProcessor", (10, 4, [2, 3]), {}),
    ("ForcedEOSTokenLogitsProcessor", (13, [2, 4]), {}),
    ("SuppressTokensLogitsProcessor", ([1, 4, 9],), {}),
    ("SuppressTokensAtBeginLogitsProcessor", ([1, 4], 12), {}),
    ("ExponentialDecayLengthPenalty", ((5, 1.5), 2, 4), {}),
    ("InfNanRemoveLogitsProcessor", (), {}),
    ("LogitNormalization", (), {}),
]


@pytest.mark.parametrize(("name", "args", "kwargs"), CASES, ids=[f"{c[0]}-{i}" for i, c in enumerate(CASES)])
def test_processor_matches_transformers(name, args, kwargs, inputs):
    input_ids, scores = inputs
    if name == "InfNanRemoveLogitsProcessor":
        scores = scores.clone()
        scores[0, 0], scores[1, 1], scores[2, 2] = float("nan"), float("inf"), -float("inf")
    want = getattr(hf, name)(*args, **kwargs)(input_ids, scores.clone())
    got = getattr(ours, name)(*args, **kwargs)(input_ids, scores.clone())
    assert torch.equal(torch.isinf(got), torch.isinf(want))
    finite = torch.isfinite(want)
    torch.testing.assert_close(got[finite], want[finite], atol=1e-5, rtol=0)


def test_repetition_penalty_ignores_left_padding_per_row(inputs):
    input_ids, scores = inputs
    ignore = torch.tensor([0, 3, 5, 11])
    want = hf.RepetitionPenaltyLogitsProcessor(1.5, prompt_ignore_length=ignore)(input_ids, scores.clone())
    got = ours.RepetitionPenaltyLogitsProcessor(1.5, prompt_ignore_length=ignore)(input_ids, scores.clone())
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_forced_bos_on_first_step():
    scores = torch.randn(2, VOCAB)
    ids = torch.zeros(2, 1, dtype=torch.long)
    want = hf.ForcedBOSTokenLogitsProcessor(3)(ids, scores.clone())
    got = ours.ForcedBOSTokenLogitsProcessor(3)(ids, scores.clone())
    assert torch.equal(got, want)


def test_chained_list_matches():
    gen = torch.Generator().manual_seed(5)
    ids, scores = torch.randint(0, VOCAB, (3, 9), generator=gen), torch.randn(3, VOCAB, generator=gen)

    def build(m):
        return m.LogitsProcessorList([
            m.RepetitionPenaltyLogitsProcessor(1.2),
            m.TemperatureLogitsWarper(0.8),
            m.TopKLogitsWarper(20),
            m.TopPLogitsWarper(0.8),
            m.MinPLogitsWarper(0.05),
        ])  # fmt: skip

    want, got = build(hf)(ids, scores.clone()), build(ours)(ids, scores.clone())
    finite = torch.isfinite(want)
    assert torch.equal(finite, torch.isfinite(got))
    torch.testing.assert_close(got[finite], want[finite], atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("factory", "message"),
    [
        (lambda: ours.TemperatureLogitsWarper(0.0), "temperature"),
        (lambda: ours.TopKLogitsWarper(0), "top_k"),
        (lambda: ours.TopPLogitsWarper(1.5), "top_p"),
        (lambda: ours.MinPLogitsWarper(2.0), "min_p"),
        (lambda: ours.TypicalLogitsWarper(1.0), "typical_p"),
        (lambda: ours.RepetitionPenaltyLogitsProcessor(0.0), "penalty"),
        (lambda: ours.NoRepeatNGramLogitsProcessor(0), "ngram_size"),
        (lambda: ours.NoBadWordsLogitsProcessor([3]), "list of lists"),
        (lambda: ours.SequenceBiasLogitsProcessor({(1,): 1}), "floats"),
    ],
)
def test_bad_arguments_raise_clear_errors(factory, message):
    with pytest.raises(ValueError, match=message):
        factory()


@pytest.mark.parametrize("name", ["TopPLogitsWarper", "MinPLogitsWarper", "TypicalLogitsWarper",
                                  "EpsilonLogitsWarper", "EtaLogitsWarper"])
@pytest.mark.parametrize("min_tokens", [0, -1, 2.0, 3])
def test_min_tokens_to_keep_is_checked_as_transformers_does(name, min_tokens):
    # Top-p / min-p / typical want an int; epsilon and eta take anything int() converts.
    def build(module):
        return getattr(module, name)(0.5, min_tokens_to_keep=min_tokens)

    try:
        want = build(hf).min_tokens_to_keep
    except ValueError:
        with pytest.raises(ValueError, match="min_tokens_to_keep"):
            build(ours)
        return
    got = build(ours).min_tokens_to_keep
    assert got == want and type(got) is type(want)
