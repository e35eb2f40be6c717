"""Stopping criteria: ``(input_ids, scores) -> (batch,) bool`` telling which sequences are done."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import torch


class StoppingCriteria:
    """Base class: return a ``(batch,)`` bool tensor, ``True`` where the sequence should stop."""

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        raise NotImplementedError(f"{type(self).__name__} must implement __call__")


class MaxLengthCriteria(StoppingCriteria):
    """Stop once sequences (prompt included) reach ``max_length`` tokens."""

    def __init__(self, max_length: int, max_position_embeddings: int | None = None) -> None:
        self.max_length = max_length
        self.max_position_embeddings = max_position_embeddings

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        done = input_ids.shape[-1] >= self.max_length
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class MaxTimeCriteria(StoppingCriteria):
    """Stop once ``max_time`` seconds have passed since ``initial_timestamp`` (default: construction)."""

    def __init__(self, max_time: float, initial_timestamp: float | None = None) -> None:
        self.max_time = max_time
        self.initial_timestamp = time.time() if initial_timestamp is None else initial_timestamp

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        done = time.time() - self.initial_timestamp > self.max_time
        return torch.full((input_ids.shape[0],), done, dtype=torch.bool, device=input_ids.device)


class EosTokenCriteria(StoppingCriteria):
    """Stop a sequence whose last token is one of ``eos_token_id``."""

    def __init__(self, eos_token_id: int | list[int] | torch.Tensor) -> None:
        if not isinstance(eos_token_id, torch.Tensor):
            eos_token_id = torch.tensor(
                [eos_token_id] if isinstance(eos_token_id, int) else list(eos_token_id)
            )
        self.eos_token_id = eos_token_id

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        self.eos_token_id = self.eos_token_id.to(input_ids.device)
        return torch.isin(input_ids[:, -1], self.eos_token_id)


class StopStringCriteria(StoppingCriteria):
    """Stop a sequence when one of ``stop_strings`` appears in its text and overlaps its final token.

    Tokens may overhang the stop string on either side (``"las" + "topper"`` matches ``"stop"``), as in
    transformers. The check decodes only the last few tokens of each sequence.

    Args:
        tokenizer: Used to decode token ids to text.
        stop_strings: One string or a list of strings.
    """

    def __init__(self, tokenizer: Any, stop_strings: str | Iterable[str]) -> None:
        if tokenizer is None:
            raise ValueError("stop_strings need a tokenizer: pass `tokenizer=` to generate()")
        self.stop_strings = [stop_strings] if isinstance(stop_strings, str) else list(stop_strings)
        if not self.stop_strings or any(not isinstance(s, str) or not s for s in self.stop_strings):
            raise ValueError(f"stop_strings must be non-empty strings, got {stop_strings!r}")
        self.tokenizer = tokenizer
        # Every token decodes to at least one character in practice, so this many tokens cover any match.
        self.window = max(len(s) for s in self.stop_strings) + 1

    def _decode(self, ids: list[int]) -> str:
        return self.tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        done = []
        for row in input_ids[:, -self.window :].tolist():
            text, before = self._decode(row), self._decode(row[:-1])
            # A match must end after the text of the earlier tokens, i.e. inside the final token.
            done.append(any(text.find(s, max(0, len(before) - len(s) + 1)) != -1 for s in self.stop_strings))
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


class StoppingCriteriaList(list):
    """A list of criteria; a sequence is done when any criterion says so."""

    def __call__(
        self, input_ids: torch.LongTensor, scores: torch.FloatTensor | None, **kwargs: Any
    ) -> torch.BoolTensor:
        done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
        for criterion in self:
            done = done | criterion(input_ids, scores, **kwargs)
        return done

    @property
    def max_length(self) -> int | None:
        for criterion in self:
            if isinstance(criterion, MaxLengthCriteria):
                return criterion.max_length
        return None
