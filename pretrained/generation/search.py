"""The decoding loops of ``generate``: greedy decoding / sampling (:func:`sample`) and beam search
(:func:`beam_search`), each driving a :class:`~pretrained.generation.runner.Runner` one token at a time.

Both write tokens into preallocated buffers and sync with the host at most once per token (to stop early).
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
import torch.nn.functional as F

from pretrained.generation.configuration_utils import GenerationConfig
from pretrained.generation.logits_process import LogitsProcessorList
from pretrained.generation.outputs import GenerateBeamDecoderOnlyOutput, GenerateDecoderOnlyOutput
from pretrained.generation.runner import Runner
from pretrained.generation.stopping_criteria import StoppingCriteriaList


def _step_attentions(out: Any) -> Any:
    """A step's attention weights: a decoder's, or an encoder-decoder's ``(decoder, cross)`` pair."""
    if hasattr(out, "cross_attentions"):
        return out.decoder_attentions, out.cross_attentions
    return out.attentions


class _StepScores:
    """What ``return_dict_in_generate`` keeps of each step when asked for: the processed ``scores`` and the
    raw ``logits`` (``None`` where not asked for)."""

    def __init__(self, config: GenerationConfig) -> None:
        want = config.return_dict_in_generate
        self.scores: list[torch.Tensor] | None = [] if want and config.output_scores else None
        self.logits: list[torch.Tensor] | None = [] if want and config.output_logits else None

    def add(self, logits: torch.Tensor, scores: torch.Tensor) -> None:
        if self.logits is not None:
            self.logits.append(logits)
        if self.scores is not None:
            self.scores.append(scores)

    def fields(self) -> dict[str, tuple[torch.Tensor, ...] | None]:
        """The ``scores`` and ``logits`` fields of a generate output."""
        return {"scores": tuple(self.scores) if self.scores is not None else None,
                "logits": tuple(self.logits) if self.logits is not None else None}


class Search(NamedTuple):
    """What both decoding loops start from."""

    runner: Runner
    config: GenerationConfig
    input_ids: torch.Tensor
    processors: LogitsProcessorList
    criteria: StoppingCriteriaList
    eos: list[int] | None
    pad: int | None


def sample(search: Search, streamer: Any) -> torch.Tensor | GenerateDecoderOnlyOutput:
    """Greedy decoding or multinomial sampling (``config.do_sample``)."""
    runner, config, input_ids, processors, criteria, eos, pad = search
    batch, prompt_len = input_ids.shape
    max_length = config.max_length
    device = input_ids.device
    sequences = torch.empty(batch, max_length, dtype=torch.long, device=device)
    sequences[:, :prompt_len] = input_ids
    unfinished = torch.ones(batch, dtype=torch.bool, device=device)
    eos_tensor = torch.tensor(eos, device=device) if eos else None
    want_dict = config.return_dict_in_generate
    recorded = _StepScores(config)
    attns: list[Any] | None = [] if want_dict and config.output_attentions else None
    hiddens: list[Any] | None = [] if want_dict and config.output_hidden_states else None
    if streamer is not None:
        streamer.put(input_ids.cpu())

    out = runner.prefill(input_ids)
    cur = prompt_len
    while True:
        logits = runner.last_logits(out, device)
        if attns is not None:
            attns.append(_step_attentions(out))
        if hiddens is not None:
            hiddens.append(getattr(out, "hidden_states", None) or out.decoder_hidden_states)
        seen = sequences[:, :cur]
        next_scores = processors(seen, logits) if processors else logits
        recorded.add(logits, next_scores)
        if config.do_sample:
            tokens = torch.multinomial(next_scores.softmax(dim=-1), num_samples=1).squeeze(1)
        else:
            tokens = next_scores.argmax(dim=-1)
        if eos_tensor is not None:
            tokens = torch.where(unfinished, tokens, pad)
        sequences[:, cur] = tokens
        cur += 1
        if streamer is not None:
            streamer.put(tokens.cpu())
        if eos_tensor is not None:
            unfinished &= ~torch.isin(tokens, eos_tensor)
        if criteria:
            unfinished &= ~criteria(sequences[:, :cur], next_scores)
        if cur >= max_length:
            break
        if (eos_tensor is not None or criteria) and not bool(unfinished.any()):
            break  # the one host sync per token, and only when something can stop early
        out = runner.step(tokens[:, None])
    if streamer is not None:
        streamer.end()
    sequences = sequences[:, :cur]
    if not want_dict:
        return sequences
    return GenerateDecoderOnlyOutput(
        sequences=sequences,
        **recorded.fields(),
        attentions=tuple(attns) if attns is not None else None,
        hidden_states=tuple(hiddens) if hiddens is not None else None,
        past_key_values=runner.cache,
    )


def beam_search(search: Search, num_beams: int) -> torch.Tensor | GenerateBeamDecoderOnlyOutput:
    """Beam search (or beam sampling), with the same bookkeeping and tie-breaking as transformers.

    Each step keeps the ``K = max(2, 1 + n_eos) * num_beams`` best continuations over all beams, so that
    ``num_beams`` unfinished ones remain even if the best ones end. Finished hypotheses are scored with
    ``logprob / generated_len ** length_penalty`` and the best ``num_beams`` kept per prompt.
    """
    runner, config, input_ids, processors, criteria, eos, pad = search
    flat, prompt_len = input_ids.shape
    batch = flat // num_beams
    max_length = config.max_length
    device = input_ids.device
    length_penalty = config.length_penalty
    early_stopping = config.early_stopping
    num_return = config.num_return_sequences or 1
    keep = max(2, 1 + len(eos or ())) * num_beams
    first_beams = torch.zeros(keep, dtype=torch.bool, device=device)
    first_beams[:num_beams] = True
    eos_tensor = torch.tensor(eos, device=device) if eos else None
    # Same filler as transformers for positions after a hypothesis ended.
    fill = (pad or eos[0]) if eos else -1

    running = torch.full((batch, num_beams, max_length), fill, dtype=torch.long, device=device)
    running[:, :, :prompt_len] = input_ids.view(batch, num_beams, prompt_len)
    finished_seqs = running.clone()
    running_scores = torch.zeros(batch, num_beams, device=device)
    running_scores[:, 1:] = -1e9  # only the first beam expands at the first step (they are identical)
    finished_scores = torch.full((batch, num_beams), -1e9, device=device)
    is_finished = torch.zeros(batch, num_beams, dtype=torch.bool, device=device)
    can_improve = torch.ones(batch, 1, dtype=torch.bool, device=device)
    running_beam_idx = torch.full(
        (batch, num_beams, max_length - prompt_len), -1, dtype=torch.int32, device=device
    )
    finished_beam_idx = running_beam_idx.clone()
    batch_offset = torch.arange(batch, device=device).view(-1, 1) * num_beams
    recorded = _StepScores(config)

    def gather(t: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
        while idx.dim() < t.dim():
            idx = idx.unsqueeze(-1)
        return torch.take_along_dim(t, idx, dim=1)

    out = runner.prefill(input_ids, repeat=num_beams)
    cur = prompt_len
    while True:
        logits = runner.last_logits(out, device)
        del out
        log_probs = F.log_softmax(logits, dim=-1)
        log_probs = processors(running[:, :, :cur].reshape(flat, cur), log_probs) if processors else log_probs
        recorded.add(logits, log_probs)
        vocab = log_probs.shape[-1]
        total = (log_probs.view(batch, num_beams, vocab) + running_scores[:, :, None]).view(batch, -1)

        # Best K continuations over all beams of each prompt.
        if config.do_sample:
            top_idx = torch.multinomial(total.softmax(dim=-1), num_samples=keep)
            top_scores = total.gather(1, top_idx)
            top_scores, order = top_scores.sort(dim=-1, descending=True)
            top_idx = top_idx.gather(-1, order)
        else:
            top_scores, top_idx = torch.topk(total, k=keep)
        src_beam = top_idx // vocab
        top_tokens = top_idx % vocab
        top_seqs = gather(running, src_beam)
        top_seqs[:, :, cur] = top_tokens
        top_beam_idx = gather(running_beam_idx, src_beam)
        top_beam_idx[:, :, cur - prompt_len] = (src_beam + batch_offset).to(top_beam_idx.dtype)

        # Which candidates end here (EOS, max length, user criteria).
        if eos_tensor is not None:
            ended = torch.isin(top_tokens, eos_tensor)
        else:
            ended = torch.zeros_like(top_tokens, dtype=torch.bool)
        if cur + 1 >= max_length:
            ended = torch.ones_like(ended)
        if criteria:
            ended = ended | criteria(top_seqs[:, :, : cur + 1].reshape(batch * keep, cur + 1), None).view(
                batch, keep
            )

        # Continue with the best num_beams candidates that did not end.
        alive_scores = top_scores + ended.float() * -1e9
        next_idx = torch.topk(alive_scores, k=num_beams)[1]
        running = gather(top_seqs, next_idx)
        running_scores = gather(alive_scores, next_idx)
        running_beam_idx = gather(top_beam_idx, next_idx)

        # Candidates among the first num_beams that ended become finished hypotheses if good enough.
        just_ended = ended & first_beams[None, :]
        final_scores = top_scores / ((cur + 1 - prompt_len) ** length_penalty)
        full = torch.all(is_finished, dim=-1, keepdim=True) & (early_stopping is True)
        final_scores = final_scores + full.float() * -1e9
        final_scores = final_scores + (~can_improve).float() * -1e9
        final_scores = final_scores + (~just_ended) * -1e9
        merged_scores = torch.cat((finished_scores, final_scores), dim=1)
        best = torch.topk(merged_scores, k=num_beams)[1]
        finished_seqs = gather(torch.cat((finished_seqs, top_seqs), dim=1), best)
        finished_scores = gather(merged_scores, best)
        finished_beam_idx = gather(torch.cat((finished_beam_idx, top_beam_idx), dim=1), best)
        is_finished = gather(torch.cat((is_finished, just_ended), dim=1), best)

        cur += 1
        # Could a running beam still beat the worst finished hypothesis?
        if early_stopping == "never" and length_penalty > 0.0:
            best_len = max_length - prompt_len
        else:
            best_len = cur - prompt_len
        best_running = running_scores[:, :1] / (best_len**length_penalty)
        worst_done = torch.where(is_finished, finished_scores.min(dim=1, keepdim=True)[0], -1.0e9)
        can_improve = can_improve & torch.any(best_running > worst_done, dim=-1, keepdim=True)
        going = can_improve.any() & ~ended.all()
        if early_stopping is True:
            going = going & ~is_finished.all()
        if not bool(going):  # one host sync per step
            break
        # The cache follows the beams that survived. An encoder-decoder's cross-attention cache is left as it
        # is: the beams of a row share its encoder output, and beams never move to another row.
        cache = getattr(runner.cache, "self_attention_cache", runner.cache)
        cache.reorder_cache(running_beam_idx[:, :, cur - 1 - prompt_len].reshape(-1).long())
        out = runner.step(running[:, :, cur - 1].reshape(flat, 1))

    sequences = finished_seqs[:, :num_return].reshape(batch * num_return, max_length)
    seq_scores = finished_scores[:, :num_return].reshape(-1)
    beam_idx = finished_beam_idx[:, :num_return].reshape(batch * num_return, -1)
    generated = int((beam_idx + 1).bool().sum(dim=1).max())
    sequences = sequences[:, : prompt_len + generated]
    beam_idx = beam_idx[:, :generated]
    if not config.return_dict_in_generate:
        return sequences
    return GenerateBeamDecoderOnlyOutput(
        sequences=sequences,
        sequences_scores=seq_scores if config.output_scores else None,
        **recorded.fields(),
        beam_indices=beam_idx,
        past_key_values=runner.cache,
    )
