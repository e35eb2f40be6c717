"""`HfArgumentParser`: command-line options made from dataclass fields, as transformers makes them.

Each field becomes `--name` (and `--name-with-dashes`); its type hint picks the parsing: `bool` takes
`--flag`, `--flag true|false` and, when the default is `True`, `--no_flag`; an `Enum` or `Literal` offers
its values as choices; `list[X]` takes one or more values; `Optional[X]` parses as `X`. The field's
metadata `help` is the help text, `aliases` adds option names, and argparse keywords in the metadata
(`nargs`, `const`, `choices`, `metavar`) pass through. Fields without a default are required.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import types
import typing
from argparse import ArgumentDefaultsHelpFormatter, ArgumentParser, ArgumentTypeError
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import Any, Literal, Union

DataClass = Any
DataClassType = Any

# metadata keys handed to `add_argument`; others (e.g. a library's own markers) stay in the dataclass
_ARGPARSE_KEYS = ("help", "choices", "nargs", "const", "metavar", "type", "default", "required", "action")
_CONFIG_SUFFIXES = (".json", ".yaml", ".yml")


def string_to_bool(value: str | bool) -> bool:
    """Read a command-line truth value (`yes/no`, `true/false`, `t/f`, `y/n`, `1/0`, any case).

    Args:
        value: The text given on the command line (a bool passes through).

    Raises:
        ArgumentTypeError: For any other text.
    """
    if isinstance(value, bool):
        return value
    if value.lower() in ("yes", "true", "t", "y", "1"):
        return True
    if value.lower() in ("no", "false", "f", "n", "0"):
        return False
    raise ArgumentTypeError(f"expected a truth value (yes/no, true/false, t/f, y/n, 1/0), got {value!r}")


def make_choice_type_function(choices: Iterable[Any]) -> Callable[[str], Any]:
    """A parser that maps a choice's text (`str(choice)`) back to the choice itself."""
    by_text = {str(choice): choice for choice in choices}
    return lambda text: by_text.get(text, text)


def HfArg(  # noqa: N802 - transformers' public name
    *,
    aliases: str | list[str] | None = None,
    help: str | None = None,  # noqa: A002 - the argparse keyword
    default: Any = dataclasses.MISSING,
    default_factory: Callable[[], Any] = dataclasses.MISSING,  # type: ignore[assignment]
    metadata: dict | None = None,
    **kwargs: Any,
) -> Any:
    """A dataclass field with its command-line `aliases` and `help` given directly.

    Args:
        aliases: Extra option names, e.g. `["--example", "-e"]`.
        help: Help text of the option.
        default: Default value; without it (or `default_factory`) the option is required.
        default_factory: Zero-argument function giving the default (for lists and dicts).
        metadata: Further field metadata.
        **kwargs: Passed to `dataclasses.field`.
    """
    metadata = dict(metadata or {})
    if aliases is not None:
        metadata["aliases"] = aliases
    if help is not None:
        metadata["help"] = help
    return dataclasses.field(metadata=metadata, default=default, default_factory=default_factory, **kwargs)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) is Union or isinstance(hint, types.UnionType)


def _one_type(name: str, hint: Any) -> Any:
    """The single type a union field parses as: `X` for `X | None`; the non-`str` scalar of `X | str`."""
    if not _is_union(hint):
        return hint
    members = [m for m in typing.get_args(hint) if m is not type(None)]
    if members == [bool]:
        return bool | None  # an optional flag: left off it stays None, so it needs a value when given
    if len(members) == 1:
        return members[0]
    if str not in members:
        raise ValueError(
            f"field {name!r}: a union of {', '.join(map(repr, members))} cannot be parsed from the command "
            "line; use one type, `X | None` or `X | str`"
        )
    others = [m for m in members if m is not str]
    plain = len(others) == 1 and typing.get_origin(others[0]) is None and isinstance(others[0], type)
    if plain and not issubclass(others[0], (dict, list)):
        return others[0]  # e.g. `SchedulerType | str` offers the enum's choices, `str | bool` is a flag
    return str


class HfArgumentParser(ArgumentParser):
    """An `argparse.ArgumentParser` whose options come from the fields of dataclasses.

    Options may still be added by hand; their values come back as one extra `Namespace` after the
    dataclasses. A dataclass with an `_argument_group_name` attribute gets its own help group.

    Args:
        dataclass_types: A dataclass type, or several, to fill from the command line.
        **kwargs: Passed to `argparse.ArgumentParser` (help shows defaults unless `formatter_class` is given).

    Example:
        ```python
        parser = HfArgumentParser((ModelArguments, TrainingArguments))
        model_args, training_args = parser.parse_args_into_dataclasses()
        ```
    """

    def __init__(self, dataclass_types: DataClassType | Iterable[DataClassType] | None = None, **kwargs: Any):
        kwargs.setdefault("formatter_class", ArgumentDefaultsHelpFormatter)
        super().__init__(**kwargs)
        if dataclass_types is None:
            dataclass_types = []
        elif dataclasses.is_dataclass(dataclass_types) or not isinstance(dataclass_types, Iterable):
            dataclass_types = [dataclass_types]
        self.dataclass_types = list(dataclass_types)
        for dtype in self.dataclass_types:
            if not (isinstance(dtype, type) and dataclasses.is_dataclass(dtype)):
                raise TypeError(f"HfArgumentParser takes dataclass types, got {dtype!r}")
            self._add_dataclass_arguments(dtype)

    def _add_dataclass_arguments(self, dtype: type) -> None:
        group = (
            self.add_argument_group(dtype._argument_group_name)
            if hasattr(dtype, "_argument_group_name")
            else self
        )
        try:
            hints = typing.get_type_hints(dtype)
        except NameError as e:
            raise RuntimeError(
                f"the type hints of {dtype.__name__} cannot be resolved ({e}); declare the dataclass at module "
                "level so its annotations can be evaluated"
            ) from e
        for f in dataclasses.fields(dtype):
            if f.init:
                _add_field(group, f, _one_type(f.name, hints[f.name]))

    def parse_args_into_dataclasses(
        self,
        args: list[str] | None = None,
        return_remaining_strings: bool = False,
        look_for_args_file: bool = True,
        args_filename: str | None = None,
        args_file_flag: str | None = None,
    ) -> tuple[DataClass, ...]:
        """Parse command-line arguments into instances of the dataclasses.

        A command line that is a single `.json` (or `.yaml`) file reads the values from that file instead.

        Args:
            args: The arguments (default: `sys.argv[1:]`).
            return_remaining_strings: Also return the arguments no option took, instead of raising.
            look_for_args_file: Prepend the arguments in a `<script>.args` file next to the script, if any.
            args_filename: Prepend the arguments in this file instead.
            args_file_flag: An option (e.g. `"--args_file"`) naming more argument files; later ones win.

        Returns:
            The dataclass instances in order, then a `Namespace` of hand-added options (if any), then the
            remaining strings when `return_remaining_strings` is set.

        Raises:
            ValueError: When arguments are left over and `return_remaining_strings` is not set.
        """
        given = sys.argv[1:] if args is None else list(args)
        if len(given) == 1 and given[0].endswith(_CONFIG_SUFFIXES) and os.path.isfile(given[0]):
            read = self.parse_json_file if given[0].endswith(".json") else self.parse_yaml_file
            outputs = read(given[0])
            return (*outputs, []) if return_remaining_strings else outputs
        files = []
        if args_filename:
            files.append(Path(args_filename))
        elif look_for_args_file and sys.argv and sys.argv[0]:
            files.append(Path(sys.argv[0]).with_suffix(".args"))
        if args_file_flag:
            flag_parser = ArgumentParser(add_help=False)
            flag_parser.add_argument(args_file_flag, type=str, action="append")
            found, given = flag_parser.parse_known_args(given)
            files += [Path(p) for p in getattr(found, args_file_flag.lstrip("-").replace("-", "_")) or []]
        from_files = [word for path in files if path.is_file() for word in path.read_text().split()]
        namespace, remaining = self.parse_known_args(from_files + given)
        outputs = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            values = {k: v for k, v in vars(namespace).items() if k in names}
            for name in values:
                delattr(namespace, name)
            outputs.append(dtype(**values))
        if vars(namespace):
            outputs.append(namespace)
        if return_remaining_strings:
            return (*outputs, remaining)
        if remaining:
            raise ValueError(f"arguments not used by any option of HfArgumentParser: {remaining}")
        return tuple(outputs)

    def parse_dict(self, args: dict[str, Any], allow_extra_keys: bool = False) -> tuple[DataClass, ...]:
        """Build the dataclasses from a dict of field values, without argparse.

        Args:
            args: Field name -> value.
            allow_extra_keys: Ignore keys no dataclass has instead of raising.

        Raises:
            ValueError: Naming the keys no dataclass has (unless `allow_extra_keys`).
        """
        if not isinstance(args, dict):
            raise ValueError(
                f"HfArgumentParser.parse_dict needs a dict of field values, got {type(args).__name__}"
            )
        unused = set(args)
        outputs = []
        for dtype in self.dataclass_types:
            names = {f.name for f in dataclasses.fields(dtype) if f.init}
            values = {k: v for k, v in args.items() if k in names}
            unused -= set(values)
            outputs.append(dtype(**values))
        if unused and not allow_extra_keys:
            owners = ", ".join(d.__name__ for d in self.dataclass_types)
            raise ValueError(f"keys not used by HfArgumentParser ({owners}): {sorted(unused)}")
        return tuple(outputs)

    def parse_json_file(
        self, json_file: str | os.PathLike, allow_extra_keys: bool = False
    ) -> tuple[DataClass, ...]:
        """Build the dataclasses from a JSON file holding one object of field values.

        Args:
            json_file: Path of the file.
            allow_extra_keys: Ignore keys no dataclass has instead of raising.
        """
        return self._parse_file(json_file, json.loads, json.JSONDecodeError, "JSON", allow_extra_keys)

    def parse_yaml_file(
        self, yaml_file: str | os.PathLike, allow_extra_keys: bool = False
    ) -> tuple[DataClass, ...]:
        """Build the dataclasses from a YAML file holding one mapping of field values.

        Reading YAML needs PyYAML (`pip install pyyaml`); the rest of the parser does not.

        Args:
            yaml_file: Path of the file.
            allow_extra_keys: Ignore keys no dataclass has instead of raising.
        """
        try:
            import yaml
        except ImportError as e:
            raise ImportError(f"reading {os.fspath(yaml_file)} needs PyYAML: pip install pyyaml") from e
        return self._parse_file(yaml_file, yaml.safe_load, yaml.YAMLError, "YAML", allow_extra_keys)

    def _parse_file(
        self, path: str | os.PathLike, load: Callable, error: type, kind: str, allow_extra_keys: bool
    ) -> tuple[DataClass, ...]:
        try:
            data = load(Path(path).read_text(encoding="utf-8"))
        except error as e:
            raise ValueError(f"{os.fspath(path)} is not valid {kind}: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(
                f"{os.fspath(path)} must hold one object of field values, got {type(data).__name__}"
            )
        return self.parse_dict(data, allow_extra_keys=allow_extra_keys)


def _add_field(parser: Any, f: dataclasses.Field, hint: Any) -> None:
    """Add one field's option(s) to `parser` (the parser itself or one of its groups)."""
    names = [f"--{f.name}"] + ([f"--{f.name.replace('_', '-')}"] if "_" in f.name else [])
    aliases = f.metadata.get("aliases", [])
    names += [aliases] if isinstance(aliases, str) else list(aliases)
    options = {k: v for k, v in f.metadata.items() if k in _ARGPARSE_KEYS}
    has_default = f.default is not dataclasses.MISSING
    has_factory = f.default_factory is not dataclasses.MISSING
    origin = typing.get_origin(hint)
    is_flag = hint is bool or hint == bool | None
    if origin is Literal or (isinstance(hint, type) and issubclass(hint, Enum)):
        choices = list(typing.get_args(hint)) if origin is Literal else [member.value for member in hint]
        options.setdefault("choices", choices)
        options.setdefault("type", make_choice_type_function(choices))
    elif is_flag:
        options.setdefault("type", string_to_bool)
        # `--flag` alone means True; an unset optional flag (`bool | None = None`) keeps None
        if hint is bool or (has_default and f.default is not None):
            options.setdefault("nargs", "?")
            options.setdefault("const", True)
            has_default = True
            if f.default is dataclasses.MISSING:
                options["default"] = False
    elif origin is list or (isinstance(hint, type) and issubclass(hint, list)):
        (item,) = typing.get_args(hint) or (str,)
        options.setdefault("type", item)
        options.setdefault("nargs", "+")
    else:
        options.setdefault("type", hint)
    if "default" not in options:
        if has_default:
            options["default"] = f.default
        elif has_factory:
            options["default"] = f.default_factory()
        elif not is_flag:  # an optional flag left off stays None
            options["required"] = True
    parser.add_argument(*names, **options)
    if is_flag and f.default is True:
        help_text = {"help": options["help"]} if "help" in options else {}
        parser.add_argument(
            f"--no_{f.name}",
            f"--no-{f.name.replace('_', '-')}",
            action="store_false",
            dest=f.name,
            default=False,
            **help_text,
        )
