"""Losses of the task heads, with transformers' conventions (``-100`` ignored, problem types)."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def sequence_classification_loss(logits: torch.Tensor, labels: torch.Tensor, config) -> torch.Tensor:
    """Regression (MSE), single-label (cross-entropy) or multi-label (BCE) loss, in fp32.

    ``config.problem_type`` is inferred and stored when unset, as transformers does.
    """
    num_labels = config.num_labels
    if config.problem_type is None:
        if num_labels == 1:
            config.problem_type = "regression"
        elif labels.dtype in (torch.long, torch.int):
            config.problem_type = "single_label_classification"
        else:
            config.problem_type = "multi_label_classification"
    labels = labels.to(logits.device)
    if config.problem_type == "regression":
        if num_labels == 1:
            return F.mse_loss(logits.squeeze().float(), labels.squeeze().float())
        return F.mse_loss(logits.float(), labels.float())
    if config.problem_type == "single_label_classification":
        return F.cross_entropy(logits.view(-1, num_labels).float(), labels.view(-1))
    return F.binary_cross_entropy_with_logits(logits.float(), labels.float())


def token_classification_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy over the last dimension of ``logits``, one label per row of scores: every token of a
    token classifier or masked LM, every question of a multiple-choice head (the choices are the classes),
    every pair of a next-sentence head. Label ``-100`` is ignored."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1).to(logits.device))


def span_loss(start_logits: torch.Tensor, end_logits: torch.Tensor, start_positions: torch.Tensor,
              end_positions: torch.Tensor) -> torch.Tensor:
    """Question-answering loss; positions outside the sequence are ignored."""
    n = start_logits.size(1)
    start = start_positions.reshape(-1).clamp(0, n)
    end = end_positions.reshape(-1).clamp(0, n)
    return (F.cross_entropy(start_logits, start, ignore_index=n) + F.cross_entropy(end_logits, end, ignore_index=n)) / 2


def span_logits_and_loss(
    logits: torch.Tensor, start_positions: torch.Tensor | None, end_positions: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Split a question-answering head's ``(batch, seq, 2)`` logits into start and end logits, with
    :func:`span_loss` when both positions are given."""
    start_logits, end_logits = (t.squeeze(-1).contiguous() for t in logits.split(1, dim=-1))
    loss = None
    if start_positions is not None and end_positions is not None:
        loss = span_loss(start_logits, end_logits, start_positions, end_positions)
    return start_logits, end_logits, loss
