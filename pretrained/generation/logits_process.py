"""Logits processors: functions of ``(input_ids, scores) -> scores`` applied before choosing a token.

Each class matches the transformers processor of the same name (same arguments, same numbers). They are
built once per ``generate`` call; anything that depends only on the vocabulary (masks of EOS or
suppressed ids, bias vectors) is computed on the first call and reused, so a decode step runs only
tensor operations.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
import torch.nn.functional as F

_NEG_INF = -float("inf")


def _as_id_list(ids: int | Iterable[int] | torch.Tensor | None) -> list[int]:
    if ids is None:
        return []
    if isinstance(ids, torch.Tensor):
        return [int(i) for i in ids.reshape(-1).tolist()]
    if isinstance(ids, int):
        return [ids]
    return [int(i) for i in ids]


def _min_tokens_to_keep(value: Any, coerce: bool = False) -> int:
    """``value`` checked to be a positive ``int``. With ``coerce`` anything ``int()`` takes is converted first
    (the epsilon and eta warpers' rule in transformers; the others want an ``int``)."""
    count = int(value) if coerce else value
    if not isinstance(count, int) or count < 1:
        raise ValueError(f"`min_tokens_to_keep` has to be a positive integer, got {value!r}")
    return count


class LogitsProcessor:
    """Base class: ``__call__(input_ids (batch, cur_len), scores (batch, vocab)) -> scores``."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


# transformers keeps a separate name for warpers; they are the same interface.
LogitsWarper = LogitsProcessor


class LogitsProcessorList(list):
    """A list of processors applied in order; extra keyword arguments go to processors that accept them."""

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor, **kwargs: Any
    ) -> torch.FloatTensor:
        for processor in self:
            scores = processor(input_ids, scores, **kwargs) if kwargs else processor(input_ids, scores)
        return scores


class _TokenMask:
    """A lazily built ``(vocab,)`` bool mask of some token ids, cached per vocab size and device."""

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids
        self._mask: torch.Tensor | None = None

    def get(self, scores: torch.Tensor) -> torch.Tensor:
        mask = self._mask
        if mask is None or mask.shape[0] != scores.shape[-1] or mask.device != scores.device:
            mask = torch.zeros(scores.shape[-1], dtype=torch.bool, device=scores.device)
            valid = [i for i in self.ids if 0 <= i < scores.shape[-1]]
            if valid:
                mask[valid] = True
            self._mask = mask
        return mask


class TemperatureLogitsWarper(LogitsProcessor):
    """Divide the scores by ``temperature`` (> 0): below 1 sharpens, above 1 flattens."""

    def __init__(self, temperature: float) -> None:
        if not isinstance(temperature, float) or not temperature > 0:
            hint = " For greedy decoding set do_sample=False." if temperature == 0 else ""
            raise ValueError(f"`temperature` has to be a strictly positive float, got {temperature!r}.{hint}")
        self.temperature = temperature

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores / self.temperature


class TopKLogitsWarper(LogitsProcessor):
    """Keep the ``top_k`` highest scores (ties with the k-th kept too), set the rest to ``filter_value``."""

    def __init__(self, top_k: int, filter_value: float = _NEG_INF, min_tokens_to_keep: int = 1) -> None:
        if not isinstance(top_k, int) or top_k <= 0:
            raise ValueError(f"`top_k` has to be a strictly positive integer, got {top_k!r}")
        self.top_k = max(top_k, min_tokens_to_keep)
        self.filter_value = filter_value

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        k = min(self.top_k, scores.shape[-1])
        kth = torch.topk(scores, k, dim=-1).values[..., -1:]
        return scores.masked_fill(scores < kth, self.filter_value)


class TopPLogitsWarper(LogitsProcessor):
    """Nucleus filtering: keep the smallest set of most likely tokens whose probability reaches ``top_p``."""

    def __init__(self, top_p: float, filter_value: float = _NEG_INF, min_tokens_to_keep: int = 1) -> None:
        top_p = float(top_p)
        if not 0 <= top_p <= 1.0:
            raise ValueError(f"`top_p` has to be a float in [0, 1], got {top_p}")
        self.top_p, self.filter_value = top_p, filter_value
        self.min_tokens_to_keep = _min_tokens_to_keep(min_tokens_to_keep)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ascending, order = torch.sort(scores, descending=False)
        cumulative = ascending.softmax(dim=-1).cumsum(dim=-1)
        # Drop the low tail whose total mass stays within 1 - top_p; always keep the best few.
        drop_sorted = cumulative <= (1 - self.top_p)
        drop_sorted[..., -self.min_tokens_to_keep :] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, self.filter_value)


class MinPLogitsWarper(LogitsProcessor):
    """Drop tokens whose probability is below ``min_p`` times the probability of the most likely token."""

    def __init__(self, min_p: float, filter_value: float = _NEG_INF, min_tokens_to_keep: int = 1) -> None:
        if not 0 <= min_p <= 1.0:
            raise ValueError(f"`min_p` has to be a float in [0, 1], got {min_p}")
        self.min_p, self.filter_value = min_p, filter_value
        self.min_tokens_to_keep = _min_tokens_to_keep(min_tokens_to_keep)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = scores.softmax(dim=-1)
        drop = probs < self.min_p * probs.amax(dim=-1, keepdim=True)
        keep = torch.topk(probs, min(self.min_tokens_to_keep, probs.shape[-1]), dim=-1).indices
        drop.scatter_(-1, keep, False)
        return scores.masked_fill(drop, self.filter_value)


class TypicalLogitsWarper(LogitsProcessor):
    """Locally typical sampling: keep tokens whose surprise is closest to the entropy, up to ``mass``."""

    def __init__(
        self, mass: float = 0.9, filter_value: float = _NEG_INF, min_tokens_to_keep: int = 1
    ) -> None:
        mass = float(mass)
        if not 0 < mass < 1:
            raise ValueError(f"`typical_p` has to be a float in (0, 1), got {mass}")
        self.mass, self.filter_value = mass, filter_value
        self.min_tokens_to_keep = _min_tokens_to_keep(min_tokens_to_keep)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        logp = F.log_softmax(scores, dim=-1)
        entropy = -(logp * logp.exp()).nansum(-1, keepdim=True)
        distance, order = torch.sort((-logp - entropy).abs(), descending=False)
        cumulative = scores.gather(-1, order).softmax(dim=-1).cumsum(dim=-1)
        last = (cumulative < self.mass).sum(dim=-1, keepdim=True).clamp_(max=distance.shape[-1] - 1)
        drop_sorted = distance > distance.gather(-1, last)
        drop_sorted[..., : self.min_tokens_to_keep] = False
        drop = drop_sorted.scatter(-1, order, drop_sorted)
        return scores.masked_fill(drop, self.filter_value)


class EpsilonLogitsWarper(LogitsProcessor):
    """Drop tokens with probability below ``epsilon`` (keeping at least ``min_tokens_to_keep``)."""

    def __init__(self, epsilon: float, filter_value: float = _NEG_INF, min_tokens_to_keep: int = 1) -> None:
        epsilon = float(epsilon)
        if not 0 < epsilon < 1:
            raise ValueError(f"`epsilon_cutoff` has to be a float in (0, 1), got {epsilon}")
        self.epsilon, self.filter_value = epsilon, filter_value
        self.min_tokens_to_keep = _min_tokens_to_keep(min_tokens_to_keep, coerce=True)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        drop = scores.softmax(dim=-1) < self.epsilon
        kth = torch.topk(scores, min(self.min_tokens_to_keep, scores.shape[-1]))[0][..., -1:]
        return scores.masked_fill(drop & (scores < kth), self.filter_value)


class EtaLogitsWarper(LogitsProcessor):
    """Eta sampling: an entropy-dependent probability cutoff ``min(eta, sqrt(eta) * exp(-entropy))``."""

    def __init__(
        self, epsilon: float, filter_value: float = _NEG_INF, min_tokens_to_keep: int = 1, device: str = "cpu"
    ) -> None:
        epsilon = float(epsilon)
        if not 0 < epsilon < 1:
            raise ValueError(f"`eta_cutoff` has to be a float in (0, 1), got {epsilon}")
        self.epsilon = torch.tensor(epsilon, device=device)
        self.filter_value = filter_value
        self.min_tokens_to_keep = _min_tokens_to_keep(min_tokens_to_keep, coerce=True)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        probs = scores.softmax(dim=-1)
        logp = F.log_softmax(scores, dim=-1)
        entropy = -(probs * logp).nan_to_num(0.0).sum(-1)
        eps = self.epsilon.to(scores.device)
        eta = torch.minimum(eps, eps.sqrt() * torch.exp(-entropy))[..., None]
        kth = torch.topk(scores, min(self.min_tokens_to_keep, scores.shape[-1]))[0][..., -1:]
        return scores.masked_fill((probs < eta) & (scores < kth), self.filter_value)


class RepetitionPenaltyLogitsProcessor(LogitsProcessor):
    """Penalise tokens already present: positive scores divided by ``penalty``, negative ones multiplied.

    Args:
        penalty: Strictly positive; 1.0 means no penalty.
        prompt_ignore_length: Leading positions of ``input_ids`` to ignore: an int, or a ``(batch,)`` tensor
            (``generate`` passes the left-padding lengths so pad tokens are not penalised).
    """

    def __init__(self, penalty: float, prompt_ignore_length: int | torch.Tensor | None = None) -> None:
        if not isinstance(penalty, float) or not penalty > 0:
            raise ValueError(f"`penalty` has to be a strictly positive float, got {penalty!r}")
        if isinstance(prompt_ignore_length, int) and prompt_ignore_length < 0:
            raise ValueError(f"`prompt_ignore_length` has to be non-negative, got {prompt_ignore_length}")
        if isinstance(prompt_ignore_length, torch.Tensor) and prompt_ignore_length.dim() != 1:
            raise ValueError("`prompt_ignore_length` must be an int or a 1D tensor")
        self.penalty = penalty
        self.prompt_ignore_length = prompt_ignore_length

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        vocab = scores.shape[-1]
        ignore = self.prompt_ignore_length
        if isinstance(ignore, int):
            input_ids = input_ids[:, ignore:]
        elif isinstance(ignore, torch.Tensor):
            if ignore.shape[0] != input_ids.shape[0]:
                raise ValueError("`prompt_ignore_length` does not match the batch size")
            positions = torch.arange(input_ids.shape[1], device=input_ids.device)
            # Ignored positions point at an extra column that is cut off afterwards.
            input_ids = input_ids.masked_fill(
                positions[None, :] < ignore.to(input_ids.device)[:, None], vocab
            )
        ids = input_ids.clamp(max=vocab)
        padded = F.pad(scores, (0, 1))
        seen = padded.gather(1, ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return padded.scatter(1, ids, seen)[:, :vocab]


class NoRepeatNGramLogitsProcessor(LogitsProcessor):
    """Forbid any token that would repeat an n-gram of size ``ngram_size`` already in the sequence."""

    def __init__(self, ngram_size: int) -> None:
        if not isinstance(ngram_size, int) or ngram_size <= 0:
            raise ValueError(f"`ngram_size` has to be a strictly positive integer, got {ngram_size!r}")
        self.ngram_size = ngram_size

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n, cur_len = self.ngram_size, input_ids.shape[-1]
        if cur_len < n:
            return scores
        vocab = scores.shape[-1]
        windows = input_ids.unfold(1, n, 1)  # (batch, num_ngrams, n)
        prefix = input_ids[:, cur_len - n + 1 :]  # the n-1 latest tokens
        hits = (windows[..., :-1] == prefix[:, None, :]).all(dim=-1)
        banned = torch.where(hits, windows[..., -1].clamp(max=vocab), vocab)
        mask = torch.zeros(scores.shape[0], vocab + 1, dtype=torch.bool, device=scores.device)
        mask.scatter_(1, banned, True)
        return scores.masked_fill(mask[:, :vocab], _NEG_INF)


def _rows_per_prompt(rows: int, prompts: torch.Tensor) -> torch.Tensor:
    """Each row's prompt: the prompts repeated for beams / returned sequences (rows of a prompt are adjacent)."""
    return prompts.repeat_interleave(rows // prompts.shape[0], dim=0) if rows > prompts.shape[0] else prompts


class EncoderRepetitionPenaltyLogitsProcessor(LogitsProcessor):
    """The inverse of :class:`RepetitionPenaltyLogitsProcessor` for the tokens of the encoder's input: a
    ``penalty`` above 1 makes them more likely (against hallucination in summaries), below 1 less likely."""

    def __init__(self, penalty: float, encoder_input_ids: torch.LongTensor) -> None:
        if not isinstance(penalty, float) or not penalty > 0:
            raise ValueError(f"`penalty` has to be a strictly positive float, got {penalty!r}")
        self.penalty = 1 / penalty
        self.encoder_input_ids = encoder_input_ids

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        ids = _rows_per_prompt(scores.shape[0], self.encoder_input_ids)
        seen = scores.gather(1, ids)
        seen = torch.where(seen < 0, seen * self.penalty, seen / self.penalty)
        return scores.scatter(1, ids, seen)


class EncoderNoRepeatNGramLogitsProcessor(LogitsProcessor):
    """Forbid any token that would complete an n-gram of size ``encoder_ngram_size`` found in the encoder's
    input (padding included, as in transformers)."""

    def __init__(self, encoder_ngram_size: int, encoder_input_ids: torch.LongTensor) -> None:
        if not isinstance(encoder_ngram_size, int) or encoder_ngram_size <= 0:
            raise ValueError(f"`encoder_ngram_size` has to be a strictly positive integer, got {encoder_ngram_size!r}")
        self.ngram_size = encoder_ngram_size
        ids = encoder_input_ids if encoder_input_ids.dim() == 2 else encoder_input_ids[None]
        # (prompts, num_ngrams, n); a prompt shorter than n has none
        self.windows = ids.unfold(1, encoder_ngram_size, 1) if ids.shape[1] >= encoder_ngram_size else None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        n, cur_len = self.ngram_size, input_ids.shape[-1]
        if self.windows is None or cur_len < n - 1:
            return scores
        vocab = scores.shape[-1]
        windows = _rows_per_prompt(scores.shape[0], self.windows)
        prefix = input_ids[:, cur_len - n + 1:] if n > 1 else input_ids[:, :0]  # the n-1 latest tokens
        hits = (windows[..., :-1] == prefix[:, None, :]).all(dim=-1)
        banned = torch.where(hits, windows[..., -1].clamp(max=vocab), vocab)
        mask = torch.zeros(scores.shape[0], vocab + 1, dtype=torch.bool, device=scores.device)
        mask.scatter_(1, banned, True)
        return scores.masked_fill(mask[:, :vocab], _NEG_INF)


class SequenceBiasLogitsProcessor(LogitsProcessor):
    """Add a bias to the last token of given sequences when the sequence's prefix was just generated.

    Args:
        sequence_bias: ``{(token, ...): bias}`` or ``[[[token, ...], bias], ...]``.
    """

    def __init__(self, sequence_bias: dict[tuple[int, ...], float] | list[list[Any]]) -> None:
        if isinstance(sequence_bias, list) and sequence_bias:
            if any(
                not (isinstance(s, list) and len(s) == 2 and isinstance(s[0], list)) for s in sequence_bias
            ):
                raise ValueError(
                    f"`sequence_bias` list entries must be [[token ids], bias], got {sequence_bias}"
                )
            sequence_bias = {tuple(s[0]): s[1] for s in sequence_bias}
        if not isinstance(sequence_bias, dict) or not sequence_bias:
            raise ValueError(f"`sequence_bias` has to be a non-empty dict or list, got {sequence_bias!r}")
        for seq, bias in sequence_bias.items():
            if not isinstance(seq, tuple) or not seq or any(not isinstance(t, int) or t < 0 for t in seq):
                raise ValueError(f"`sequence_bias` keys must be non-empty tuples of token ids, got {seq!r}")
            if not isinstance(bias, float):
                raise ValueError(f"`sequence_bias` values must be floats, got {bias!r}")
        self.sequence_bias = sequence_bias
        self._prepared: tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] | None = (
            None
        )

    def _prepare(self, scores: torch.Tensor) -> tuple[torch.Tensor, list]:
        vocab, device = scores.shape[-1], scores.device
        too_big = [t for seq in self.sequence_bias for t in seq if t >= vocab]
        if too_big:
            raise ValueError(f"the vocabulary has {vocab} tokens but these ids are biased: {too_big}")
        single = torch.zeros(vocab, dtype=torch.float, device=device)
        groups: dict[int, list[tuple[tuple[int, ...], float]]] = {}
        for seq, bias in self.sequence_bias.items():
            if len(seq) == 1:
                single[seq[0]] = bias
            else:
                groups.setdefault(len(seq) - 1, []).append((seq, bias))
        multi = [
            (
                torch.tensor([s[:-1] for s, _ in group], device=device),
                torch.tensor([s[-1] for s, _ in group], device=device),
                torch.tensor([b for _, b in group], dtype=torch.float, device=device),
            )
            for group in groups.values()
        ]
        self._prepared = (single, multi)
        return self._prepared

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        single, multi = self._prepared or self._prepare(scores)
        bias = single.to(scores.dtype).expand_as(scores).clone()
        for prefixes, last_tokens, biases in multi:
            length = prefixes.shape[1]
            if length > input_ids.shape[1]:
                continue
            match = (input_ids[:, None, -length:] == prefixes).all(dim=-1)  # (batch, num_sequences)
            bias.index_add_(1, last_tokens, torch.where(match, biases, 0.0).to(bias.dtype))
        return scores + bias


class NoBadWordsLogitsProcessor(SequenceBiasLogitsProcessor):
    """Forbid token sequences: the last token of a bad sequence gets ``-inf`` once its prefix appeared.

    Args:
        bad_words_ids: ``[[token, ...], ...]``.
        eos_token_id: Single-token bad words equal to an EOS id are ignored (EOS must stay reachable).
    """

    def __init__(
        self, bad_words_ids: list[list[int]], eos_token_id: int | list[int] | torch.Tensor | None = None
    ):
        if not isinstance(bad_words_ids, list) or not bad_words_ids:
            raise ValueError(f"`bad_words_ids` has to be a non-empty list, got {bad_words_ids!r}")
        if any(not isinstance(w, list) for w in bad_words_ids):
            raise ValueError(f"`bad_words_ids` has to be a list of lists, got {bad_words_ids!r}")
        if any(not isinstance(t, int) or t < 0 for w in bad_words_ids for t in w):
            raise ValueError(
                f"each list in `bad_words_ids` must hold non-negative ints, got {bad_words_ids!r}"
            )
        self.bad_word_ids = bad_words_ids
        eos = _as_id_list(eos_token_id)
        # EOS must stay reachable, so single-token bad words equal to an EOS id are dropped.
        self.sequence_bias = {tuple(w): _NEG_INF for w in bad_words_ids if not (len(w) == 1 and w[0] in eos)}
        self._prepared = None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if not self.sequence_bias:
            return scores
        return super().__call__(input_ids, scores)


class MinLengthLogitsProcessor(LogitsProcessor):
    """Forbid EOS while the sequence (prompt included) is shorter than ``min_length``."""

    def __init__(
        self, min_length: int, eos_token_id: int | list[int] | torch.Tensor, device: str = "cpu"
    ) -> None:
        if not isinstance(min_length, int) or min_length < 0:
            raise ValueError(f"`min_length` has to be a non-negative integer, got {min_length!r}")
        self.min_length = min_length
        self.eos_token_id = _as_id_list(eos_token_id)
        self._eos = _TokenMask(self.eos_token_id)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] < self.min_length:
            return scores.masked_fill(self._eos.get(scores), _NEG_INF)
        return scores


class MinNewTokensLengthLogitsProcessor(LogitsProcessor):
    """Forbid EOS until ``min_new_tokens`` tokens were generated after the ``prompt_length_to_skip`` prompt."""

    def __init__(
        self,
        prompt_length_to_skip: int,
        min_new_tokens: int,
        eos_token_id: int | list[int] | torch.Tensor,
        device: str = "cpu",
    ) -> None:
        for name, value in (
            ("prompt_length_to_skip", prompt_length_to_skip),
            ("min_new_tokens", min_new_tokens),
        ):
            if not isinstance(value, int) or value < 0:
                raise ValueError(f"`{name}` has to be a non-negative integer, got {value!r}")
        self.prompt_length_to_skip = prompt_length_to_skip
        self.min_new_tokens = min_new_tokens
        self.eos_token_id = _as_id_list(eos_token_id)
        self._eos = _TokenMask(self.eos_token_id)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] - self.prompt_length_to_skip < self.min_new_tokens:
            return scores.masked_fill(self._eos.get(scores), _NEG_INF)
        return scores


class ForcedBOSTokenLogitsProcessor(LogitsProcessor):
    """Force ``bos_token_id`` as the first generated token (when the sequence has length 1)."""

    def __init__(self, bos_token_id: int) -> None:
        self.bos_token_id = bos_token_id

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] != 1:
            return scores
        forced = torch.full_like(scores, _NEG_INF)
        forced[:, self.bos_token_id] = 0
        return forced


class ForcedEOSTokenLogitsProcessor(LogitsProcessor):
    """Force an EOS token as the last token when ``max_length`` is reached."""

    def __init__(
        self, max_length: int, eos_token_id: int | list[int] | torch.Tensor, device: str = "cpu"
    ) -> None:
        self.max_length = max_length
        self.eos_token_id = _as_id_list(eos_token_id)
        if any(i < 0 for i in self.eos_token_id):
            raise ValueError(f"`eos_token_id` must be non-negative ints, got {eos_token_id!r}")

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] != self.max_length - 1:
            return scores
        forced = torch.full_like(scores, _NEG_INF)
        forced[:, self.eos_token_id] = 0
        return forced


class SuppressTokensLogitsProcessor(LogitsProcessor):
    """Set the scores of ``suppress_tokens`` to ``-inf`` at every step."""

    def __init__(self, suppress_tokens: list[int], device: str = "cpu") -> None:
        self.suppress_tokens = _as_id_list(suppress_tokens)
        self._mask = _TokenMask(self.suppress_tokens)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.masked_fill(self._mask.get(scores), _NEG_INF)


class SuppressTokensAtBeginLogitsProcessor(LogitsProcessor):
    """Set the scores of ``begin_suppress_tokens`` to ``-inf`` at the step where length == ``begin_index``."""

    def __init__(self, begin_suppress_tokens: list[int], begin_index: int, device: str = "cpu") -> None:
        self.begin_suppress_tokens = _as_id_list(begin_suppress_tokens)
        self.begin_index = begin_index
        self._mask = _TokenMask(self.begin_suppress_tokens)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[-1] == self.begin_index:
            return scores.masked_fill(self._mask.get(scores), _NEG_INF)
        return scores


class InfNanRemoveLogitsProcessor(LogitsProcessor):
    """Replace NaN by 0 and +/-inf by the dtype's largest/smallest finite value."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        scores = torch.where(scores != scores, 0.0, scores)
        info = torch.finfo(scores.dtype)
        scores = torch.where(scores == float("inf"), info.max, scores)
        return torch.where(scores == -float("inf"), info.min, scores)


class LogitNormalization(LogitsProcessor):
    """Replace the scores by their log-softmax (so they are log-probabilities again)."""

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        return scores.log_softmax(dim=-1)


class ExponentialDecayLengthPenalty(LogitsProcessor):
    """Raise the EOS score exponentially once ``start_index`` tokens were generated.

    Args:
        exponential_decay_length_penalty: ``(start_index, decay_factor)``.
        eos_token_id: EOS id(s).
        input_ids_seq_length: Prompt length (counted from the start of generation).
    """

    def __init__(
        self,
        exponential_decay_length_penalty: tuple[int, float],
        eos_token_id: int | list[int] | torch.Tensor,
        input_ids_seq_length: int,
    ) -> None:
        self.regulation_start = exponential_decay_length_penalty[0] + input_ids_seq_length
        self.regulation_factor = exponential_decay_length_penalty[1]
        self.eos_token_id = _as_id_list(eos_token_id)

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        cur_len = input_ids.shape[-1]
        if cur_len <= self.regulation_start:
            return scores
        penalty = torch.zeros_like(scores)
        eos = scores[:, self.eos_token_id]
        grow = torch.abs(eos) * (pow(self.regulation_factor, cur_len - self.regulation_start) - 1)
        penalty[:, self.eos_token_id] = grow.masked_fill(~torch.isfinite(eos), 0.0)
        return scores + penalty
