"""Find a tokenizer's files and turn them into constructor arguments, the way transformers reads them.

Files: `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja` (+ `additional_chat_templates/*.jinja`),
the legacy `special_tokens_map.json` and `added_tokens.json`, and a class's legacy vocabulary files.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tokenizers import AddedToken

from ..hub import cached_file
from ..utils.io import read_json_object

SPECIAL_TOKENS_MAP_FILE = "special_tokens_map.json"
ADDED_TOKENS_FILE = "added_tokens.json"
TOKENIZER_CONFIG_FILE = "tokenizer_config.json"
TOKENIZER_FILE = "tokenizer.json"
CHAT_TEMPLATE_FILE = "chat_template.jinja"
CHAT_TEMPLATE_DIR = "additional_chat_templates"

_HUB_KEYS = ("cache_dir", "revision", "local_files_only", "token", "subfolder")
# Accepted for compatibility with transformers; they have no effect here.
_IGNORED_KEYS = (
    "force_download",
    "proxies",
    "_from_auto",
    "_from_pipeline",
    "_commit_hash",
    "trust_remote_code",
    "use_fast",
    "resume_download",
    "user_agent",
)


def to_added_tokens(obj: Any) -> Any:
    """Turn the `{"__type": "AddedToken", ...}` dicts of a saved config back into `AddedToken`s."""
    if isinstance(obj, dict) and obj.get("__type") == "AddedToken":
        fields = {k: v for k, v in obj.items() if k != "__type"}
        return AddedToken(**fields)
    if isinstance(obj, dict):
        return {k: to_added_tokens(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_added_tokens(v) for v in obj]
    return obj


def resolve_tokenizer_files(
    cls: type, path: str, hub_kwargs: dict[str, Any]
) -> tuple[dict[str, str | None], bool]:
    """Locate the files `cls` can be built from; returns `{argument name: path or None}` and is-local."""
    is_local = os.path.isdir(path)
    if os.path.isfile(path):
        # A single file: a tokenizer.json, or the one vocabulary file of a class that needs only one.
        if path.endswith(".json") and os.path.basename(path).startswith("tokenizer"):
            return {"tokenizer_file": path}, True
        vocab_keys = [k for k in cls.vocab_files_names if k != "tokenizer_file"]
        if len(vocab_keys) != 1:
            raise ValueError(
                f"Calling {cls.__name__}.from_pretrained() with the path to a single file is not supported for "
                "this tokenizer. Use a model identifier or the path to a directory instead."
            )
        return {vocab_keys[0]: path}, True

    def find(name: str) -> str | None:
        try:
            return cached_file(path, name, raise_if_missing=False, **hub_kwargs)
        except OSError as error:
            raise OSError(f"Can't load tokenizer for {path!r}: {error}") from None

    files: dict[str, str | None] = {
        "tokenizer_config_file": find(TOKENIZER_CONFIG_FILE),
        "tokenizer_file": find(TOKENIZER_FILE),
        "special_tokens_map_file": find(SPECIAL_TOKENS_MAP_FILE),
        "added_tokens_file": find(ADDED_TOKENS_FILE),
        "chat_template_file": find(CHAT_TEMPLATE_FILE),
    }
    if files["tokenizer_file"] is None:
        # Legacy vocabularies are only needed when there is no tokenizer.json.
        for key, name in cls.vocab_files_names.items():
            if key != "tokenizer_file":
                files[key] = find(name)
                for other in getattr(cls, "vocab_file_alternatives", {}).get(key, ()):
                    files[key] = files[key] or find(other)
    found = [p for p in files.values() if p is not None]
    if found:
        template_dir = Path(found[0]).parent / CHAT_TEMPLATE_DIR
        if template_dir.is_dir():
            for template in sorted(template_dir.glob("*.jinja")):
                files[f"chat_template_{template.name.removesuffix('.jinja')}"] = str(template)
    return files, is_local


def load_tokenizer(
    cls: type, pretrained_model_name_or_path: str | os.PathLike, *init_inputs: Any, **kwargs: Any
) -> Any:
    """Build `cls` from a folder / repo id / file, with `kwargs` overriding the saved configuration."""
    # Loading arguments are popped even when None: they say where the files are, never what the
    # tokenizer is, so none of them may reach `init_kwargs` (and from there `tokenizer_config.json`).
    hub_kwargs = {k: kwargs.pop(k) for k in _HUB_KEYS if k in kwargs}
    hub_kwargs = {k: v for k, v in hub_kwargs.items() if v is not None}
    for key in _IGNORED_KEYS:
        kwargs.pop(key, None)
    path = str(pretrained_model_name_or_path)
    files, is_local = resolve_tokenizer_files(cls, path, hub_kwargs)
    vocab_keys = [k for k in cls.vocab_files_names if k != "tokenizer_file"]
    if files.get("tokenizer_file") is None and not any(files.get(k) for k in vocab_keys):
        wanted = [TOKENIZER_FILE] + [cls.vocab_files_names[k] for k in vocab_keys]
        raise OSError(
            f"Can't load tokenizer for '{path}': found none of {wanted} there"
            + (
                " (a local folder)."
                if is_local
                else " (looked in the local folder and the Hugging Face cache)."
            )
        )

    config_file = files.pop("tokenizer_config_file", None)
    init_kwargs: dict[str, Any] = read_json_object(config_file) if config_file else {}
    init_kwargs.pop("tokenizer_class", None)
    init_kwargs.pop("auto_map", None)  # remote code is never run
    saved_inputs = init_kwargs.pop("init_inputs", ())
    if not init_inputs:
        init_inputs = tuple(saved_inputs)
    tokenizer_file = files.get("tokenizer_file")
    if tokenizer_file is not None:
        # tokenizer.json's post-processor already encodes bos/eos handling.
        init_kwargs.pop("add_bos_token", None)
        init_kwargs.pop("add_eos_token", None)

    templates: dict[str, str] = {}
    chat_file = files.pop("chat_template_file", None)
    if chat_file is not None:
        templates["default"] = Path(chat_file).read_text(encoding="utf-8")
    for key in [k for k in files if k.startswith("chat_template_")]:
        templates[key.removeprefix("chat_template_")] = Path(files.pop(key)).read_text(encoding="utf-8")
    if list(templates) == ["default"]:
        init_kwargs["chat_template"] = templates["default"]
    elif templates:
        init_kwargs["chat_template"] = templates

    init_kwargs.update(kwargs)
    if "additional_special_tokens" in init_kwargs and not init_kwargs.get("extra_special_tokens"):
        init_kwargs["extra_special_tokens"] = init_kwargs.pop("additional_special_tokens")

    special_map_file = files.pop("special_tokens_map_file", None)
    added_tokens_file = files.pop("added_tokens_file", None)
    for key, file in files.items():
        if kwargs.get(key) is None:
            init_kwargs[key] = file
    init_kwargs["name_or_path"] = path

    added_decoder: dict[int, AddedToken] = {}
    if "added_tokens_decoder" in init_kwargs:
        for index, token in init_kwargs["added_tokens_decoder"].items():
            if isinstance(token, dict):
                token = AddedToken(**{k: v for k, v in token.items() if k != "__type"})
            if not isinstance(token, AddedToken):
                raise TypeError(
                    f"Found a {token.__class__} in the saved `added_tokens_decoder`, should be a dictionary or an "
                    "AddedToken instance"
                )
            added_decoder[int(index)] = token
    else:
        if special_map_file is not None:
            # Unlike transformers, `additional_special_tokens` here counts as special for added_tokens.json
            # below too, so those tokens are skipped by `decode(skip_special_tokens=True)`.
            for key, value in read_json_object(special_map_file).items():
                if kwargs.get(key):
                    continue  # the caller's value wins
                if isinstance(value, dict) and key != "extra_special_tokens":
                    value = AddedToken(
                        **{k: v for k, v in value.items() if k not in ("special", "__type")}, special=True
                    )
                elif key in ("extra_special_tokens", "additional_special_tokens") and isinstance(value, list):
                    key = "extra_special_tokens"
                    merged = list(init_kwargs.get("extra_special_tokens") or [])
                    for token in value:
                        if isinstance(token, dict):
                            token = AddedToken(
                                **{k: v for k, v in token.items() if k not in ("special", "__type")},
                                special=True,
                            )
                        if token not in merged:
                            merged.append(token)
                    value = merged
                init_kwargs[key] = value
        if added_tokens_file is not None:
            specials = {str(init_kwargs[k]) for k in cls.SPECIAL_TOKENS_ATTRIBUTES if init_kwargs.get(k)}
            extra = init_kwargs.get("extra_special_tokens") or []
            specials.update(str(t) for t in (extra.values() if isinstance(extra, dict) else extra))
            for content, index in read_json_object(added_tokens_file).items():
                special = content in specials
                added_decoder[int(index)] = AddedToken(
                    content, rstrip=False, lstrip=False, normalized=not special, special=special
                )
        if tokenizer_file is not None:
            for token in read_json_object(tokenizer_file).get("added_tokens", []):
                token = dict(token)
                index = token.pop("id")
                added_decoder[int(index)] = AddedToken(**token)
    init_kwargs["added_tokens_decoder"] = added_decoder
    init_kwargs = to_added_tokens(init_kwargs)
    by_content = {str(t): t for t in added_decoder.values()}
    for key in cls.SPECIAL_TOKENS_ATTRIBUTES:
        if init_kwargs.get(key) is not None and by_content:
            init_kwargs[key] = by_content.get(str(init_kwargs[key]), init_kwargs[key])
    if isinstance(init_kwargs.get("extra_special_tokens"), dict):
        named = init_kwargs.setdefault("model_specific_special_tokens", {})
        named.update(init_kwargs.pop("extra_special_tokens"))
    return cls(*init_inputs, **init_kwargs)
