"""`SpecialTokensMixin`: the named special tokens (`bos_token`, `pad_token_id`, ...) and adding tokens.

Named special tokens live in one map, so `tok.pad_token`, `tok.pad_token_id` and extra named tokens
(`image_token`) are read and written through `__getattr__` / `__setattr__`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tokenizers import AddedToken


def _checked_token(key: str, value: Any) -> str | AddedToken:
    if not isinstance(value, (str, AddedToken)):
        raise TypeError(f"Special token {key} has to be either str or AddedToken but got: {type(value)}")
    return value


def _as_added_special(token: str | AddedToken) -> AddedToken:
    # Strings become special tokens matched verbatim: no stripping, no normalization.
    if isinstance(token, str):
        return AddedToken(token, rstrip=False, lstrip=False, normalized=False, special=True)
    return token


class SpecialTokensMixin:
    """Special-token state and methods of `PreTrainedTokenizerBase`.

    The host class provides `convert_tokens_to_ids`, `convert_ids_to_tokens` and `_add_tokens`.
    """

    SPECIAL_TOKENS_ATTRIBUTES = [
        "bos_token",
        "eos_token",
        "unk_token",
        "sep_token",
        "pad_token",
        "cls_token",
        "mask_token",
    ]

    def _init_special_tokens(self, kwargs: dict[str, Any]) -> dict[str, str | AddedToken]:
        # Pops the special-token arguments from `kwargs` into the map and returns the extra *named*
        # tokens; the caller sets those last, once every plain attribute exists.
        self._special_tokens_map: dict[str, str | AddedToken | None] = dict.fromkeys(
            self.SPECIAL_TOKENS_ATTRIBUTES
        )
        self._extra_special_tokens: list[str | AddedToken] = []
        named_extra = kwargs.pop("model_specific_special_tokens", None) or {}
        if not isinstance(named_extra, dict):
            raise TypeError("model_specific_special_tokens must be a dictionary of token name to token value")
        auto_named: dict[str, str | AddedToken] = {}
        for key in list(kwargs):
            if key in self.SPECIAL_TOKENS_ATTRIBUTES:
                value = kwargs.pop(key)
                if value is None:
                    continue
                self._special_tokens_map[key] = _checked_token(key, value)
            elif key == "extra_special_tokens":
                value = kwargs.pop(key)
                if value is None:
                    continue
                if isinstance(value, dict):
                    self._set_model_specific_special_tokens(value)
                elif isinstance(value, (list, tuple)):
                    self._extra_special_tokens = list(value)
                else:
                    raise TypeError(
                        "extra_special_tokens must be a list/tuple of tokens or a dict of named tokens"
                    )
            elif key.endswith("_token") and isinstance(kwargs[key], (str, AddedToken)):
                auto_named[key] = kwargs.pop(key)

        return {**auto_named, **named_extra}

    def _set_model_specific_special_tokens(self, special_tokens: dict[str, str | AddedToken]) -> None:
        # Named tokens beyond the standard seven (e.g. `image_token`); the list is per instance.
        self.SPECIAL_TOKENS_ATTRIBUTES = self.SPECIAL_TOKENS_ATTRIBUTES + [
            k for k in special_tokens if k not in self.SPECIAL_TOKENS_ATTRIBUTES
        ]
        for key, value in special_tokens.items():
            self._special_tokens_map[key] = _checked_token(key, value)

    def __setattr__(self, key: str, value: Any) -> None:
        base = key.removesuffix("_ids").removesuffix("_id") if key.endswith(("_id", "_ids")) else key
        specials = self.__dict__.get("SPECIAL_TOKENS_ATTRIBUTES", type(self).SPECIAL_TOKENS_ATTRIBUTES)
        if base in specials:
            if key != base and value is not None:
                value = self.convert_ids_to_tokens(value)
            if value is not None and not isinstance(value, (str, AddedToken)):
                raise ValueError(f"Cannot set a non-string value as the {base}")
            self._special_tokens_map[base] = value
            return
        if base in ("extra_special_tokens", "additional_special_tokens"):
            if value is not None and not isinstance(value, (list, tuple)):
                raise ValueError(f"extra_special_tokens must be a list or tuple, got {type(value)}")
            if key != base and value is not None:
                value = [self.convert_ids_to_tokens(v) for v in value]
            self._extra_special_tokens = [] if value is None else list(value)
            return
        super().__setattr__(key, value)

    def __getattr__(self, key: str) -> Any:
        # Only called when normal lookup fails: named special tokens and their ids live in a map.
        if key.startswith("__"):
            raise AttributeError(key)
        base = key.removesuffix("_ids").removesuffix("_id") if key.endswith(("_id", "_ids")) else key
        specials = self.__dict__.get("SPECIAL_TOKENS_ATTRIBUTES", type(self).SPECIAL_TOKENS_ATTRIBUTES)
        if base in specials:
            value = self.__dict__.get("_special_tokens_map", {}).get(base)
            if value is None:
                return None
            return self.convert_tokens_to_ids(str(value)) if key != base else str(value)
        if base in ("extra_special_tokens", "additional_special_tokens"):
            tokens = [str(t) for t in self.__dict__.get("_extra_special_tokens", [])]
            return self.convert_tokens_to_ids(tokens) if key != base else tokens
        raise AttributeError(f"{self.__class__.__name__} has no attribute {key}")

    @property
    def pad_token_type_id(self) -> int:
        """Token type id used for padding positions."""
        return self._pad_token_type_id

    @property
    def special_tokens_map(self) -> dict[str, str]:
        """The named special tokens that are set, as strings (`{"pad_token": "[PAD]", ...}`)."""
        return {
            attr: str(self._special_tokens_map[attr])
            for attr in self.SPECIAL_TOKENS_ATTRIBUTES
            if self._special_tokens_map.get(attr) is not None
        }

    @property
    def all_special_tokens(self) -> list[str]:
        """Named and extra special tokens, deduplicated, in declaration order."""
        seen: dict[str, None] = {}
        for attr in self.SPECIAL_TOKENS_ATTRIBUTES:
            value = self._special_tokens_map.get(attr)
            if value is not None:
                seen.setdefault(str(value))
        for token in self._extra_special_tokens:
            seen.setdefault(str(token))
        return list(seen)

    @property
    def all_special_ids(self) -> list[int]:
        """Ids of `all_special_tokens`."""
        return self.convert_tokens_to_ids(self.all_special_tokens)

    def add_special_tokens(
        self,
        special_tokens_dict: Mapping[str, str | AddedToken | Sequence[str | AddedToken]],
        replace_extra_special_tokens: bool = True,
    ) -> int:
        """Set named special tokens (and `extra_special_tokens`) and add the missing ones to the vocabulary.

        Args:
            special_tokens_dict: Keys among `SPECIAL_TOKENS_ATTRIBUTES` and `"extra_special_tokens"`
                (`"additional_special_tokens"` is accepted as its old name).
            replace_extra_special_tokens: Replace the current extra special tokens instead of extending them.

        Returns:
            The number of tokens added to the vocabulary.
        """
        if not special_tokens_dict:
            return 0
        special_tokens_dict = dict(special_tokens_dict)
        if "additional_special_tokens" in special_tokens_dict and not special_tokens_dict.get(
            "extra_special_tokens"
        ):
            special_tokens_dict["extra_special_tokens"] = special_tokens_dict.pop("additional_special_tokens")
        allowed = set(self.SPECIAL_TOKENS_ATTRIBUTES) | {"extra_special_tokens"}
        to_add: list[AddedToken] = []
        for key, value in special_tokens_dict.items():
            if key not in allowed:
                raise ValueError(f"Key {key} is not a valid special token. Valid keys are: {allowed}")
            if key == "extra_special_tokens":
                if not isinstance(value, (list, tuple)) or not all(
                    isinstance(t, (str, AddedToken)) for t in value
                ):
                    raise ValueError(
                        f"Tokens {value} for key {key} should all be str or AddedToken instances"
                    )
                new = [
                    _as_added_special(t)
                    for t in value
                    if replace_extra_special_tokens or str(t) not in self.extra_special_tokens
                ]
                if replace_extra_special_tokens and new:
                    self._extra_special_tokens = list(new)
                else:
                    self._extra_special_tokens.extend(new)
                to_add.extend(new)
            else:
                if not isinstance(value, (str, AddedToken)):
                    raise ValueError(f"Token {value} for key {key} should be a str or an AddedToken instance")
                value = _as_added_special(value)
                setattr(self, key, value)
                to_add.append(value)
        return self.add_tokens(to_add, special_tokens=True)

    def add_tokens(
        self, new_tokens: str | AddedToken | Sequence[str | AddedToken], special_tokens: bool = False
    ) -> int:
        """Add tokens to the vocabulary (those already present keep their id).

        Args:
            new_tokens: A token or a list of tokens (`str` or `tokenizers.AddedToken`).
            special_tokens: Add them as special tokens (never split, not normalized, skippable in decode).

        Returns:
            The number of tokens added to the vocabulary.
        """
        if not new_tokens:
            return 0
        if not isinstance(new_tokens, (list, tuple)):
            new_tokens = [new_tokens]
        return self._add_tokens(list(new_tokens), special_tokens=special_tokens)

    def _add_tokens(self, new_tokens: list[str | AddedToken], special_tokens: bool = False) -> int:
        raise NotImplementedError

    def get_special_tokens_mask(
        self,
        token_ids_0: list[int],
        token_ids_1: list[int] | None = None,
        already_has_special_tokens: bool = False,
    ) -> list[int]:
        """1 for special tokens, 0 for others, over ids that already contain the special tokens."""
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError(
                    "You should not supply a second sequence if the provided sequence of ids is already formatted "
                    "with special tokens for the model."
                )
            special = set(self.all_special_ids)
            return [1 if int(t) in special else 0 for t in token_ids_0]
        raise NotImplementedError(
            f"{self.__class__.__name__} does not implement get_special_tokens_mask for non-formatted sequences"
        )
