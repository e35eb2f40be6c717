"""``question-answering``: extract the answer span of a question from a context.

transformers 5 removed this task; pretrained keeps it with the transformers v4 interface and output
format: ``{"score", "start", "end", "answer"}`` where ``context[start:end] == answer``. Long contexts
are split into windows of ``max_seq_len`` tokens overlapping by ``doc_stride``; the best spans of all
windows compete.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch

from .base import ChunkPipeline


@dataclass
class SquadExample:
    """One question and its context (the fields transformers v4's ``SquadExample`` exposes to pipelines)."""

    question_text: str
    context_text: str
    qas_id: Any = None


class QuestionAnsweringArgumentHandler:
    """Turns the accepted call forms into ``SquadExample``s.

    Accepted: ``qa(question=..., context=...)`` (strings, or lists: one question per context, or many
    questions about one context), ``qa({"question", "context"})``, ``qa([dict, ...])``,
    ``qa(SquadExample)`` and ``qa(question_str, context_str)``.
    """

    def normalize(self, item: Any) -> SquadExample:
        if isinstance(item, SquadExample):
            item = {"question": item.question_text, "context": item.context_text}
        if not isinstance(item, dict):
            raise ValueError(f"{item!r:.80} argument needs to be of type (SquadExample, dict)")
        for key in ("question", "context"):
            if key not in item:
                raise KeyError("You need to provide a dictionary with keys {question:..., context:...}")
            if item[key] is None:
                raise ValueError(f"`{key}` cannot be None")
            if not isinstance(item[key], str):
                raise TypeError(f"`{key}` must be a string, got {type(item[key]).__name__}.")
            if not item[key].strip():
                raise ValueError(f"`{key}` cannot be empty")
        return SquadExample(item["question"], item["context"])

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if args:
            if len(args) == 1:
                inputs = args[0]
            elif len(args) == 2 and all(isinstance(a, str) for a in args):
                inputs = [{"question": args[0], "context": args[1]}]
            else:
                inputs = list(args)
        elif "question" in kwargs and "context" in kwargs:
            question, context = kwargs["question"], kwargs["context"]
            if isinstance(question, list) and isinstance(context, str):
                inputs = [{"question": q, "context": context} for q in question]
            elif isinstance(question, list) and isinstance(context, list):
                if len(question) != len(context):
                    raise ValueError("Questions and contexts don't have the same lengths")
                inputs = [{"question": q, "context": c} for q, c in zip(question, context)]
            elif isinstance(question, str) and isinstance(context, str):
                inputs = [{"question": question, "context": context}]
            else:
                raise ValueError("Arguments can't be understood: question and context must be strings or lists.")
        else:
            raise ValueError("question-answering needs question=... and context=... (or {question, context} dicts).")
        if isinstance(inputs, (dict, SquadExample)):
            return [self.normalize(inputs)]
        if isinstance(inputs, list):
            if not inputs:
                raise ValueError("The question-answering pipeline received an empty list.")
            return [self.normalize(x) for x in inputs]
        if isinstance(inputs, Iterable) and not isinstance(inputs, str):
            return (self.normalize(x) for x in inputs)  # a stream stays lazy
        raise ValueError(f"Invalid arguments for question-answering: {inputs!r:.80}")


class QuestionAnsweringPipeline(ChunkPipeline):
    """Extractive question answering with ``...ForQuestionAnswering`` models (transformers v4 interface).

    Call parameters: ``top_k`` (default 1; a list of answers when > 1), ``doc_stride`` (default
    ``min(max_seq_len // 2, 128)``), ``max_answer_len`` (tokens, default 15), ``max_seq_len`` (default
    ``min(model_max_length, 384)``), ``max_question_len`` (accepted, unused by fast tokenizers as in v4),
    ``handle_impossible_answer`` (also consider the empty answer, scored by the CLS token),
    ``align_to_words`` (widen spans to whole words, default True), ``padding``.
    """

    _many_row_batches = True  # see Pipeline._many_rows

    _model_tasks = ("question_answering",)
    default_input_names = "question,context"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._args_parser = QuestionAnsweringArgumentHandler()
        super().__init__(*args, **kwargs)

    @staticmethod
    def create_sample(question: str | list[str], context: str | list[str]) -> SquadExample | list[SquadExample]:
        if isinstance(question, list):
            return [SquadExample(q, c) for q, c in zip(question, context)]
        return SquadExample(question, context)

    def _sanitize_parameters(self, padding: Any = None, topk: int | None = None, top_k: int | None = None,
                             doc_stride: int | None = None, max_answer_len: int | None = None,
                             max_seq_len: int | None = None, max_question_len: int | None = None,
                             handle_impossible_answer: bool | None = None, align_to_words: bool | None = None,
                             **kwargs: Any):
        if kwargs:
            raise TypeError(f"question-answering got unexpected parameter(s) {sorted(kwargs)}.")
        pre: dict[str, Any] = {}
        for name, value in (("padding", padding), ("doc_stride", doc_stride), ("max_question_len", max_question_len),
                            ("max_seq_len", max_seq_len)):
            if value is not None:
                pre[name] = value
        post: dict[str, Any] = {}
        top_k = top_k if top_k is not None else topk
        if top_k is not None:
            if top_k < 1:
                raise ValueError(f"top_k parameter should be >= 1 (got {top_k})")
            post["top_k"] = top_k
        if max_answer_len is not None:
            if max_answer_len < 1:
                raise ValueError(f"max_answer_len parameter should be >= 1 (got {max_answer_len})")
            post["max_answer_len"] = max_answer_len
        if handle_impossible_answer is not None:
            post["handle_impossible_answer"] = handle_impossible_answer
        if align_to_words is not None:
            post["align_to_words"] = align_to_words
        return pre, {}, post

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Answer one question (a dict for ``top_k=1``, else a list), or each of a list / stream of them."""
        kwargs.pop("X", None), kwargs.pop("data", None)
        call_kwargs = {k: v for k, v in kwargs.items() if k not in ("question", "context")}
        examples = self._args_parser(*args, **{k: v for k, v in kwargs.items() if k in ("question", "context")})
        if isinstance(examples, list) and len(examples) == 1:
            return super().__call__(examples[0], **call_kwargs)
        return super().__call__(examples, **call_kwargs)

    def preprocess(self, example: SquadExample, padding: Any = "do_not_pad", doc_stride: int | None = None,
                   max_question_len: int = 64, max_seq_len: int | None = None) -> Any:
        if not isinstance(example, SquadExample):
            example = self._args_parser.normalize(example)
        if max_seq_len is None:
            max_seq_len = min(self.tokenizer.model_max_length, 384)
        if doc_stride is None:
            doc_stride = min(max_seq_len // 2, 128)
        if doc_stride > max_seq_len:
            raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")
        question_first = self.tokenizer.padding_side == "right"
        # The tokenizer library panics when a window has no room beyond the stride; say why instead.
        question_tokens = len(self.tokenizer(example.question_text, add_special_tokens=False)["input_ids"])
        room = max_seq_len - question_tokens - self.tokenizer.num_special_tokens_to_add(pair=True)
        if room <= doc_stride:
            raise ValueError(
                f"The question is too long for the context windows: it takes {question_tokens} of the "
                f"max_seq_len={max_seq_len} tokens, leaving {max(room, 0)} for the context, which must exceed "
                f"doc_stride={doc_stride}. Shorten the question, or pass a larger max_seq_len or a smaller doc_stride."
            )
        encoded = self.tokenizer(
            text=example.question_text if question_first else example.context_text,
            text_pair=example.context_text if question_first else example.question_text,
            padding=padding,
            truncation="only_second" if question_first else "only_first",
            max_length=max_seq_len,
            stride=doc_stride,
            return_token_type_ids=True,
            return_overflowing_tokens=True,
            return_offsets_mapping=True,
            return_special_tokens_mask=True,
        )
        context_index = 1 if question_first else 0
        spans = len(encoded["input_ids"])
        names = set(self.tokenizer.model_input_names) | {"token_type_ids"}
        for i in range(spans):
            sequence_ids = encoded.sequence_ids(i)
            # p_mask: 1 where a token cannot be part of the answer (question, special tokens); the CLS
            # token stays allowed because some models use it to say "no answer".
            ids = encoded["input_ids"][i]
            cls = self.tokenizer.cls_token_id
            p_mask = torch.tensor([[int(s != context_index and t != cls) for s, t in zip(sequence_ids, ids)]])
            # windows differ in length (the last is shorter): one tensor per window
            model_inputs = {k: torch.tensor([v[i]]) for k, v in encoded.items() if k in names}
            yield {
                **model_inputs,
                "p_mask": p_mask,
                "offsets": torch.tensor([encoded["offset_mapping"][i]]),
                "word_ids": encoded.word_ids(i),
                "sequence_ids": sequence_ids,
                "example": example if i == 0 else None,
                "is_last": i == spans - 1,
            }

    def _forward(self, inputs: dict[str, Any]) -> dict[str, Any]:
        names = set(self.tokenizer.model_input_names) | {"token_type_ids"}
        model_inputs = {k: v for k, v in inputs.items() if k in names}
        if "token_type_ids" in model_inputs and "token_type_ids" not in self.tokenizer.model_input_names:
            model_inputs.pop("token_type_ids")
        out = self.model(**model_inputs)
        extra = {k: v for k, v in inputs.items() if k not in model_inputs or k == "attention_mask"}
        return {"start": out["start_logits"], "end": out["end_logits"], **extra}

    def postprocess(self, all_outputs: list[dict[str, Any]], top_k: int = 1, handle_impossible_answer: bool = False,
                    max_answer_len: int = 15, align_to_words: bool = True) -> Any:
        example = all_outputs[0]["example"]
        min_null_score = 1000000.0
        answers = []
        left = self.tokenizer.padding_side == "left"
        for out in all_outputs:
            # Batching padded this window's tensors; keep the positions of its own tokens.
            n = len(out["sequence_ids"])
            keep = slice(-n, None) if left else slice(0, n)
            start_logits, end_logits = out["start"][0, keep].float(), out["end"][0, keep].float()
            allowed = out["p_mask"][0, keep] == 0
            if out.get("attention_mask") is not None:
                allowed &= out["attention_mask"][0, keep].bool()
            starts, ends, scores, null = select_starts_ends(
                start_logits, end_logits, allowed, top_k, handle_impossible_answer, max_answer_len)
            min_null_score = min(min_null_score, null)
            offsets = out["offsets"][0, keep].tolist()
            for s, e, score in zip(starts, ends, scores):
                start, end = self._char_span(s, e, offsets, out["word_ids"], out["sequence_ids"], example,
                                             align_to_words)
                answers.append({"score": score, "start": start, "end": end,
                                "answer": example.context_text[start:end]})
        if handle_impossible_answer:
            answers.append({"score": min_null_score, "start": 0, "end": 0, "answer": ""})
        answers = sorted(answers, key=lambda a: a["score"], reverse=True)[:top_k]
        if len(answers) == 1:
            return answers[0]
        return answers

    def _char_span(self, s: int, e: int, offsets: list[list[int]], word_ids: list[int | None],
                   sequence_ids: list[int | None], example: SquadExample, align_to_words: bool) -> tuple[int, int]:
        """Character span in the context of tokens ``s..e``; widened to whole words when asked."""
        start, end = offsets[s][0], offsets[e][1]
        if not align_to_words or word_ids[s] is None or word_ids[e] is None:
            return start, end
        # A word's characters: from the first to the last token of the context sharing its word id.
        same = [i for i, (w, q) in enumerate(zip(word_ids, sequence_ids)) if q == sequence_ids[s] and w == word_ids[s]]
        start = offsets[same[0]][0]
        same = [i for i, (w, q) in enumerate(zip(word_ids, sequence_ids)) if q == sequence_ids[e] and w == word_ids[e]]
        end = offsets[same[-1]][1]
        return start, end


def select_starts_ends(start: torch.Tensor, end: torch.Tensor, allowed: torch.Tensor, top_k: int,
                       handle_impossible_answer: bool = False,
                       max_answer_len: int = 15) -> tuple[list[int], list[int], list[float], float]:
    """Best ``top_k`` (start, end) token pairs by ``P(start) * P(end)``, with end >= start and length limits.

    Logits of disallowed tokens are set to -10000 before the softmax, as transformers v4 does. Returns
    the starts, ends, scores and the null score (``P(start=0) * P(end=0)``, the CLS "no answer").
    """
    start = torch.where(allowed, start, torch.tensor(-10000.0)).softmax(-1)
    end = torch.where(allowed, end, torch.tensor(-10000.0)).softmax(-1)
    null = float(start[0] * end[0]) if handle_impossible_answer else 1000000.0
    start[0] = end[0] = 0.0  # the CLS token is never a span
    starts, ends, scores = decode_spans(start, end, top_k, max_answer_len, allowed)
    return starts, ends, scores, null


def decode_spans(start: torch.Tensor, end: torch.Tensor, top_k: int, max_answer_len: int,
                 allowed: torch.Tensor) -> tuple[list[int], list[int], list[float]]:
    """The ``top_k`` best spans of the outer product of start and end probabilities."""
    n = start.shape[-1]
    outer = start[:, None] * end[None, :]  # (n, n): rows are starts, columns ends
    # keep end >= start and end - start < max_answer_len
    candidates = torch.tril(torch.triu(outer), max_answer_len - 1)
    flat = candidates.flatten()
    k = min(top_k, flat.numel())
    order = torch.topk(flat, k).indices if k < flat.numel() else torch.argsort(flat, descending=True)
    starts, ends, scores = [], [], []
    for index in order.tolist():
        s, e = divmod(index, n)
        if allowed[s] and allowed[e]:
            starts.append(s)
            ends.append(e)
            scores.append(float(candidates[s, e]))
    return starts, ends, scores
