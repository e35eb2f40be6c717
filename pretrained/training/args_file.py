"""`training_args.bin`: the file transformers' Trainer writes next to a model, written and read here.

transformers saves its `TrainingArguments` object with `torch.save`, so the file is a pickle whose
classes are transformers' own (`transformers.training_args.TrainingArguments`, the strategy enums of
`transformers.trainer_utils`, `transformers.trainer_pt_utils.AcceleratorConfig`). We write the same
objects by name without importing transformers: a pickler that emits those class references as
plain `GLOBAL` opcodes, so `torch.load(path, weights_only=False)` in a process with transformers
gives back a transformers `TrainingArguments` with our values.

Reading never runs a pickle: :func:`load_training_args` walks the file with an unpickler that knows
exactly these classes (turned into plain values) and refuses any other, so a file written by either
library reads back as a dict of fields.
"""

from __future__ import annotations

import dataclasses
import io
import os
import pickle
import zipfile
from typing import Any

_ARGS_CLASS = ("transformers.training_args", "TrainingArguments")
_ACCEL_CLASS = ("transformers.trainer_pt_utils", "AcceleratorConfig")
# field -> the transformers enum its value is stored as
_ENUM_FIELDS = {
    "eval_strategy": ("transformers.trainer_utils", "IntervalStrategy"),
    "logging_strategy": ("transformers.trainer_utils", "IntervalStrategy"),
    "save_strategy": ("transformers.trainer_utils", "SaveStrategy"),
    "hub_strategy": ("transformers.trainer_utils", "HubStrategy"),
    "lr_scheduler_type": ("transformers.trainer_utils", "SchedulerType"),
    "optim": ("transformers.training_args", "OptimizerNames"),
}
# transformers' AcceleratorConfig defaults (the object it stores when `accelerator_config` is unset)
_ACCEL_DEFAULTS = {"split_batches": False, "dispatch_batches": None, "even_batches": True,
                   "use_seedable_sampler": True, "non_blocking": False, "gradient_accumulation_kwargs": None}


class _Object:
    """An instance of a class named by module and name, to be pickled as `cls.__new__(cls)` + state."""

    def __init__(self, where: tuple[str, str], state: dict[str, Any]) -> None:
        self.where, self.state = where, state


class _Enum:
    """A member of a transformers enum, pickled as `Enum(value)`."""

    def __init__(self, where: tuple[str, str], value: str) -> None:
        self.where, self.value = where, value


class _Pickler(pickle._Pickler):  # the Python pickler: its `save` can be extended per object
    def save(self, obj: Any, save_persistent_id: bool = True) -> None:
        if isinstance(obj, _Object):
            self._global(obj.where)
            self.write(pickle.EMPTY_TUPLE + pickle.NEWOBJ)
            self.save(obj.state)
            self.write(pickle.BUILD)
        elif isinstance(obj, _Enum):
            self._global(obj.where)
            self.save((obj.value,))
            self.write(pickle.REDUCE)
        else:
            super().save(obj, save_persistent_id)

    def _global(self, where: tuple[str, str]) -> None:
        # written by name: the class need not be importable here (transformers is not)
        self.write(pickle.GLOBAL + f"{where[0]}\n{where[1]}\n".encode("ascii"))


class _PickleModule:
    """What `torch.save(pickle_module=...)` needs: a `Pickler` class and `dump`."""

    Pickler = _Pickler

    @staticmethod
    def dump(obj: Any, file: Any, protocol: int = 2) -> None:
        _Pickler(file, protocol).dump(obj)


def _state(args: Any) -> dict[str, Any]:
    state: dict[str, Any] = {}
    for f in dataclasses.fields(args):
        if f.metadata.get("alias"):
            continue
        value = getattr(args, f.name)
        if f.name.endswith("_token") and value is not None:
            value = f"<{f.name.upper()}>"  # a token never reaches a saved file
        elif f.name in _ENUM_FIELDS and value is not None:
            value = _Enum(_ENUM_FIELDS[f.name], getattr(value, "value", value))
        elif f.name == "accelerator_config":
            value = _Object(_ACCEL_CLASS, {**_ACCEL_DEFAULTS, **(value or {})})
        state[f.name] = value
    # attributes transformers sets in __post_init__ and reads later (device setup is left to recompute)
    state.update(_n_gpu=args.n_gpu, deepspeed_plugin=None, fsdp_plugin_args=None,
                 mixed_precision="bf16" if args.bf16 else "fp16" if args.fp16 else "no")
    return state


def save_training_args(args: Any, path: str | os.PathLike) -> None:
    """Write `args` to `path` as transformers writes `training_args.bin` (atomically, user's umask)."""
    import torch

    from pretrained.utils.io import atomic_path

    with atomic_path(path) as tmp:
        torch.save(_Object(_ARGS_CLASS, _state(args)), tmp, pickle_module=_PickleModule, pickle_protocol=2)


class _ReadOnly(pickle.Unpickler):
    """Knows the classes a `training_args.bin` holds, as plain values; refuses every other."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in (_ARGS_CLASS, _ACCEL_CLASS) or (
            module.startswith("transformers.") and name.endswith("Config")
        ):
            return _Fields
        if (module, name) in set(_ENUM_FIELDS.values()) or (
            module.startswith(("transformers.", "accelerate.")) and name.endswith(("Strategy", "Type", "Names",
                                                                                   "Mode"))
        ):
            return _enum_value
        if (module, name) == ("torch", "device"):
            return _enum_value
        if (module, name) == ("accelerate.state", "PartialState"):
            return _Fields
        raise pickle.UnpicklingError(f"training_args.bin: refusing to load {module}.{name} (not a field value)")

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("training_args.bin: holds tensor storage, not training arguments")


class _Fields(dict):
    """A pickled object's state, kept as a dict (`BUILD` updates it)."""

    def __setstate__(self, state: Any) -> None:
        if isinstance(state, tuple):  # (dict state, slots state)
            state = {**(state[0] or {}), **(state[1] or {})}
        self.update(state or {})


def _enum_value(*args: Any) -> Any:
    return args[0] if args else None


def load_training_args(path: str | os.PathLike) -> dict[str, Any]:
    """The fields stored in a `training_args.bin` written by transformers or by us, without unpickling
    any object (see the module docstring). Values of enums come back as their strings.

    Raises:
        ValueError: the file is not a `torch.save` archive of training arguments.
    """
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.endswith("/data.pkl") or n == "data.pkl"), None)
            if name is None:
                raise ValueError(f"{path}: no data.pkl inside; not a torch.save file")
            data = archive.read(name)
    except zipfile.BadZipFile as e:
        raise ValueError(f"{path}: not a torch.save archive ({e})") from e
    try:
        loaded = _ReadOnly(io.BytesIO(data)).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, TypeError) as e:
        raise ValueError(f"{path}: not readable as training arguments: {e}") from e
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: holds a {type(loaded).__name__}, not training arguments")
    out = dict(loaded)
    for key in ("distributed_state", "_setup_devices"):
        out.pop(key, None)
    if isinstance(out.get("accelerator_config"), dict):
        out["accelerator_config"] = dict(out["accelerator_config"])
    return out
