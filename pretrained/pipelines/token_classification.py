"""``token-classification`` (alias ``ner``): a label per token, optionally grouped into entities."""

from __future__ import annotations

import enum
import warnings
from typing import Any

import torch

from .base import ChunkPipeline


class AggregationStrategy(enum.Enum):
    """How tokens are merged: ``none`` (one result per token), ``simple`` (adjacent tokens with the same
    entity), ``first`` / ``average`` / ``max`` (first word-level agreement, then grouping)."""

    NONE = "none"
    SIMPLE = "simple"
    FIRST = "first"
    AVERAGE = "average"
    MAX = "max"


_WORD_LEVEL = (AggregationStrategy.FIRST, AggregationStrategy.AVERAGE, AggregationStrategy.MAX)


class TokenClassificationArgumentHandler:
    """Checks the inputs: one text, a list of texts, or pre-split words with ``is_split_into_words=True``."""

    def __call__(self, inputs: Any, **kwargs: Any) -> tuple[Any, bool, Any, str | None]:
        is_split = bool(kwargs.get("is_split_into_words", False))
        delimiter = kwargs.get("delimiter")
        if isinstance(inputs, list) and not inputs:
            raise ValueError("The token-classification pipeline received an empty list; pass at least one text.")
        if isinstance(inputs, list) and not is_split:
            for x in inputs:
                if not isinstance(x, str):
                    raise TypeError(f"token-classification expects text (str) inputs, got {type(x).__name__}.")
        elif not isinstance(inputs, (str, list)) and not is_split and not _is_iterable(inputs):
            raise TypeError(f"token-classification expects text (str) inputs, got {type(inputs).__name__}.")
        offset_mapping = kwargs.get("offset_mapping")
        if offset_mapping is not None and isinstance(inputs, list) and not is_split and len(inputs) > 1:
            raise ValueError("offset_mapping can be given for a single text only.")
        return inputs, is_split, offset_mapping, delimiter


def _is_iterable(x: Any) -> bool:
    return hasattr(x, "__iter__") and not isinstance(x, (str, bytes, dict))


class TokenClassificationPipeline(ChunkPipeline):
    """Named-entity recognition (and any token labelling) with ``...ForTokenClassification`` models.

    Results per text: with ``aggregation_strategy="none"`` one dict per token
    ``{"entity", "score", "index", "word", "start", "end"}``; otherwise one per entity
    ``{"entity_group", "score", "word", "start", "end"}``. Labels in ``ignore_labels`` (default
    ``["O"]``) are dropped. ``stride`` splits long texts into overlapping windows whose entities are
    merged. ``is_split_into_words=True`` takes lists of words (joined with ``delimiter``, default a space).
    """

    _many_row_batches = True  # see Pipeline._many_rows

    _model_tasks = ("token_classification",)

    def __init__(self, *args: Any, args_parser: Any = None, **kwargs: Any) -> None:
        self._args_parser = args_parser or TokenClassificationArgumentHandler()
        super().__init__(*args, **kwargs)

    def _sanitize_parameters(self, ignore_labels: list[str] | None = None, aggregation_strategy: Any = None,
                             offset_mapping: list[tuple[int, int]] | None = None, is_split_into_words: bool = False,
                             stride: int | None = None, delimiter: str | None = None):
        pre: dict[str, Any] = {"is_split_into_words": is_split_into_words}
        if is_split_into_words:
            pre["delimiter"] = " " if delimiter is None else delimiter
        if offset_mapping is not None:
            pre["offset_mapping"] = offset_mapping
        post: dict[str, Any] = {}
        if aggregation_strategy is not None:
            if isinstance(aggregation_strategy, str):
                try:
                    aggregation_strategy = AggregationStrategy[aggregation_strategy.upper()]
                except KeyError:
                    raise ValueError(f"Unknown aggregation_strategy {aggregation_strategy!r}; use one of "
                                     f"{[s.value for s in AggregationStrategy]}.") from None
            post["aggregation_strategy"] = aggregation_strategy
        if ignore_labels is not None:
            post["ignore_labels"] = ignore_labels
        if stride is not None:
            if stride >= self.tokenizer.model_max_length:
                raise ValueError("`stride` must be less than `tokenizer.model_max_length` (or even lower if the "
                                 "tokenizer adds special tokens)")
            if aggregation_strategy in (None, AggregationStrategy.NONE):
                raise ValueError("`stride` was provided to process all the text but `aggregation_strategy="
                                 f'"{aggregation_strategy}"`, please select another one instead.')
            pre["tokenizer_params"] = {"return_overflowing_tokens": True, "padding": True, "stride": stride}
        return pre, {}, post

    def __call__(self, inputs: Any = None, **kwargs: Any) -> Any:
        """Label the tokens of one text, a list of texts, or a stream of texts."""
        inputs, is_split, offset_mapping, delimiter = self._args_parser(inputs, **kwargs)
        kwargs["is_split_into_words"] = is_split
        kwargs["delimiter"] = delimiter
        if is_split and isinstance(inputs, list) and not all(isinstance(x, list) for x in inputs):
            return super().__call__([inputs], **kwargs)  # one pre-split text
        if offset_mapping:
            kwargs["offset_mapping"] = offset_mapping
        return super().__call__(inputs, **kwargs)

    def preprocess(self, sentence: Any, offset_mapping: Any = None, **params: Any) -> Any:
        tokenizer_params = dict(params.pop("tokenizer_params", {}))
        truncation = bool(self.tokenizer.model_max_length and self.tokenizer.model_max_length > 0)
        word_to_chars = None
        if params.get("is_split_into_words"):
            if not isinstance(sentence, list) or not all(isinstance(w, str) for w in sentence):
                raise ValueError("When `is_split_into_words=True`, `sentence` must be a list of tokens.")
            delimiter = params["delimiter"]
            words = sentence
            sentence = delimiter.join(words)
            word_to_chars, position = [], 0
            for word in words:
                word_to_chars.append((position, position + len(word)))
                position += len(word) + len(delimiter)
            text: Any = words
            tokenizer_params["is_split_into_words"] = True
        else:
            if not isinstance(sentence, str):
                raise ValueError("When `is_split_into_words=False`, `sentence` must be an untokenized string.")
            text = sentence
        inputs = self.tokenizer(text, return_tensors="pt", truncation=truncation, return_special_tokens_mask=True,
                                return_offsets_mapping=True, **tokenizer_params)
        inputs.pop("overflow_to_sample_mapping", None)
        chunks = len(inputs["input_ids"])
        for i in range(chunks):
            model_inputs: dict[str, Any] = {k: v[i].unsqueeze(0) for k, v in inputs.items()}
            if offset_mapping is not None:
                model_inputs["offset_mapping"] = torch.tensor([offset_mapping])
            model_inputs["sentence"] = sentence if i == 0 else None
            model_inputs["is_last"] = i == chunks - 1
            if word_to_chars is not None:
                model_inputs["word_ids"] = inputs.word_ids(i)
                model_inputs["word_to_chars_map"] = word_to_chars
            yield model_inputs

    def _forward(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        extra = {k: model_inputs.pop(k) for k in ("special_tokens_mask", "offset_mapping", "sentence", "is_last",
                                                  "word_ids", "word_to_chars_map") if k in model_inputs}
        logits = self.model(**model_inputs)["logits"]
        return {"logits": logits, **extra, **model_inputs}

    def postprocess(self, all_outputs: list[dict[str, Any]],
                    aggregation_strategy: AggregationStrategy = AggregationStrategy.NONE,
                    ignore_labels: list[str] | None = None) -> list[dict[str, Any]]:
        ignore_labels = ["O"] if ignore_labels is None else ignore_labels
        sentence = all_outputs[0]["sentence"]
        word_to_chars = all_outputs[0].get("word_to_chars_map")
        entities: list[dict[str, Any]] = []
        for out in all_outputs:
            scores = out["logits"][0].float().softmax(-1)
            offsets = out.get("offset_mapping")
            pre = self.gather_pre_entities(
                sentence, out["input_ids"][0].tolist(), scores, None if offsets is None else offsets[0].tolist(),
                out["special_tokens_mask"][0].tolist(), aggregation_strategy,
                word_ids=out.get("word_ids"), word_to_chars_map=word_to_chars,
            )
            for entity in self.aggregate(pre, aggregation_strategy):
                label = entity.get("entity", entity.get("entity_group"))
                if label not in ignore_labels:
                    entities.append(entity)
        if len(all_outputs) > 1:
            entities = self.aggregate_overlapping_entities(entities)
        return entities

    # --- steps shared with transformers' public method names ---------------------------------------------
    def aggregate_overlapping_entities(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Of entities that overlap (from overlapping windows), keep the longest, then the highest-scoring."""
        if not entities:
            return entities
        entities = sorted(entities, key=lambda e: e["start"])
        kept: list[dict[str, Any]] = []
        previous = entities[0]
        for entity in entities:
            if previous["start"] <= entity["start"] < previous["end"]:
                length, previous_length = entity["end"] - entity["start"], previous["end"] - previous["start"]
                if length > previous_length or (length == previous_length and entity["score"] > previous["score"]):
                    previous = entity
            else:
                kept.append(previous)
                previous = entity
        kept.append(previous)
        return kept

    def gather_pre_entities(self, sentence: str, input_ids: list[int], scores: torch.Tensor,
                            offset_mapping: list[list[int]] | None, special_tokens_mask: list[int],
                            aggregation_strategy: AggregationStrategy, word_ids: list[int | None] | None = None,
                            word_to_chars_map: list[tuple[int, int]] | None = None) -> list[dict[str, Any]]:
        """One dict per non-special token: word piece, scores, character span, whether it continues a word."""
        tokens = self.tokenizer.convert_ids_to_tokens(input_ids)
        backend = getattr(self.tokenizer, "_tokenizer", None)
        has_prefix = backend is not None and getattr(backend.model, "continuing_subword_prefix", None)
        unk = self.tokenizer.unk_token_id
        pre = []
        for idx, token_scores in enumerate(scores):
            if special_tokens_mask[idx]:
                continue
            word = tokens[idx]
            if offset_mapping is not None:
                start, end = offset_mapping[idx]
                if word_ids is not None and word_to_chars_map is not None and word_ids[idx] is not None:
                    shift = word_to_chars_map[word_ids[idx]][0]  # offsets are relative to each pre-split word
                    start, end = start + shift, end + shift
                word_ref = sentence[start:end]
                if has_prefix:
                    is_subword = len(word) != len(word_ref)
                else:
                    if aggregation_strategy in _WORD_LEVEL:
                        warnings.warn("Tokenizer does not support real words, using fallback heuristic",
                                      UserWarning, stacklevel=2)
                    is_subword = start > 0 and " " not in sentence[start - 1:start + 1]
                if input_ids[idx] == unk:
                    word, is_subword = word_ref, False
            else:
                start = end = None
                is_subword = False
            pre.append({"word": word, "scores": token_scores, "start": start, "end": end, "index": idx,
                        "is_subword": is_subword})
        return pre

    def aggregate(self, pre_entities: list[dict[str, Any]],
                  aggregation_strategy: AggregationStrategy) -> list[dict[str, Any]]:
        if aggregation_strategy in (AggregationStrategy.NONE, AggregationStrategy.SIMPLE):
            id2label = self.model.config.id2label
            entities = []
            for pre in pre_entities:
                score, idx = pre["scores"].max(-1)
                entities.append({"entity": id2label[int(idx)], "score": float(score), "index": pre["index"],
                                 "word": pre["word"], "start": pre["start"], "end": pre["end"]})
        else:
            entities = self.aggregate_words(pre_entities, aggregation_strategy)
        if aggregation_strategy == AggregationStrategy.NONE:
            return entities
        return self.group_entities(entities)

    def aggregate_word(self, entities: list[dict[str, Any]], aggregation_strategy: AggregationStrategy) -> dict:
        """Merge the pieces of one word into one labelled word."""
        word = self.tokenizer.convert_tokens_to_string([e["word"] for e in entities])
        if aggregation_strategy == AggregationStrategy.FIRST:
            scores = entities[0]["scores"]
        elif aggregation_strategy == AggregationStrategy.MAX:
            scores = max(entities, key=lambda e: float(e["scores"].max()))["scores"]
        elif aggregation_strategy == AggregationStrategy.AVERAGE:
            scores = torch.stack([e["scores"] for e in entities]).nanmean(0)
        else:
            raise ValueError("Invalid aggregation_strategy")
        score, idx = scores.max(-1)
        return {"entity": self.model.config.id2label[int(idx)], "score": float(score), "word": word,
                "start": entities[0]["start"], "end": entities[-1]["end"]}

    def aggregate_words(self, entities: list[dict[str, Any]],
                        aggregation_strategy: AggregationStrategy) -> list[dict[str, Any]]:
        """Make the pieces of each word agree on one label (``first`` / ``average`` / ``max``)."""
        if aggregation_strategy in (AggregationStrategy.NONE, AggregationStrategy.SIMPLE):
            raise ValueError("NONE and SIMPLE strategies are invalid for word aggregation")
        words: list[dict[str, Any]] = []
        group: list[dict[str, Any]] = []
        for entity in entities:
            if group and not entity["is_subword"]:
                words.append(self.aggregate_word(group, aggregation_strategy))
                group = []
            group.append(entity)
        if group:
            words.append(self.aggregate_word(group, aggregation_strategy))
        return words

    def group_sub_entities(self, entities: list[dict[str, Any]]) -> dict[str, Any]:
        """One entity from adjacent tokens (or words) of the same type."""
        scores = torch.tensor([e["score"] for e in entities], dtype=torch.float32)
        return {
            "entity_group": entities[0]["entity"].split("-", 1)[-1],
            "score": float(scores.nanmean()),
            "word": self.tokenizer.convert_tokens_to_string([e["word"] for e in entities]),
            "start": entities[0]["start"],
            "end": entities[-1]["end"],
        }

    def get_tag(self, entity_name: str) -> tuple[str, str]:
        """``"B-PER"`` → ``("B", "PER")``; a label without a B-/I- prefix counts as inside."""
        if entity_name.startswith(("B-", "I-")):
            return entity_name[0], entity_name[2:]
        return "I", entity_name

    def group_entities(self, entities: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Group adjacent entities of one type; a ``B-`` tag starts a new group."""
        groups: list[dict[str, Any]] = []
        current: list[dict[str, Any]] = []
        for entity in entities:
            if current:
                bi, tag = self.get_tag(entity["entity"])
                _, last_tag = self.get_tag(current[-1]["entity"])
                if tag == last_tag and bi != "B":
                    current.append(entity)
                    continue
                groups.append(self.group_sub_entities(current))
            current = [entity]
        if current:
            groups.append(self.group_sub_entities(current))
        return groups


NerPipeline = TokenClassificationPipeline
