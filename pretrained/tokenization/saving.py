"""`SavingMixin`: `from_pretrained` and `save_pretrained` of `PreTrainedTokenizerFast`.

Loading itself (file resolution, saved configuration -> constructor arguments) is in `loading.py`.
"""

from __future__ import annotations

import copy
import json
import os
from typing import Any

from tokenizers import AddedToken

from ..utils.io import atomic_path, atomic_write_text, output_folder
from .loading import (
    CHAT_TEMPLATE_DIR,
    CHAT_TEMPLATE_FILE,
    TOKENIZER_CONFIG_FILE,
    TOKENIZER_FILE,
    load_tokenizer,
)


def _jsonable(obj: Any) -> Any:
    # AddedToken values are written the way transformers writes them, with a "__type" marker.
    if isinstance(obj, AddedToken):
        return {"__type": "AddedToken", **obj.__getstate__()}
    if isinstance(obj, dict):
        return {k: _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    return obj


class SavingMixin:
    """Loading and saving of a tokenizer folder.

    The host class provides `init_kwargs`, the special-token attributes, `chat_template`,
    `saved_class_name` and the Rust tokenizer as `_tokenizer`.
    """

    @classmethod
    def from_pretrained(
        cls, pretrained_model_name_or_path: str | os.PathLike, *init_inputs: Any, **kwargs: Any
    ) -> Any:
        """Load a tokenizer from a folder or a repo id in the Hugging Face cache.

        Reads `tokenizer.json`, `tokenizer_config.json`, `chat_template.jinja`, the legacy
        `special_tokens_map.json` / `added_tokens.json`, and, without `tokenizer.json`, the class's legacy
        vocabulary files. Keyword arguments override the saved configuration.

        Args:
            pretrained_model_name_or_path: A folder, a repo id, or the path of a `tokenizer.json`.
            cache_dir: Hugging Face cache to search.
            revision: Branch, tag or commit of a repo.
            local_files_only: Never download.
            token: Token for private repos.
            subfolder: Folder inside the repo holding the files.
        """
        return load_tokenizer(cls, pretrained_model_name_or_path, *init_inputs, **kwargs)

    def _config_for_saving(self) -> dict[str, Any]:
        config = copy.deepcopy(self.init_kwargs)
        for key in ("add_bos_token", "add_eos_token"):
            config.pop(key, None)
        for key in [k for k in self.init_kwargs if k not in ("add_bos_token", "add_eos_token")] + [
            "model_max_length"
        ]:
            if key in self.__dict__ or key in ("model_max_length", "backend"):
                config[key] = getattr(self, key)
        for key in (
            "padding_side",
            "truncation_side",
            "model_input_names",
            "clean_up_tokenization_spaces",
            "split_special_tokens",
        ):
            if key in self.init_kwargs:
                config[key] = getattr(self, key)
        config.update(self.special_tokens_map)
        if self._extra_special_tokens:
            config["extra_special_tokens"] = self.extra_special_tokens
        for key in (
            "chat_template",
            "added_tokens_decoder",
            "additional_special_tokens",
            "name_or_path",
            "special_tokens_map_file",
            "tokenizer_file",
            "device_map",
            "slow_tokenizer_class",
            "files_loaded",
            "tokenizer_object",
            "post_processor",
            *self.vocab_files_names,
        ):
            config.pop(key, None)
        if self.response_template is not None:
            config["response_template"] = self.response_template
        if self.chat_control_tokens is not None:
            config["chat_control_tokens"] = list(self.chat_control_tokens)
        if self._processor_class is not None:
            config["processor_class"] = self._processor_class
        config["tokenizer_class"] = self.saved_class_name
        return _jsonable(config)

    def save_pretrained(
        self,
        save_directory: str | os.PathLike,
        legacy_format: bool | None = None,
        filename_prefix: str | None = None,
        push_to_hub: bool = False,
        **kwargs: Any,
    ) -> tuple[str, ...]:
        """Write `tokenizer_config.json`, `tokenizer.json` and the chat template(s) to a folder (atomically).

        Args:
            save_directory: Target folder (created if needed).
            legacy_format: Ignored: the unified `tokenizer.json` is always written.
            filename_prefix: Prefix for the file names.
            push_to_hub: Not supported (raises).
            save_jinja_files: Write chat templates as `.jinja` files (default) instead of into the config.

        Returns:
            The paths written.
        """
        output_folder(save_directory, push_to_hub, not_a_folder=ValueError)
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        config = self._config_for_saving()
        written: list[str] = []
        template = self.chat_template
        if kwargs.get("save_jinja_files", True) and template is not None:
            templates = template if isinstance(template, dict) else {"default": template}
            template_dir = os.path.join(save_directory, prefix + CHAT_TEMPLATE_DIR)
            for name, text in templates.items():
                if name == "default":
                    path = os.path.join(save_directory, prefix + CHAT_TEMPLATE_FILE)
                else:
                    if not name or os.path.basename(name) != name or name.startswith("."):
                        raise ValueError(f"Invalid chat template name: {name!r}")
                    os.makedirs(template_dir, exist_ok=True)
                    path = os.path.join(template_dir, f"{name}.jinja")
                atomic_write_text(path, text)
                written.append(path)
        elif isinstance(template, dict):
            config["chat_template"] = [{"name": k, "template": v} for k, v in template.items()]
        elif template is not None:
            config["chat_template"] = template
        config_path = os.path.join(save_directory, prefix + TOKENIZER_CONFIG_FILE)
        atomic_write_text(
            config_path, json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
        )
        tokenizer_path = os.path.join(save_directory, prefix + TOKENIZER_FILE)
        with atomic_path(tokenizer_path) as tmp:
            self._tokenizer.save(tmp)
        return (config_path, *written, tokenizer_path)
