"""``Pipeline``: preprocess → forward → postprocess over one input, a list, a generator or a dataset.

The loop is plain Python: inputs are preprocessed one at a time into model-input dicts, grouped
into batches of ``batch_size``, padded by :func:`pad_collate`, run through the model under
``torch.inference_mode``, split back into batch-of-one outputs and postprocessed. A
:class:`ChunkPipeline` may turn one user input into several model inputs (``is_last`` marks the
final one); their outputs are regrouped, in order, before postprocessing.
"""

from __future__ import annotations

import collections.abc
import contextlib
import inspect
import itertools
import logging
from collections.abc import Iterable, Iterator
from typing import Any

import torch

logger = logging.getLogger("pretrained")

# Padding values for keys that are not token ids.
_PAD_ONE = frozenset({"p_mask", "special_tokens_mask"})
# Text batches of this many tokens or more run their linears inside ManyRowsKernels (Pipeline._many_rows).
MANY_TOKENS = 128


class PipelineException(Exception):
    """Raised by a pipeline when its input cannot be handled (mirrors transformers' class)."""

    def __init__(self, task: str, model: str, reason: str) -> None:
        super().__init__(reason)
        self.task = task
        self.model = model


def pad_collate(items: list[dict[str, Any]], pad_token_id: int | None, padding_side: str = "right") -> dict[str, Any]:
    """Stack batch-of-one model inputs into one batch, padding sequence tensors to the longest.

    ``input_ids`` are padded with ``pad_token_id``, ``p_mask`` / ``special_tokens_mask`` with 1, other
    tensors with 0; values that are not tensors become lists with one entry per item.
    """
    keys = items[0].keys()
    for item in items[1:]:
        if item.keys() != keys:
            raise ValueError(f"The elements of the batch contain different keys ({set(item)} != {set(keys)}); "
                             "they cannot be batched together.")
    batch: dict[str, Any] = {}
    for key in keys:
        values = [item[key] for item in items]
        first = values[0]
        if not isinstance(first, torch.Tensor):
            batch[key] = values
            continue
        if first.ndim <= 1:
            batch[key] = torch.cat([v.reshape(1) if v.ndim == 0 else v for v in values])
            continue
        longest = max(v.shape[1] for v in values)
        if all(v.shape[1] == longest for v in values):
            batch[key] = torch.cat(values)
            continue
        if key == "input_ids":
            if pad_token_id is None:
                raise ValueError("Pipeline with tokenizer without pad_token cannot do batching. You can try to set it "
                                 "with `pipe.tokenizer.pad_token_id = model.config.eos_token_id`.")
            value = pad_token_id
        else:
            value = 1 if key in _PAD_ONE else 0
        out = first.new_full((len(values), longest, *first.shape[2:]), value)
        for i, v in enumerate(values):
            n = v.shape[1]
            if padding_side == "left":
                out[i, longest - n:] = v[0]
            else:
                out[i, :n] = v[0]
        batch[key] = out
    return batch


def check_positive_int(name: str, value: Any) -> int:
    """``value`` when it is an int of at least 1 (a bool is not), else a ``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return value


def _unbatch(outputs: Any, size: int) -> list[dict[str, Any]]:
    """Split a batched output dict into ``size`` dicts that look like batch-of-one outputs."""
    data = dict(outputs.items()) if isinstance(outputs, collections.abc.Mapping) else {"output": outputs}
    items: list[dict[str, Any]] = [{} for _ in range(size)]
    for key, value in data.items():
        if isinstance(value, torch.Tensor) and value.ndim > 0 and value.shape[0] == size:
            for i in range(size):
                items[i][key] = value[i:i + 1]
        elif isinstance(value, tuple) and value and isinstance(value[0], torch.Tensor):
            for i in range(size):  # hidden_states / attentions: one tensor per layer
                items[i][key] = tuple(v[i:i + 1] for v in value)
        elif isinstance(value, list) and len(value) == size:
            for i in range(size):
                items[i][key] = value[i]
        else:  # None, caches, scalars: shared by every item
            for i in range(size):
                items[i][key] = value
    return items


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and "role" in value and "content" in value


class Chat:
    """A conversation (list of ``{"role", "content"}`` messages) given to a pipeline as one input."""

    def __init__(self, messages: list[dict[str, Any]]) -> None:
        for message in messages:
            if not _is_message(message):
                raise ValueError("When passing chat dicts as input, each dict must have a 'role' and 'content' key.")
        self.messages = messages


class Pipeline:
    """Base class of all pipelines: device placement, parameter routing, batching and iteration.

    A task subclass implements ``_sanitize_parameters(**kwargs) -> (preprocess, forward, postprocess)``
    keyword dicts, ``preprocess(input, **p)`` returning model inputs (tensors of batch size 1),
    ``_forward(model_inputs, **f)`` and ``postprocess(model_outputs, **p)``.

    Args:
        model: The model (already loaded; :func:`pretrained.pipeline` loads it from a path).
        tokenizer: The tokenizer.
        task: The task name.
        device: ``"cpu"``, ``"cuda:0"``, a ``torch.device`` or an index (``-1`` is the CPU). ``None`` keeps
            a model dispatched with ``device_map`` where it is, else uses the first accelerator if any, else
            the CPU (as transformers does).
        batch_size: Default number of model inputs run together (calls may override it).
        num_workers: Default number of DataLoader worker processes for preprocessing (0: in this process).
        binary_output: Kept for compatibility; outputs are always Python objects or tensors.
        **kwargs: Default call parameters of the task (e.g. ``top_k``).
    """

    _load_tokenizer = True
    _load_image_processor = False
    _pipeline_calls_generate = False
    # Run a list's inputs in batches of similar length (outputs still come back in input order): a
    # task opts in when its outputs do not depend on the batch an input lands in.
    _sort_by_length = False
    # Run batches of MANY_TOKENS tokens or more inside ManyRowsKernels (see _many_rows): encoder tasks opt in
    # (a generating task would have the mode look at every call of every decode step).
    _many_row_batches = False
    # Auto registry task(s) whose models this pipeline runs (see pretrained.models.auto.TASKS).
    _model_tasks: tuple[str, ...] = ()

    def __init__(
        self,
        model: Any,
        tokenizer: Any = None,
        task: str = "",
        device: int | str | torch.device | None = None,
        binary_output: bool = False,
        batch_size: int | None = None,
        num_workers: int | None = None,
        **kwargs: Any,
    ) -> None:
        self.image_processor = kwargs.pop("image_processor", None)
        for key in ("dtype", "torch_dtype", "args_parser", "feature_extractor", "processor"):
            kwargs.pop(key, None)
        self.task = task
        self.model = model
        self.tokenizer = tokenizer
        self.binary_output = binary_output
        device_map = getattr(model, "hf_device_map", None)
        if device_map is not None and device is not None:
            raise ValueError("The model was loaded with a device_map and cannot be moved to a single device; "
                             "remove the `device` argument of the pipeline.")
        self.device = _resolve_device(device, model, device_map)
        if device_map is None and model.device != self.device:
            self.model.to(self.device)
        self.check_model_type()
        forward = getattr(model, "forward", model)
        self._forward_accepts_use_cache = "use_cache" in inspect.signature(forward).parameters
        self.call_count = 0
        self._batch_size = batch_size
        self._num_workers = num_workers
        self._preprocess_params, self._forward_params, self._postprocess_params = self._sanitize_parameters(**kwargs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(task={self.task!r}, model={type(self.model).__name__}, device={self.device})"

    @property
    def dtype(self) -> torch.dtype | None:
        return getattr(self.model, "dtype", None)

    torch_dtype = dtype

    # --- checks -------------------------------------------------------------------------------------------
    def check_model_type(self, supported_models: Any = None) -> None:
        """Raise a clear error when the model lacks the head this task needs.

        transformers only logs an error here; running a model with the wrong head fails later with an
        obscure message, so pretrained raises (subclasses of supported classes are accepted).
        """
        if supported_models is None:
            if not self._model_tasks:
                return
            from pretrained.models.auto import _MODELS, _load_family

            model_type = getattr(self.model.config, "model_type", None)
            if model_type:
                with contextlib.suppress(ValueError):  # a family unknown to the registry: no check
                    _load_family(model_type)
            supported_models = [cls for task in self._model_tasks for cls in _MODELS[task].values()]
        classes = tuple(c for c in supported_models if isinstance(c, type))
        if classes and not isinstance(self.model, classes):
            names = ", ".join(sorted({c.__name__ for c in classes}))
            raise ValueError(f"The model '{type(self.model).__name__}' is not supported for {self.task or 'this task'}"
                             f" (it lacks the needed head). Supported models are {names}.")

    # --- the four steps -------------------------------------------------------------------------------
    def _sanitize_parameters(self, **kwargs: Any) -> tuple[dict, dict, dict]:
        raise NotImplementedError("_sanitize_parameters not implemented")

    def preprocess(self, input_: Any, **preprocess_parameters: Any) -> dict[str, Any]:
        raise NotImplementedError("preprocess not implemented")

    def _forward(self, input_tensors: dict[str, Any], **forward_parameters: Any) -> Any:
        raise NotImplementedError("_forward not implemented")

    def postprocess(self, model_outputs: Any, **postprocess_parameters: Any) -> Any:
        raise NotImplementedError("postprocess not implemented")

    def get_inference_context(self) -> Any:
        """The context the forward runs in: inference mode, and for a model holding torchao int8-dynamic weights
        also :class:`~pretrained.inference.int8_dynamic.Int8DynamicKernels` (the same numbers as torchao's own
        layers, on the VNNI route)."""
        if getattr(self, "_int8_dynamic", None) is None:
            from pretrained.inference.int8_dynamic import has_int8_dynamic_weights

            self._int8_dynamic = has_int8_dynamic_weights(self.model)
        if self._int8_dynamic:
            from pretrained.inference.int8_dynamic import Int8DynamicKernels

            return Int8DynamicKernels.around(torch.inference_mode)
        return torch.inference_mode

    def _many_rows(self, model_inputs: Any) -> Any:
        """For pipelines that set ``_many_row_batches`` (the encoder text pipelines):
        :class:`~pretrained.inference.many_rows.ManyRowsKernels` around the model's call on a batch of at least
        ``MANY_TOKENS`` tokens on the CPU (a batch of texts: oneDNN's matmul beats MKL's there, and the fused
        GELU saves a pass over the feed-forward activations), else nothing: for one short text the mode's look
        at every torch call costs more than it saves."""
        many = self._many_row_batches and isinstance(model_inputs, collections.abc.Mapping)
        ids = model_inputs.get("input_ids") if many else None
        if isinstance(ids, torch.Tensor) and ids.numel() >= MANY_TOKENS and self.device.type == "cpu":
            from pretrained.inference.many_rows import ManyRowsKernels

            return ManyRowsKernels(self.model)
        return contextlib.nullcontext()

    def forward(self, model_inputs: dict[str, Any], **forward_params: Any) -> Any:
        """Move inputs to the model's device, run ``_forward`` without autograd, bring tensors back to the CPU."""
        self._check_length(model_inputs)
        with self.get_inference_context()():
            model_inputs = _to_device(model_inputs, self.device)
            with self._many_rows(model_inputs):
                outputs = self._forward(model_inputs, **forward_params)
        return _to_device(outputs, _CPU)

    def _check_length(self, model_inputs: Any) -> None:
        """Refuse inputs longer than the model's position embeddings, which would fail inside the model
        with a shape error that names neither the text's length nor the limit."""
        ids = model_inputs.get("input_ids") if isinstance(model_inputs, collections.abc.Mapping) else None
        if not isinstance(ids, torch.Tensor) or ids.dim() == 0:
            return
        if not hasattr(self, "_max_positions"):
            self._max_positions = _position_limit(self.model)
        limit = self._max_positions
        if limit is not None and ids.shape[-1] > limit:
            raise ValueError(
                f"The input is {ids.shape[-1]} tokens long, but {type(self.model).__name__} accepts at most "
                f"{limit}. Pass truncation=True to cut it to the model's limit (with max_length={limit} "
                "when the tokenizer does not know it), or split the text."
            )

    def _model_kwargs(self, model_inputs: dict[str, Any]) -> dict[str, Any]:
        if self._forward_accepts_use_cache:
            model_inputs["use_cache"] = False
        return model_inputs

    # --- running ----------------------------------------------------------------------------------------
    def collate(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        tokenizer = self.tokenizer
        if tokenizer is None:
            raise ValueError("Pipeline without tokenizer cannot do batching.")
        return pad_collate(items, tokenizer.pad_token_id, tokenizer.padding_side)

    def __call__(self, inputs: Any = None, *args: Any, num_workers: int | None = None,
                 batch_size: int | None = None, **kwargs: Any) -> Any:
        if args:
            logger.warning("Ignoring args: %s", args)
        inputs = _wrap_chats(inputs)
        num_workers = num_workers if num_workers is not None else (self._num_workers or 0)
        batch_size = batch_size if batch_size is not None else (self._batch_size or 1)
        check_positive_int("batch_size", batch_size)
        pre, fwd, post = self._sanitize_parameters(**kwargs)
        pre = {**self._preprocess_params, **pre}
        fwd = {**self._forward_params, **fwd}
        post = {**self._postprocess_params, **post}
        self.call_count += 1
        if isinstance(inputs, list):
            order = self._length_order(inputs, pre) if batch_size > 1 and num_workers == 0 else None
            if order is None:
                return list(self._iterate(inputs, batch_size, num_workers, pre, fwd, post))
            results: list[Any] = [None] * len(inputs)
            ordered = self._iterate([inputs[i] for i in order], batch_size, num_workers, pre, fwd, post)
            for i, result in zip(order, ordered):
                results[i] = result
            return results
        if _is_stream(inputs):
            return self._iterate(inputs, batch_size, num_workers, pre, fwd, post)
        return self.run_single(inputs, pre, fwd, post)

    def run_single(self, inputs: Any, pre: dict, fwd: dict, post: dict) -> Any:
        model_inputs = self.preprocess(inputs, **pre)
        return self.postprocess(self.forward(model_inputs, **fwd), **post)

    def _model_inputs(self, inputs: Iterable[Any], pre: dict, num_workers: int) -> Iterator[dict[str, Any]]:
        if num_workers > 0 and isinstance(inputs, collections.abc.Sized):
            from torch.utils.data import DataLoader

            loader = DataLoader(_Preprocessed(inputs, self.preprocess, pre), batch_size=None,
                                num_workers=num_workers)
            return iter(loader)
        if num_workers > 0:
            logger.warning("num_workers > 0 needs a sized input (list or dataset); preprocessing in this process.")
        return (self.preprocess(x, **pre) for x in inputs)

    def _batches(self, items: Iterator[dict[str, Any]], batch_size: int) -> Iterator[tuple[dict[str, Any], int]]:
        if batch_size == 1:
            for item in items:
                yield item, 1
            return
        group: list[dict[str, Any]] = []
        for item in items:
            group.append(item)
            if len(group) == batch_size:
                yield self.collate(group), batch_size
                group = []
        if group:
            yield (self.collate(group) if len(group) > 1 else group[0]), len(group)

    def _length_order(self, inputs: list[Any], pre: dict) -> list[int] | None:
        """Indices of ``inputs``, longest first, for tasks that sort by length; ``None`` keeps the order.

        Batches of similar lengths carry little padding: on texts of varied lengths, padding to each
        batch's longest text costs most of the compute of an encoder that runs in input order. One extra
        tokenizer call (in Rust, without tensors) measures the lengths; longest first makes a batch too
        large for memory fail at once rather than at the end.
        """
        if not self._sort_by_length or self.tokenizer is None or len(inputs) < 2:
            return None
        if not all(isinstance(x, str) for x in inputs):
            return None
        kwargs = {k: v for k, v in pre.items() if k in ("truncation", "max_length", "add_special_tokens")}
        lengths = [len(ids) for ids in self.tokenizer(inputs, **kwargs)["input_ids"]]
        return sorted(range(len(inputs)), key=lambda i: -lengths[i])

    def preprocess_batch(self, inputs: list[Any], **preprocess_parameters: Any) -> dict[str, Any] | None:
        """Optionally preprocess a whole batch at once (one tokenizer call); ``None`` falls back to
        ``preprocess`` per input and :func:`pad_collate`. The result must equal that fallback."""
        return None

    def _grouped(self, inputs: Iterable[Any], batch_size: int, pre: dict) -> Iterator[tuple[dict[str, Any], int]]:
        group: list[Any] = []
        for x in itertools.chain(inputs, (_END,)):
            if x is not _END:
                group.append(x)
            if group and (len(group) == batch_size or x is _END):
                batch = self.preprocess_batch(group, **pre) if len(group) > 1 else None
                if batch is None:
                    yield from self._batches((self.preprocess(y, **pre) for y in group), batch_size)
                else:
                    yield batch, len(group)
                group = []

    def _iterate(self, inputs: Iterable[Any], batch_size: int, num_workers: int, pre: dict, fwd: dict,
                 post: dict) -> Iterator[Any]:
        if batch_size > 1 and num_workers == 0 and type(self).preprocess_batch is not Pipeline.preprocess_batch:
            batches = self._grouped(inputs, batch_size, pre)
        else:
            batches = self._batches(self._model_inputs(inputs, pre, num_workers), batch_size)
        for batch, size in batches:
            outputs = self.forward(batch, **fwd)
            for item in (_unbatch(outputs, size) if size > 1 else (outputs,)):
                yield self.postprocess(item, **post)

    # --- scikit-style aliases ---------------------------------------------------------------------------
    def transform(self, X: Any) -> Any:
        return self(X)

    def predict(self, X: Any) -> Any:
        return self(X)

    def save_pretrained(self, save_directory: str, **kwargs: Any) -> None:
        """Save the model, the tokenizer and the image processor to one folder."""
        self.model.save_pretrained(save_directory, **kwargs)
        if self.tokenizer is not None:
            self.tokenizer.save_pretrained(save_directory)
        if self.image_processor is not None:
            self.image_processor.save_pretrained(save_directory)


class ChunkPipeline(Pipeline):
    """A pipeline whose ``preprocess`` yields several model inputs per user input.

    Each chunk carries ``is_last``; ``postprocess`` receives the list of one input's chunk outputs.
    Chunks of different inputs may share a batch; regrouping keeps the input order.
    """

    def run_single(self, inputs: Any, pre: dict, fwd: dict, post: dict) -> Any:
        outputs = [self.forward(chunk, **fwd) for chunk in self.preprocess(inputs, **pre)]
        return self.postprocess(outputs, **post)

    def _model_inputs(self, inputs: Iterable[Any], pre: dict, num_workers: int) -> Iterator[dict[str, Any]]:
        if num_workers > 0:
            logger.warning("num_workers is ignored by chunked pipelines (each input yields several model inputs).")
        for x in inputs:
            yield from self.preprocess(x, **pre)

    def _iterate(self, inputs: Iterable[Any], batch_size: int, num_workers: int, pre: dict, fwd: dict,
                 post: dict) -> Iterator[Any]:
        pending: list[Any] = []
        for batch, size in self._batches(self._model_inputs(inputs, pre, num_workers), batch_size):
            outputs = self.forward(batch, **fwd)
            for item in (_unbatch(outputs, size) if size > 1 else (outputs,)):
                pending.append(item)
                if item["is_last"]:
                    yield self.postprocess(pending, **post)
                    pending = []


class _Preprocessed(torch.utils.data.Dataset):
    def __init__(self, data: Any, process: Any, params: dict) -> None:
        self.data, self.process, self.params = data, process, params

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> Any:
        return self.process(self.data[i], **self.params)


_CPU = torch.device("cpu")
_END = object()  # marks the end of the inputs in Pipeline._grouped


def _position_limit(model: Any) -> int | None:
    """The longest input a model with learned absolute positions takes (``None``: no such table).

    RoBERTa-style tables start counting after the padding index, so they hold that many fewer positions.
    """
    for module in model.modules():
        table = getattr(module, "position_embeddings", None) or getattr(module, "wpe", None)
        if isinstance(table, torch.nn.Embedding):
            offset = module.padding_idx + 1 if getattr(module, "roberta_positions", False) else 0
            return table.num_embeddings - offset
    return None


def _to_device(value: Any, device: torch.device) -> Any:
    if isinstance(value, torch.Tensor):
        return value if value.device == device else value.to(device)
    if isinstance(value, collections.abc.Mapping):
        moved = {k: _to_device(v, device) for k, v in value.items()}
        return moved
    if isinstance(value, tuple):
        return tuple(_to_device(v, device) for v in value)
    if isinstance(value, list):
        return [_to_device(v, device) for v in value]
    return value


def _resolve_device(device: Any, model: Any, device_map: Any) -> torch.device:
    if device is None:
        if device_map is not None:
            first = next(iter(device_map.values()))
            return torch.device(first if not isinstance(first, int) else f"cuda:{first}")
        return torch.device("cuda:0") if torch.cuda.is_available() else _CPU
    if isinstance(device, torch.device):
        return device
    if isinstance(device, str):
        try:
            return torch.device(device)
        except RuntimeError:
            raise ValueError(f"Unknown device {device!r}; use 'cpu', 'cuda', 'cuda:1', 'mps', ...") from None
    if isinstance(device, int):
        if device < 0:
            return _CPU
        if torch.cuda.is_available():
            return torch.device(f"cuda:{device}")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device(f"mps:{device}")
        return _CPU
    raise TypeError(f"device must be an int, a string or a torch.device, got {type(device).__name__}.")


def _is_stream(inputs: Any) -> bool:
    """A generator, iterator or dataset: anything iterable that is not one input itself."""
    if isinstance(inputs, (str, bytes, dict, tuple, Chat)) or inputs is None:
        return False
    if isinstance(inputs, torch.utils.data.Dataset):
        return True
    return isinstance(inputs, collections.abc.Iterator) or (
        isinstance(inputs, collections.abc.Iterable) and not isinstance(inputs, (torch.Tensor, list))
    )


def _wrap_chats(inputs: Any) -> Any:
    """Chat-style inputs (lists of messages) become ``Chat`` objects, as transformers does."""
    if isinstance(inputs, (list, tuple)) and inputs:
        if _is_message(inputs[0]):
            return Chat(list(inputs))
        if isinstance(inputs[0], (list, tuple)) and all(c and _is_message(c[0]) for c in inputs):
            return [Chat(list(c)) for c in inputs]
    elif isinstance(inputs, Iterator) and not isinstance(inputs, (str, bytes)):
        def stream(it: Iterator[Any]) -> Iterator[Any]:
            for x in it:
                if isinstance(x, (list, tuple)) and x and _is_message(x[0]):
                    yield Chat(list(x))
                else:
                    yield x

        return stream(inputs)
    return inputs
