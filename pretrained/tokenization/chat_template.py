"""Chat templates: Jinja rendering in an immutable sandbox with `{% generation %}` span tracking, and
`ChatTemplateMixin` (`apply_chat_template`) on top of it.

Templates come from model repositories and are untrusted, so they run in jinja2's
`ImmutableSandboxedEnvironment`, and everything they can see is rebuilt from plain JSON types.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import re
from collections.abc import Callable, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from functools import lru_cache
from typing import Any, get_type_hints

import numpy as np

from .batch_encoding import PaddingStrategy, TensorType

_CONTINUE_TAG = "CONTINUE_FINAL_MESSAGE_TAG "
_REASONING_FIELDS = ("reasoning_content", "thinking", "reasoning")


def _plain(value: Any) -> Any:
    # Rebuild what the template sees from JSON types: rich objects (arrays, images, ...) have methods the
    # sandbox does not know are dangerous, so they become an inert "<TypeName>" placeholder.
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _normalize_messages(conversation: Any) -> list[dict[str, Any]]:
    messages = _plain(getattr(conversation, "messages", conversation))
    out = []
    for message in messages:
        if not isinstance(message, dict):
            raise TypeError(
                f"Chat messages should be dicts, dataclasses or pydantic models, but got {message!r}."
            )
        # Templates handle a missing key better than a None value (APIs often send content=None).
        message = {k: v for k, v in message.items() if v is not None}
        reasoning = next((message[k] for k in _REASONING_FIELDS if message.get(k) is not None), None)
        if reasoning is not None:
            message = {"thinking": reasoning, **message, "reasoning_content": reasoning}
        out.append(message)
    return out


_JSON_TYPES = {int: "integer", float: "number", str: "string", bool: "boolean", type(None): "null"}


def _type_schema(hint: Any) -> dict[str, Any]:
    import typing

    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint in _JSON_TYPES:
        return {"type": _JSON_TYPES[hint]}
    if hint is Any:
        return {}
    if origin in (list, tuple, set):
        return {"type": "array", "items": _type_schema(args[0])} if args else {"type": "array"}
    if origin is dict or hint is dict:
        return {"type": "object"}
    if origin is typing.Literal:
        return {"type": _JSON_TYPES.get(type(args[0]), "string"), "enum": list(args)}
    if args and (origin is typing.Union or type(hint).__name__ == "UnionType"):
        parts = [_type_schema(a) for a in args if a is not type(None)]
        schema = parts[0] if len(parts) == 1 else {"type": [p.get("type") for p in parts]}
        return {**schema, "nullable": True} if type(None) in args else schema
    raise TypeError(f"Cannot turn the type hint {hint!r} into a JSON schema for a tool.")


def _parse_docstring(doc: str) -> tuple[str, dict[str, str], str | None]:
    # Google style: a description, then "Args:" (name: text, continuation lines indented), then "Returns:".
    sections = re.split(r"^\s*(Args|Arguments|Returns|Raises):\s*$", doc, flags=re.M)
    description = sections[0].strip()
    args: dict[str, str] = {}
    returns = None
    for title, body in zip(sections[1::2], sections[2::2]):
        if title in ("Args", "Arguments"):
            for match in re.finditer(
                r"^\s*(\w+)\s*(?:\([^)]*\))?\s*:\s*(.*?)(?=^\s*\w+\s*(?:\([^)]*\))?\s*:|\Z)",
                body,
                re.S | re.M,
            ):
                args[match.group(1)] = " ".join(match.group(2).split())
        elif title == "Returns":
            returns = " ".join(body.split()) or None
    return description, args, returns


def get_json_schema(func: Callable) -> dict[str, Any]:
    """JSON schema of a tool from its type hints and Google-style docstring (`Args:`, optional `Returns:`).

    An argument description ending in `(choices: [...])` becomes an `enum`.
    """
    name = getattr(func, "__name__", "operation")
    doc = inspect.getdoc(func)
    if not doc:
        raise ValueError(f"Cannot generate JSON schema for {name} because it has no docstring!")
    description, arg_docs, return_doc = _parse_docstring(doc.strip())
    signature = inspect.signature(func)
    params = [
        p
        for p in signature.parameters.values()
        if p.name not in ("self", "cls") or p.annotation is not p.empty
    ]
    required = []
    for param in params:
        if param.annotation is param.empty:
            raise TypeError(f"Argument {param.name} is missing a type hint in function {name}")
        if param.default is param.empty:
            required.append(param.name)
    hints = get_type_hints(func)
    properties: dict[str, Any] = {}
    returns = None
    for key, hint in hints.items():
        if key == "return":
            try:
                returns = _type_schema(hint)
            except TypeError:
                returns = None  # the model never writes the return value; leave it out
            continue
        if key not in {p.name for p in params}:
            continue
        schema = _type_schema(hint)
        if key not in arg_docs:
            raise ValueError(
                f"Cannot generate JSON schema for {name} because the docstring has no description for the argument "
                f"'{key}'"
            )
        text = arg_docs[key]
        choices = re.search(r"\(choices:\s*(.*?)\)\s*$", text, flags=re.IGNORECASE)
        if choices:
            schema["enum"] = json.loads(choices.group(1))
            text = text[: choices.start()].strip()
        schema["description"] = text
        properties[key] = schema
    parameters: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        parameters["required"] = required
    function: dict[str, Any] = {"name": name, "description": description, "parameters": parameters}
    if returns is not None:
        if return_doc is not None:
            returns["description"] = return_doc
        function["return"] = returns
    return {"type": "function", "function": function}


@lru_cache(maxsize=32)
def _compile(template: str) -> Any:
    import jinja2
    import jinja2.ext
    import jinja2.nodes
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class GenerationTracker(jinja2.ext.Extension):
        # `{% generation %}...{% endgeneration %}` renders its body and, while tracking, records the
        # character span it occupies in the output.
        tags = {"generation"}

        def __init__(self, environment: Any):
            super().__init__(environment)
            environment.extend(track_generation=self.track)
            self._tracking: ContextVar[Any] = ContextVar("generation_tracking", default=None)

        def parse(self, parser: Any) -> Any:
            lineno = next(parser.stream).lineno
            body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
            return jinja2.nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)

        def _render(self, caller: Any) -> str:
            text = caller()
            tracking = self._tracking.get()
            if tracking is not None:
                blocks, spans = tracking
                start = sum(len(b) for b in blocks)
                spans.append((start, start + len(text)))
            return text

        @contextmanager
        def track(self, blocks: list[str], spans: list[tuple[int, int]]) -> Any:
            token = self._tracking.set((blocks, spans))
            try:
                yield
            finally:
                self._tracking.reset(token)

    class TemplateNamespace(jinja2.utils.Namespace):
        # Underscore names are refused so that templates cannot reach CPython internals.
        def __init__(*args: Any, **kwargs: Any):
            self, args = args[0], args[1:]
            attrs = dict(*args, **kwargs)
            for name in attrs:
                TemplateNamespace._check(name)
            jinja2.utils.Namespace.__init__(self, attrs)

        def __setitem__(self, name: str, value: Any) -> None:
            TemplateNamespace._check(name)
            jinja2.utils.Namespace.__setitem__(self, name, value)

        @staticmethod
        def _check(name: Any) -> None:
            if isinstance(name, str) and name.startswith("_"):
                raise jinja2.exceptions.SecurityError(
                    f"Chat templates cannot store underscore-prefixed attributes on a namespace, but got {name!r}."
                )

    def raise_exception(message: str) -> None:
        raise jinja2.exceptions.TemplateError(message)

    def tojson(
        x: Any,
        ensure_ascii: bool = False,
        indent: Any = None,
        separators: Any = None,
        sort_keys: bool = False,
    ) -> str:
        # Jinja's own tojson escapes HTML characters, which would change the prompt.
        return json.dumps(
            x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
        )

    def strftime_now(fmt: str) -> str:
        return datetime.now().strftime(fmt)

    class TemplateDict:
        # A `dict` builder without the type object itself, so templates cannot walk its attributes.
        def __call__(self, *args: Any, **kwargs: Any) -> dict:
            return dict(*args, **kwargs)

        def fromkeys(self, *args: Any, **kwargs: Any) -> dict:
            return dict.fromkeys(*args, **kwargs)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTracker, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = TemplateDict()
    env.globals["namespace"] = TemplateNamespace
    return env.from_string(template)


def render_chat_template(
    conversations: list[Any],
    template: str,
    *,
    tools: list[Any] | None = None,
    documents: list[dict[str, Any]] | None = None,
    add_generation_prompt: bool = False,
    continue_final_message: bool | str = False,
    return_assistant_tokens_mask: bool = False,
    template_kwargs: dict[str, Any] | None = None,
) -> tuple[list[str], list[list[tuple[int, int]]]]:
    """Render each conversation; returns the strings and, per conversation, the `{% generation %}` spans."""
    compiled = _compile(template)
    tool_schemas = None
    if tools is not None:
        tool_schemas = []
        for tool in tools:
            if isinstance(tool, dict):
                tool_schemas.append(tool)
            elif inspect.isfunction(tool) or inspect.ismethod(tool):
                tool_schemas.append(get_json_schema(tool))
            else:
                raise ValueError(
                    "Tools should either be a JSON schema, or a callable function with type hints "
                    "and a docstring suitable for auto-conversion to a schema."
                )
    if documents is not None and not all(isinstance(d, dict) for d in documents):
        raise TypeError("Documents should be a list of dicts with 'title' and 'text' keys!")
    variables = {
        **_plain(template_kwargs or {}),
        "tools": _plain(tool_schemas),
        "documents": _plain(documents),
        "add_generation_prompt": add_generation_prompt,
    }
    rendered: list[str] = []
    all_spans: list[list[tuple[int, int]]] = []
    for conversation in conversations:
        chat = _normalize_messages(conversation)
        final_text = None
        if continue_final_message:
            field = continue_final_message if isinstance(continue_final_message, str) else "content"
            final_text = chat[-1].get(field) if chat else None
            if final_text is None:
                raise ValueError(
                    f'continue_final_message is set but the final message has no "{field}" to continue!'
                )
            fields = [field]
            if field in _REASONING_FIELDS:
                fields = [f for f in _REASONING_FIELDS if chat[-1].get(f) == final_text]
            if not any(f in template for f in fields):
                raise ValueError(
                    f'continue_final_message is set to "{field}" but this is not an accepted field in the chat_template'
                )
            if isinstance(final_text, (list, tuple)):
                for block in reversed(final_text):
                    if "text" in block:
                        final_text = block["text"]
                        block["text"] = block["text"] + _CONTINUE_TAG
                        break
                else:
                    raise ValueError(
                        "continue_final_message is set but we could not find any text to continue in the final message!"
                    )
            else:
                for f in fields:
                    chat[-1][f] = chat[-1][f] + _CONTINUE_TAG
        if return_assistant_tokens_mask:
            blocks: list[str] = []
            spans: list[tuple[int, int]] = []
            with compiled.environment.track_generation(blocks, spans):
                for block in compiled.generate(messages=chat, **variables):
                    blocks.append(block)
                text = "".join(blocks)
            all_spans.append(spans)
        else:
            text = compiled.render(messages=chat, **variables)
        if continue_final_message:
            if final_text.strip() not in text or _CONTINUE_TAG.strip() not in text:
                raise ValueError(
                    "continue_final_message is set but the final message does not appear in the chat after "
                    "applying the chat template! This can happen if the chat template deletes portions of "
                    "the final message. Please verify the chat template and final message in your chat to "
                    f"ensure they are compatible.Final message to continue: {final_text.strip()}\n"
                    f"Rendered chat:\n{text}"
                )
            cut = text.rindex(_CONTINUE_TAG.strip())
            # If the template kept the tag's trailing space, cut exactly; otherwise it trimmed spacing.
            text = (
                text[:cut] if text[cut : cut + len(_CONTINUE_TAG)] == _CONTINUE_TAG else text[:cut].rstrip()
            )
        rendered.append(text)
    return rendered, all_spans


def _overlap_mask(offsets: list[tuple[int, int]], spans: list[tuple[int, int]]) -> list[int]:
    # 1 for each token whose character offsets overlap one of the spans. Spans and offsets are both
    # sorted, so one pass suffices.
    mask = [0] * len(offsets)
    span = 0
    for t, (start, end) in enumerate(offsets):
        while span < len(spans) and start >= spans[span][1]:
            span += 1
        if span == len(spans):
            break
        if end > spans[span][0]:
            mask[t] = 1
    return mask


class ChatTemplateMixin:
    """`get_chat_template` and `apply_chat_template` of `PreTrainedTokenizerBase`.

    The host class provides `chat_template`, `special_tokens_map` and `__call__`.
    """

    def get_chat_template(self, chat_template: str | None = None, tools: list[dict] | None = None) -> str:
        """The template `apply_chat_template` would use: by name, passed in, or the tokenizer's own."""
        if isinstance(self.chat_template, dict):
            templates = self.chat_template
            if chat_template is not None and chat_template in templates:
                return templates[chat_template]
            if chat_template is None:
                if tools is not None and "tool_use" in templates:
                    return templates["tool_use"]
                if "default" in templates:
                    return templates["default"]
                raise ValueError(
                    "This model has multiple chat templates with no default specified! Please either pass a chat "
                    "template or the name of the template you wish to use to the `chat_template` argument. Available "
                    f"template names are {sorted(templates.keys())}."
                )
        elif chat_template is None:
            if self.chat_template is None:
                raise ValueError(
                    "Cannot use chat template functions because tokenizer.chat_template is not set and no template "
                    "argument was passed! For information about writing templates and setting the "
                    "tokenizer.chat_template attribute, please see the documentation at "
                    "https://huggingface.co/docs/transformers/main/en/chat_templating"
                )
            return self.chat_template
        return chat_template

    def apply_chat_template(
        self,
        conversation: Any,
        tools: list[dict | Any] | None = None,
        documents: list[dict[str, str]] | None = None,
        chat_template: str | None = None,
        add_generation_prompt: bool = False,
        continue_final_message: bool | str = False,
        tokenize: bool = True,
        padding: bool | str | PaddingStrategy = False,
        truncation: bool = False,
        max_length: int | None = None,
        return_tensors: str | TensorType | None = None,
        return_dict: bool = True,
        return_assistant_tokens_mask: bool = False,
        tokenizer_kwargs: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Any:
        """Render a conversation (or a batch of them) with the Jinja chat template, and tokenize it.

        The template runs in jinja2's immutable sandbox, with `raise_exception`, `strftime_now` and a
        `tojson` that does not escape HTML. Templates mark assistant text with `{% generation %}` for
        `return_assistant_tokens_mask`.

        Args:
            conversation: A list of `{"role", "content", ...}` messages, or a list of such lists.
            tools: JSON schemas (dicts) or type-hinted, documented Python functions.
            documents: Dicts (`"title"`, `"text"`) for retrieval-augmented templates.
            chat_template: A template, or the name of one of the tokenizer's templates.
            add_generation_prompt: Append the header that starts an assistant turn.
            continue_final_message: Leave the final message open (True for `"content"`, or the field name).
            tokenize: Return ids instead of the rendered string.
            padding, truncation, max_length, return_tensors: As for `__call__`.
            return_dict: Return a `BatchEncoding` instead of bare ids.
            return_assistant_tokens_mask: Add `assistant_masks` (1 on tokens inside `{% generation %}`).
            tokenizer_kwargs: More arguments for the tokenizer call.
            **kwargs: Extra variables for the template.
        """
        if kwargs.pop("sanitize_control_tokens", False):
            raise NotImplementedError("`sanitize_control_tokens=True` is not supported by pretrained.")
        if not tokenize:
            return_dict = False
        if return_assistant_tokens_mask and not (return_dict and tokenize):
            raise ValueError(
                "`return_assistant_tokens_mask=True` requires `return_dict=True` and `tokenize=True`"
            )
        template = self.get_chat_template(chat_template, tools)
        if isinstance(conversation, (list, tuple)) and len(conversation) == 0:
            raise ValueError(
                "Cannot apply chat template to an empty conversation. Provide at least one message."
            )
        batched = isinstance(conversation, (list, tuple)) and (
            isinstance(conversation[0], (list, tuple)) or hasattr(conversation[0], "messages")
        )
        conversations = list(conversation) if batched else [conversation]
        if continue_final_message:
            if add_generation_prompt:
                raise ValueError(
                    "continue_final_message and add_generation_prompt are not compatible. Use continue_final_message "
                    "when you want the model to continue the final message, and add_generation_prompt when you want "
                    "to add a header that will prompt it to start a new assistant message instead."
                )
            if return_assistant_tokens_mask:
                raise ValueError(
                    "continue_final_message is not compatible with return_assistant_tokens_mask."
                )
        rendered, generation_spans = render_chat_template(
            conversations,
            template,
            tools=tools,
            documents=documents,
            add_generation_prompt=add_generation_prompt,
            continue_final_message=continue_final_message,
            return_assistant_tokens_mask=return_assistant_tokens_mask,
            template_kwargs={**self.special_tokens_map, **kwargs},
        )
        if not batched:
            rendered = rendered[0]
        if not tokenize:
            return rendered
        out = self(
            rendered,
            padding=padding,
            truncation=truncation,
            max_length=max_length,
            add_special_tokens=False,
            return_tensors=return_tensors,
            **(tokenizer_kwargs or {}),
        )
        if not return_dict:
            return out["input_ids"]
        if return_assistant_tokens_mask:
            masks = [
                _overlap_mask(encoding.offsets, spans) for encoding, spans in zip(out.encodings, generation_spans)
            ]
            out["assistant_masks"] = masks if batched or return_tensors else masks[0]
            if return_tensors:
                out.convert_to_tensors(tensor_type=return_tensors)
        return out
