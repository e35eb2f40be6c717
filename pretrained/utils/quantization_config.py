"""Quantization configs with transformers' names, fields, defaults and JSON form.

A config says how a model is (or is to be) quantized; ``config.json`` stores it under
``quantization_config``, and :mod:`pretrained.quantizers` turns it into a quantizer while loading.
Importing this module does not import torch: only the dtype fields of :class:`BitsAndBytesConfig` need
it, and they import it when a config is built.
"""

from __future__ import annotations

import copy
import json
import logging
import os
from enum import StrEnum
from typing import Any

from pretrained.utils.io import atomic_write_text, jsonable

logger = logging.getLogger("pretrained")

__all__ = ["AwqBackend", "AwqConfig", "AwqFormat", "BitsAndBytesConfig", "GPTQConfig", "QuantizationConfigMixin",
           "QuantizationMethod", "TorchAoConfig"]


class QuantizationMethod(StrEnum):
    """The ``quant_method`` values a saved ``quantization_config`` may carry (transformers' list)."""

    BITS_AND_BYTES = "bitsandbytes"
    GPTQ = "gptq"
    AWQ = "awq"
    AQLM = "aqlm"
    VPTQ = "vptq"
    QUANTO = "quanto"
    EETQ = "eetq"
    HIGGS = "higgs"
    HQQ = "hqq"
    COMPRESSED_TENSORS = "compressed-tensors"
    FBGEMM_FP8 = "fbgemm_fp8"
    TORCHAO = "torchao"
    GGUF = "gguf"
    BITNET = "bitnet"
    SPQR = "spqr"
    FP8 = "fp8"
    QUARK = "quark"
    FPQUANT = "fp_quant"
    AUTOROUND = "auto-round"
    MXFP4 = "mxfp4"
    NVFP4 = "nvfp4"
    MXFP8 = "mxfp8"
    METAL = "metal"
    FOUR_OVER_SIX = "fouroversix"
    SINQ = "sinq"
    GEMMA = "gemma"


class AwqFormat(StrEnum):
    """How an AWQ checkpoint packs its weights (``version`` in older files)."""

    GEMM = "gemm"
    GEMV = "gemv"
    GEMV_FAST = "gemv_fast"
    LLM_AWQ = "llm-awq"


class AwqBackend(StrEnum):
    """The kernel families an AWQ checkpoint may name; ``pretrained`` runs them all with its own kernels."""

    LEGACY_AWQ = "autoawq"
    AUTO = "auto"
    AUTO_TRAINABLE = "auto_trainable"
    MACHETE = "machete"
    MARLIN = "marlin"
    EXLLAMA_V2 = "exllama_v2"
    EXLLAMA_V1 = "exllama_v1"
    GEMM = "gemm"
    GEMM_TRITON = "gemm_triton"
    GEMV = "gemv"
    GEMV_FAST = "gemv_fast"
    TORCH_AWQ = "torch_awq"
    TORCH_FUSED_AWQ = "torch_fused_awq"


class QuantizationConfigMixin:
    """Base of every quantization config: dict / JSON round trips and ``update``.

    Attributes:
        quant_method: The :class:`QuantizationMethod` the config belongs to.
    """

    quant_method: QuantizationMethod

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], return_unused_kwargs: bool = False, **kwargs: Any) -> Any:
        """A config from its dict form; ``kwargs`` that are attributes of the config override it.

        Returns:
            The config, or ``(config, unused kwargs)`` with ``return_unused_kwargs=True``.
        """
        config = cls(**config_dict)
        unused = config.update(**kwargs)
        return (config, unused) if return_unused_kwargs else config

    def to_dict(self) -> dict[str, Any]:
        """Every attribute, as ``config.json`` stores it."""
        return copy.deepcopy(self.__dict__)

    def to_diff_dict(self) -> dict[str, Any]:
        """The attributes that differ from the defaults (all of them unless the config says otherwise)."""
        return self.to_dict()

    def to_json_string(self, use_diff: bool = True) -> str:
        """The config as sorted, indented JSON (only non-default values when ``use_diff``)."""
        data = self.to_diff_dict() if use_diff else self.to_dict()
        return json.dumps(jsonable(data), indent=2, sort_keys=True) + "\n"

    def to_json_file(self, json_file_path: str | os.PathLike) -> None:
        """Write every attribute as JSON to ``json_file_path`` (atomically)."""
        atomic_write_text(json_file_path, json.dumps(jsonable(self.to_dict()), indent=2, sort_keys=True) + "\n")

    def update(self, **kwargs: Any) -> dict[str, Any]:
        """Set the attributes among ``kwargs`` the config has; returns the others."""
        used = [key for key in kwargs if hasattr(self, key)]
        for key in used:
            setattr(self, key, kwargs[key])
        return {key: value for key, value in kwargs.items() if key not in used}

    def __iter__(self):
        """``dict(config)`` gives its attributes, as for a dict config."""
        yield from copy.deepcopy(self.__dict__).items()

    def __repr__(self) -> str:
        return f"{type(self).__name__} {self.to_json_string()}"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_dict() == other.to_dict()

    __hash__ = None  # mutable


_QUANT_STORAGE = ("float16", "float32", "int8", "uint8", "float64", "bfloat16")


def _exclusive_flag(name: str, other: str) -> property:
    """A bool property stored as ``_<name>`` that refuses to be true while ``other`` is (one of bitsandbytes'
    two modes)."""

    def get(self: Any) -> bool:
        return getattr(self, f"_{name}")

    def set_(self: Any, value: bool) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"{name} must be a boolean")
        if getattr(self, other) and value:
            raise ValueError("load_in_4bit and load_in_8bit are both True, but only one can be used at the same time")
        setattr(self, f"_{name}", value)

    return property(get, set_)


class BitsAndBytesConfig(QuantizationConfigMixin):
    """bitsandbytes quantization: LLM.int8() (``load_in_8bit``) or 4-bit NF4 / FP4 (``load_in_4bit``).

    Args:
        load_in_8bit: Replace linear layers with ``bnb.nn.Linear8bitLt`` (int8 weights, one scale per row).
        load_in_4bit: Replace linear layers with ``bnb.nn.Linear4bit`` (4-bit weights in blocks of 64).
        llm_int8_threshold: Activations above this magnitude run in 16 bits (LLM.int8()'s outliers).
        llm_int8_skip_modules: Module names kept unquantized (replacing the default skip of the output head).
        llm_int8_enable_fp32_cpu_offload: Allow modules mapped to the CPU or disk next to accelerator ones
            (kept unquantized).
        llm_int8_has_fp16_weight: Keep 16-bit main weights in 8-bit layers (for training them).
        bnb_4bit_compute_dtype: The dtype 4-bit layers compute in (``torch.float32`` when ``None``).
        bnb_4bit_quant_type: ``"fp4"`` or ``"nf4"``.
        bnb_4bit_use_double_quant: Quantize the 4-bit blocks' scales again (saves ~0.4 bit per weight).
        bnb_4bit_quant_storage: The dtype the packed 4-bit values are stored in (``torch.uint8`` when ``None``).

    Raises:
        ValueError: both ``load_in_4bit`` and ``load_in_8bit``, or a dtype name that is not one.
        TypeError: a field of the wrong type.
    """

    def __init__(
        self,
        load_in_8bit: bool = False,
        load_in_4bit: bool = False,
        llm_int8_threshold: float = 6.0,
        llm_int8_skip_modules: list[str] | None = None,
        llm_int8_enable_fp32_cpu_offload: bool = False,
        llm_int8_has_fp16_weight: bool = False,
        bnb_4bit_compute_dtype: Any = None,
        bnb_4bit_quant_type: str = "fp4",
        bnb_4bit_use_double_quant: bool = False,
        bnb_4bit_quant_storage: Any = None,
        **kwargs: Any,
    ):
        import torch

        self.quant_method = QuantizationMethod.BITS_AND_BYTES
        if load_in_4bit and load_in_8bit:
            raise ValueError("load_in_4bit and load_in_8bit are both True, but only one can be used at the same "
                             "time: choose 8-bit (LLM.int8()) or 4-bit (nf4 / fp4).")
        self._load_in_8bit = load_in_8bit
        self._load_in_4bit = load_in_4bit
        self.llm_int8_threshold = llm_int8_threshold
        self.llm_int8_skip_modules = llm_int8_skip_modules
        self.llm_int8_enable_fp32_cpu_offload = llm_int8_enable_fp32_cpu_offload
        self.llm_int8_has_fp16_weight = llm_int8_has_fp16_weight
        self.bnb_4bit_quant_type = bnb_4bit_quant_type
        self.bnb_4bit_use_double_quant = bnb_4bit_use_double_quant
        if bnb_4bit_compute_dtype is None:
            self.bnb_4bit_compute_dtype = torch.float32
        elif isinstance(bnb_4bit_compute_dtype, str):
            dtype = getattr(torch, bnb_4bit_compute_dtype, None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"bnb_4bit_compute_dtype {bnb_4bit_compute_dtype!r} is not a torch dtype name.")
            self.bnb_4bit_compute_dtype = dtype
        elif isinstance(bnb_4bit_compute_dtype, torch.dtype):
            self.bnb_4bit_compute_dtype = bnb_4bit_compute_dtype
        else:
            raise ValueError("bnb_4bit_compute_dtype must be a string or a torch.dtype")
        if bnb_4bit_quant_storage is None:
            self.bnb_4bit_quant_storage = torch.uint8
        elif isinstance(bnb_4bit_quant_storage, str):
            if bnb_4bit_quant_storage not in _QUANT_STORAGE:
                raise ValueError(f"bnb_4bit_quant_storage must be one of {list(_QUANT_STORAGE)}, "
                                 f"got {bnb_4bit_quant_storage!r}.")
            self.bnb_4bit_quant_storage = getattr(torch, bnb_4bit_quant_storage)
        elif isinstance(bnb_4bit_quant_storage, torch.dtype):
            self.bnb_4bit_quant_storage = bnb_4bit_quant_storage
        else:
            raise ValueError("bnb_4bit_quant_storage must be a string or a torch.dtype")
        # The saved form repeats the flags under their private names; they are not options.
        kwargs = {k: v for k, v in kwargs.items() if k not in ("_load_in_4bit", "_load_in_8bit", "quant_method")}
        if kwargs:
            logger.info("Unused kwargs: %s. These kwargs are not used in %s.", list(kwargs), type(self).__name__)
        self.post_init()

    load_in_4bit = _exclusive_flag("load_in_4bit", "load_in_8bit")
    load_in_8bit = _exclusive_flag("load_in_8bit", "load_in_4bit")

    def post_init(self) -> None:
        """Check every field's type (and the 4-bit type's value)."""
        import torch

        for name in ("load_in_4bit", "load_in_8bit", "llm_int8_enable_fp32_cpu_offload", "llm_int8_has_fp16_weight",
                     "bnb_4bit_use_double_quant"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a boolean")
        if not isinstance(self.llm_int8_threshold, float):
            raise TypeError("llm_int8_threshold must be a float")
        if self.llm_int8_skip_modules is not None and not isinstance(self.llm_int8_skip_modules, list):
            raise TypeError("llm_int8_skip_modules must be a list of strings")
        if not isinstance(self.bnb_4bit_compute_dtype, torch.dtype):
            raise TypeError("bnb_4bit_compute_dtype must be torch.dtype")
        if not isinstance(self.bnb_4bit_quant_type, str):
            raise TypeError("bnb_4bit_quant_type must be a string")
        if self.load_in_4bit and self.bnb_4bit_quant_type not in ("fp4", "nf4"):
            raise ValueError(f"bnb_4bit_quant_type must be 'fp4' or 'nf4', got {self.bnb_4bit_quant_type!r}.")

    def is_quantizable(self) -> bool:
        """Whether the config asks for 8-bit or 4-bit layers."""
        return self.load_in_8bit or self.load_in_4bit

    def quantization_method(self) -> str | None:
        """``"llm_int8"``, ``"fp4"``, ``"nf4"``, or ``None`` when neither flag is set."""
        if self.load_in_8bit:
            return "llm_int8"
        if self.load_in_4bit and self.bnb_4bit_quant_type in ("fp4", "nf4"):
            return self.bnb_4bit_quant_type
        return None

    def to_dict(self) -> dict[str, Any]:
        out = copy.deepcopy(self.__dict__)
        out["bnb_4bit_compute_dtype"] = str(out["bnb_4bit_compute_dtype"]).removeprefix("torch.")
        out["bnb_4bit_quant_storage"] = str(out["bnb_4bit_quant_storage"]).removeprefix("torch.")
        out["load_in_4bit"] = self.load_in_4bit
        out["load_in_8bit"] = self.load_in_8bit
        return out

    def to_diff_dict(self) -> dict[str, Any]:
        default = BitsAndBytesConfig().to_dict()
        return {key: value for key, value in self.to_dict().items() if value != default.get(key)}

    def __repr__(self) -> str:
        return f"{type(self).__name__} {json.dumps(jsonable(self.to_dict()), indent=2, sort_keys=True)}\n"


class TorchAoConfig(QuantizationConfigMixin):
    """torchao quantization through ``torchao.quantization.quantize_``.

    Args:
        quant_type: A torchao config object: ``Int8WeightOnlyConfig()``,
            ``Int8DynamicActivationInt8WeightConfig()``, ``Int4WeightOnlyConfig(group_size=...)``, ...
        modules_to_not_convert: Module names kept unquantized (the output head is kept by default).
        include_input_output_embeddings: Quantize the embeddings too.
        untie_embedding_weights: Untie the output head from the input embeddings before quantizing them.

    Raises:
        ImportError: torchao is not installed.
        ValueError: ``quant_type`` given as a string (older transformers' form).
        TypeError: ``quant_type`` is not a torchao config.
    """

    def __init__(self, quant_type: Any, modules_to_not_convert: list | None = None,
                 include_input_output_embeddings: bool = False, untie_embedding_weights: bool = False,
                 **kwargs: Any):
        self.quant_method = QuantizationMethod.TORCHAO
        self.quant_type = quant_type
        self.modules_to_not_convert = modules_to_not_convert
        self.include_input_output_embeddings = include_input_output_embeddings
        self.untie_embedding_weights = untie_embedding_weights
        self.post_init()

    def post_init(self) -> None:
        """Check that torchao is there and ``quant_type`` is one of its configs."""
        if isinstance(self.quant_type, str):
            raise ValueError(
                f"String-based quantization type {self.quant_type!r} is not supported (transformers 5 dropped it): "
                "pass the torchao config object, e.g. TorchAoConfig(Int8WeightOnlyConfig()).")
        base = _torchao_base_config()
        if not isinstance(self.quant_type, base):
            raise TypeError(f"quant_type must be an AOBaseConfig instance, got {type(self.quant_type).__name__}.")

    def get_apply_tensor_subclass(self) -> Any:
        """The torchao config to apply."""
        return self.quant_type

    def to_dict(self) -> dict[str, Any]:
        from torchao.core.config import config_to_dict

        out = super().to_dict()
        out["quant_type"] = {"default": config_to_dict(self.quant_type)}
        return out

    @classmethod
    def from_dict(cls, config_dict: dict[str, Any], return_unused_kwargs: bool = False, **kwargs: Any) -> Any:
        _torchao_base_config()
        from torchao.core.config import config_from_dict

        data = dict(config_dict)
        quant_type = data.pop("quant_type", None)
        if isinstance(quant_type, dict):
            if set(quant_type) != {"default"}:
                raise ValueError("A saved torchao quant_type is a dict with the one key 'default', got "
                                 f"{sorted(quant_type)}.")
            quant_type = config_from_dict(quant_type["default"])
        data.pop("quant_method", None)
        config = cls(quant_type=quant_type, **data)
        unused = config.update(**kwargs)
        return (config, unused) if return_unused_kwargs else config

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and jsonable(self.to_dict()) == jsonable(other.to_dict())


def _torchao_base_config() -> type:
    try:
        from torchao.core.config import AOBaseConfig
    except ImportError:
        raise ImportError("TorchAoConfig requires torchao: pip install torchao") from None
    return AOBaseConfig


class GPTQConfig(QuantizationConfigMixin):
    """A GPTQ checkpoint's settings (``pretrained`` reads GPTQ checkpoints; it does not calibrate).

    Args:
        bits: Bits per weight: 2, 3, 4 or 8.
        tokenizer, dataset: Calibration inputs (for quantizing with other tools; unused when loading).
        group_size: Weights per scale along the input dimension, ``-1`` for one group per row.
        damp_percent: Hessian dampening used when calibrating (between 0 and 1).
        desc_act: Columns were quantized in decreasing activation order (``g_idx`` maps them to groups).
        act_group_aware: Group-aware activation order (switched off when ``desc_act``).
        sym: Symmetric quantization (zero point fixed at the middle of the range).
        true_sequential, model_seqlen, block_name_to_quantize, module_name_preceding_first_block, batch_size,
            pad_token_id, cache_block_outputs, modules_in_block_to_quantize: Calibration settings.
        format: ``"gptq"`` (v1) or ``"gptq_v2"`` (``checkpoint_format`` in older files).
        meta: Tool versions and other notes.
        backend: The kernel family to use (``"auto"`` when ``None``).
        max_input_length: Buffer size for the exllama act-order kernels.

    Raises:
        ValueError: bits, group size, dampening or dataset out of range.
    """

    def __init__(
        self,
        bits: int,
        tokenizer: Any = None,
        dataset: list[str] | str | None = None,
        group_size: int = 128,
        damp_percent: float = 0.1,
        desc_act: bool = False,
        act_group_aware: bool = True,
        sym: bool = True,
        true_sequential: bool = True,
        format: str = "gptq",
        meta: dict[str, Any] | None = None,
        backend: str | None = None,
        model_seqlen: int | None = None,
        block_name_to_quantize: str | None = None,
        module_name_preceding_first_block: list[str] | None = None,
        batch_size: int = 1,
        pad_token_id: int | None = None,
        max_input_length: int | None = None,
        cache_block_outputs: bool = True,
        modules_in_block_to_quantize: list[list[str]] | None = None,
        **kwargs: Any,
    ):
        self.quant_method = QuantizationMethod.GPTQ
        self.bits = bits
        self.tokenizer = tokenizer
        self.dataset = dataset
        self.group_size = group_size
        self.damp_percent = damp_percent
        self.desc_act = desc_act
        self.act_group_aware = act_group_aware
        self.sym = sym
        self.true_sequential = true_sequential
        self.format = format.lower()
        if kwargs.get("checkpoint_format") is not None:  # the older name of ``format``
            self.format = kwargs.pop("checkpoint_format").lower()
        self.meta = meta
        self.backend = backend.lower() if isinstance(backend, str) else backend
        self.model_seqlen = model_seqlen
        self.block_name_to_quantize = block_name_to_quantize
        self.module_name_preceding_first_block = module_name_preceding_first_block
        self.batch_size = batch_size
        self.pad_token_id = pad_token_id
        self.max_input_length = max_input_length
        self.cache_block_outputs = cache_block_outputs
        self.modules_in_block_to_quantize = modules_in_block_to_quantize
        self.post_init()

    def get_loading_attributes(self) -> dict[str, Any]:
        """The fields a ``from_pretrained`` argument may change on a saved config."""
        return {key: copy.deepcopy(value) for key, value in self.__dict__.items()
                if key in ("max_input_length", "backend")}

    def post_init(self) -> None:
        """Check the ranges; switch ``act_group_aware`` off under ``desc_act``; default the backend."""
        if self.bits not in (2, 3, 4, 8):
            raise ValueError(f"Only support quantization to [2,3,4,8] bits but found {self.bits}")
        if self.group_size != -1 and self.group_size <= 0:
            raise ValueError("group_size must be greater than 0 or equal to -1")
        if not 0 < self.damp_percent < 1:
            raise ValueError("damp_percent must between 0 and 1.")
        if self.dataset is not None:
            if isinstance(self.dataset, str):
                if self.dataset not in ("wikitext2", "c4", "c4-new"):
                    raise ValueError("dataset given as a string must be one of ['wikitext2','c4','c4-new'], "
                                     f"got {self.dataset!r}")
            elif not isinstance(self.dataset, list):
                raise ValueError("dataset needs to be either a list of string or a value in "
                                 f"['wikitext2','c4','c4-new'], but we found {self.dataset!r}")
        if self.desc_act and self.act_group_aware:
            self.act_group_aware = False
            logger.warning("`act_group_aware` has been auto-disabled as it is not compatible with `desc_act = True`.")
        if self.backend is None:
            self.backend = "auto"

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out["checkpoint_format"] = self.format  # older readers look for this name
        return out

    def to_dict_optimum(self) -> dict[str, Any]:
        """The dict form optimum reads (the same as :meth:`to_dict`)."""
        return self.to_dict()

    @classmethod
    def from_dict_optimum(cls, config_dict: dict[str, Any]) -> GPTQConfig:
        """A config from optimum's dict form."""
        return cls(**config_dict)


class AwqConfig(GPTQConfig):
    """An AWQ checkpoint's settings (``pretrained`` reads AWQ checkpoints; it does not calibrate).

    Args:
        bits: Bits per weight (4).
        group_size: Weights per scale along the input dimension (``-1``: one group per row).
        zero_point: Asymmetric quantization with a zero point per group.
        backend: An :class:`AwqBackend` name (``"autoawq"`` is read as ``"auto"``).
        modules_to_not_convert: Module names left unquantized in the checkpoint.
        format: An :class:`AwqFormat` (``version`` in older files).

    Raises:
        ValueError: an unknown format or backend.
    """

    def __init__(self, bits: int = 4, group_size: int = 128, zero_point: bool = True,
                 backend: AwqBackend | str = AwqBackend.AUTO, modules_to_not_convert: list | None = None,
                 **kwargs: Any):
        fmt = kwargs.pop("format", AwqFormat.GEMM)
        if kwargs.get("version") is not None:  # the older name of ``format``
            fmt = kwargs.pop("version").lower()
        kwargs.pop("checkpoint_format", None)
        kwargs.pop("quant_method", None)
        if backend == AwqBackend.LEGACY_AWQ:
            backend = AwqBackend.AUTO
        self.zero_point = zero_point
        self.modules_to_not_convert = modules_to_not_convert
        super().__init__(bits=bits, group_size=group_size, backend=backend, format=fmt, **kwargs)
        self.quant_method = QuantizationMethod.AWQ

    def post_init(self) -> None:
        """Check the format and backend names (``backend="llm-awq"`` means the llm-awq format)."""
        if self.backend == "llm-awq":
            self.format = AwqFormat.LLM_AWQ
            self.backend = AwqBackend.AUTO
        if self.format not in [f.value for f in AwqFormat]:
            raise ValueError(f"Invalid format '{self.format}'. Must be one of: {[f.value for f in AwqFormat]}")
        if self.backend not in [b.value for b in AwqBackend]:
            raise ValueError(f"Invalid backend '{self.backend}'. Must be one of: {[b.value for b in AwqBackend]}")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        out.pop("checkpoint_format")
        out["version"] = self.format  # older readers look for this name
        return out
