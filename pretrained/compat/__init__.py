"""transformers' module paths on ``pretrained``, and the ``transformers`` alias.

Programs import from deep paths (``transformers.trainer_utils``, ``transformers.models.bert.modeling_bert``).
:data:`MODULES` is the one table of those paths: alias module -> {name: module that defines it}
(``"*"``: every public name of that module). An import hook builds each alias module on first import, a
lazily filled module object, so ``from pretrained.trainer_utils import get_last_checkpoint`` works
wherever ``from transformers.trainer_utils import get_last_checkpoint`` does, without a tree of stub files.

:func:`install_alias` (used by ``python -m pretrained.compat script.py``) also makes ``transformers``
resolve to ``pretrained``: ``transformers.x.y`` *is* the module ``pretrained.x.y``. The top-level
``transformers`` is a thin view of ``pretrained`` whose ``__version__`` is the transformers API level
pretrained implements, so version checks in downstream code take their newest branch.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.metadata
import sys
import types
from collections.abc import Iterator
from typing import Any

_T = "pretrained.training"
_FAMILIES = {"bert": "bert", "roberta": "bert", "distilbert": "distilbert", "gpt2": "gpt2", "llama": "llama",
             "mistral": "llama", "qwen2": "llama", "qwen3": "llama", "vit": "vit", "clip": "clip",
             "t5": "t5", "mt5": "t5", "umt5": "t5",
             "bart": "bart", "mbart": "mbart", "marian": "marian",
             "whisper": "whisper"}
_COLLATORS = {"*": f"{_T}.collators"}

MODULES: dict[str, dict[str, str]] = {
    # A real module listed here keeps its own names and gains these (the layers below cannot import them).
    "utils": {"PaddingStrategy": "pretrained.tokenization.batch_encoding",
              "TensorType": "pretrained.tokenization.batch_encoding", "ModelOutput": "pretrained.modeling.outputs"},
    "hf_argparser": {"HfArgumentParser": f"{_T}.argparser"},
    "training_args": dict.fromkeys(("TrainingArguments", "ParallelMode", "OptimizerNames"), f"{_T}.arguments"),
    "training_args_seq2seq": {"Seq2SeqTrainingArguments": f"{_T}.seq2seq"},
    "trainer_seq2seq": {"Seq2SeqTrainer": f"{_T}.seq2seq"},
    "trainer": {"Trainer": f"{_T}.trainer", "TRAINER_STATE_NAME": f"{_T}.checkpoints",
                "TRAINING_ARGS_NAME": f"{_T}.checkpoints"},
    "trainer_utils": {
        "get_last_checkpoint": f"{_T}.checkpoints", "PREFIX_CHECKPOINT_DIR": f"{_T}.checkpoints",
        "EvalPrediction": f"{_T}.outputs", "EvalLoopOutput": f"{_T}.outputs", "PredictionOutput": f"{_T}.outputs",
        "TrainOutput": f"{_T}.outputs", "speed_metrics": f"{_T}.outputs", "set_seed": f"{_T}.seeding",
        "align_special_tokens": f"{_T}.special_tokens",
        **dict.fromkeys(("SchedulerType", "IntervalStrategy", "SaveStrategy", "HubStrategy"), f"{_T}.outputs"),
    },
    "trainer_callback": {"*": f"{_T}.callbacks", "TrainerState": f"{_T}.state", "TrainerControl": f"{_T}.state"},
    "optimization": {"*": f"{_T}.schedulers"},
    "data": _COLLATORS,
    "data.data_collator": {**_COLLATORS, "DataCollatorMixin": f"{_T}.collator_mixin"},
    "integrations": {"TensorBoardCallback": f"{_T}.callbacks",
                     **dict.fromkeys(("is_deepspeed_available", "is_tensorboard_available", "is_wandb_available"),
                                     "pretrained.utils.import_utils")},
    "modeling_outputs": {"*": "pretrained.modeling.outputs"},
    "distributed.configuration_utils": {"DistributedConfig": "pretrained.distributed.mesh"},
    "modeling_utils": {"PreTrainedModel": "pretrained.modeling.base", "unwrap_model": "pretrained.modeling.unwrap"},
    "configuration_utils": {"PretrainedConfig": "pretrained.configuration",
                            "PreTrainedConfig": "pretrained.configuration"},
    "tokenization_utils_base": {"*": "pretrained.tokenization.batch_encoding",
                                "PreTrainedTokenizerBase": "pretrained.tokenization.base"},
    "tokenization_utils_fast": {"PreTrainedTokenizerFast": "pretrained.tokenization.fast"},
    "tokenization_utils": {"PreTrainedTokenizer": "pretrained.tokenization.fast"},
    "tokenization_utils_tokenizers": {"TokenizersBackend": "pretrained.tokenization.fast"},
    # run_translation.py tests isinstance(tokenizer, SentencePieceBackend): served from NOT_IMPLEMENTED below.
    "tokenization_utils_sentencepiece": {"SentencePieceBackend": "pretrained"},
    "testing_utils": {"CaptureLogger": "pretrained.utils.logging"},
    "models.auto.configuration_auto": {"AutoConfig": "pretrained.models.auto",
                                       "CONFIG_MAPPING": "pretrained.models.auto",
                                       "CONFIG_MAPPING_NAMES": "pretrained.models.auto"},
    "models.auto.modeling_auto": {"*": "pretrained.models.auto"},
    "models.auto.tokenization_auto": {"AutoTokenizer": "pretrained.tokenization.auto"},
    "quantizers": {},  # a real package: its modules carry transformers' names, the backends' files are below
    "quantizers.quantizer_bnb_4bit": {"Bnb4BitHfQuantizer": "pretrained.quantizers.bitsandbytes"},
    "quantizers.quantizer_bnb_8bit": {"Bnb8BitHfQuantizer": "pretrained.quantizers.bitsandbytes"},
    "quantizers.quantizer_torchao": {"TorchAoHfQuantizer": "pretrained.quantizers.torchao"},
    "quantizers.quantizer_gptq": {"GptqHfQuantizer": "pretrained.quantizers.gptq"},
    "quantizers.quantizer_awq": {"AwqQuantizer": "pretrained.quantizers.awq"},
    "utils.quantization_config": {},
}
for _family, _module in _FAMILIES.items():
    for _path in (f"models.{_family}", f"models.{_family}.modeling_{_family}",
                  f"models.{_family}.configuration_{_family}"):
        MODULES[_path] = {f"{_family}*": f"pretrained.models.{_module}"}  # the family's own names
del _family, _module, _path
# Image and audio processing.
_PR = "pretrained.processing"
MODULES.update({
    "image_processing_utils": {**dict.fromkeys(("BaseImageProcessor", "ImageProcessingMixin", "get_size_dict"),
                                               f"{_PR}.image_processing"),
                               "BatchFeature": f"{_PR}.feature_extraction"},
    "image_processing_base": {"ImageProcessingMixin": f"{_PR}.image_processing",
                              "BatchFeature": f"{_PR}.feature_extraction"},
    "image_processing_backends": {"PilBackend": f"{_PR}.image_processing"},
    "image_utils": {"*": f"{_PR}.image_utils"},
    "image_transforms": {"*": f"{_PR}.image_transforms"},
    "feature_extraction_utils": dict.fromkeys(("BatchFeature", "FeatureExtractionMixin"),
                                              f"{_PR}.feature_extraction"),
    "feature_extraction_sequence_utils": {"SequenceFeatureExtractor": f"{_PR}.feature_extraction"},
    "processing_utils": {"ProcessorMixin": f"{_PR}.processor"},
    "models.auto.image_processing_auto": {"AutoImageProcessor": f"{_PR}.auto"},
    "models.auto.processing_auto": {"AutoProcessor": f"{_PR}.auto"},
    "models.auto.feature_extraction_auto": {"AutoFeatureExtractor": f"{_PR}.auto"},
    "audio_utils": {"*": f"{_PR}.audio_utils"},
})
# The processors and tokenizers transformers keeps in files beside a model: file -> {name: module}. The
# family's package serves them too (``from transformers.models.clip import CLIPProcessor``).
_TOK = "pretrained.tokenization"
_BESIDE_MODELS = {
    "models.vit.image_processing_vit": {"ViTImageProcessor": f"{_PR}.vit"},
    "models.vit.image_processing_pil_vit": {"ViTImageProcessorPil": f"{_PR}.vit"},
    "models.clip.image_processing_clip": {"CLIPImageProcessor": f"{_PR}.clip"},
    "models.clip.image_processing_pil_clip": {"CLIPImageProcessorPil": f"{_PR}.clip"},
    "models.clip.processing_clip": {"CLIPProcessor": f"{_PR}.processor"},
    "models.clip.tokenization_clip": {"CLIPTokenizer": f"{_TOK}.models"},
    "models.whisper.feature_extraction_whisper": {"WhisperFeatureExtractor": f"{_PR}.whisper"},
    "models.whisper.tokenization_whisper": {"WhisperTokenizer": f"{_TOK}.whisper"},
    "models.whisper.tokenization_whisper_fast": {"WhisperTokenizerFast": f"{_TOK}.whisper"},
    "models.whisper.processing_whisper": {"WhisperProcessor": f"{_PR}.processor"},
}
for _path, _table in _BESIDE_MODELS.items():
    MODULES[_path] = dict(_table)
    MODULES[_path.rsplit(".", 1)[0]].update(_table)
del _path, _table
# Names served beyond those: the fast tokenizer's name (one class here) and the Whisper tokenizer's tables.
MODULES["models.clip"]["CLIPTokenizerFast"] = f"{_TOK}.models"
MODULES["models.whisper.tokenization_whisper"].update(
    dict.fromkeys(("LANGUAGES", "TO_LANGUAGE_CODE", "TASK_IDS"), f"{_TOK}.whisper"))
del _PR, _TOK
for _family in ("bart", "mbart", "marian", "whisper"):  # programs import the encoder-decoders' label shifting too
    MODULES[f"models.{_family}.modeling_{_family}"]["shift_tokens_right"] = f"pretrained.models.{_family}"
del _family

# Names transformers 5.24 has for families pretrained does not implement yet, seen in programs that
# import many classes and use one: importable, and any use raises NotImplementedError naming them.
NOT_IMPLEMENTED: dict[str, str] = {
    **dict.fromkeys(("MBart50Tokenizer", "MBart50TokenizerFast"), "the mBART-50 tokenizers"),
    **dict.fromkeys(("M2M100ForConditionalGeneration", "M2M100Tokenizer", "NllbTokenizer",
                     "NllbTokenizerFast"), "the M2M100 / NLLB family"),
    # transformers' base of the tokenizers that run sentencepiece in Python (SigLIP, BertGeneration, ...);
    # pretrained's tokenizers (T5, Marian, mBART included) all run on `tokenizers`, as transformers' do for those.
    "SentencePieceBackend": "the Python SentencePiece tokenizer backend",
}


def not_implemented(name: str) -> type:
    """A stand-in class for ``name`` that can be imported and compared against (``isinstance`` is
    False) but raises ``NotImplementedError`` naming it when built or loaded."""
    what = NOT_IMPLEMENTED[name]

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError(f"{name}: {what} is not implemented in pretrained yet.")

    namespace = {"__init__": refuse, "from_pretrained": classmethod(refuse), "from_config": classmethod(refuse),
                 "__doc__": f"Not implemented: {what}.", "__module__": "pretrained"}
    return type(name, (), namespace)


class AliasModule(types.ModuleType):
    """A module of :data:`MODULES`: its names are looked up in their defining modules on first use."""

    def __init__(self, name: str, table: dict[str, str], package: bool) -> None:
        super().__init__(name, f"transformers-compatible module path, served by {__name__}")
        self._table = table
        if package:
            self.__path__: list[str] = []

    def _wildcards(self) -> Iterator[tuple[str, types.ModuleType]]:
        for key, module in self._table.items():
            if key.endswith("*"):
                yield key[:-1].lower(), importlib.import_module(module)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        path = f"{self.__name__.removeprefix('pretrained.')}.{name}"
        if path in MODULES or path in _PARENTS:
            return importlib.import_module(f"{self.__name__}.{name}")
        if name in self._table:
            value = getattr(importlib.import_module(self._table[name]), name)
        else:
            value = next((getattr(module, name) for prefix, module in self._wildcards()
                          if name.lower().startswith(prefix) and not name.startswith("_")
                          and not isinstance(getattr(module, name, None), types.ModuleType | None)), None)
            if value is None:
                raise AttributeError(f"module {self.__name__!r} has no attribute {name!r}")
        setattr(self, name, value)
        return value

    def __dir__(self) -> list[str]:
        names = {n for n in self._table if not n.endswith("*")}
        for prefix, module in self._wildcards():
            names.update(n for n in getattr(module, "__all__", dir(module))
                         if not n.startswith("_") and n.lower().startswith(prefix)
                         and not isinstance(getattr(module, n, None), types.ModuleType))
        return sorted(names | set(self.__dict__))

    @property
    def __all__(self) -> list[str]:  # what `from pretrained.x import *` takes
        return [n for n in self.__dir__() if not n.startswith("_")]


class _Loader(importlib.abc.Loader):
    """Builds an alias module, re-uses an existing module (``transformers.x`` -> ``pretrained.x``), or
    runs a real module that alias paths go below, marking it as a package."""

    def __init__(self, table: dict[str, str] | None = None, same_as: str | None = None,
                 real: importlib.abc.Loader | None = None) -> None:
        self.table, self.same_as, self.real = table, same_as, real

    def __getattr__(self, name: str) -> Any:
        # get_source, get_filename, ... of a real module's own loader (tracebacks, inspect, coverage).
        real = self.__dict__.get("real")
        if real is None:
            raise AttributeError(name)
        return getattr(real, name)

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType | None:
        if self.same_as is not None:
            return importlib.import_module(self.same_as)
        if self.real is not None:
            return self.real.create_module(spec)
        return AliasModule(spec.name, self.table or {}, package=_has_children(spec.name))

    def exec_module(self, module: types.ModuleType) -> None:
        if self.real is not None:
            if not hasattr(module, "__path__"):
                module.__path__ = []  # so that the alias paths below it can be imported
            self.real.exec_module(module)
            _extend(module, self.table or {})


def _extend(module: types.ModuleType, table: dict[str, str]) -> None:
    """Give a real module the names ``table`` lists, looked up on first use after its own."""
    own = module.__dict__.get("__getattr__")

    def __getattr__(name: str) -> Any:
        if own is not None:
            try:
                return own(name)
            except AttributeError:
                pass
        path = f"{module.__name__.removeprefix('pretrained.')}.{name}"
        if path in MODULES or path in _PARENTS:  # an alias path below it, reached as an attribute
            return importlib.import_module(f"{module.__name__}.{name}")
        if name not in table:
            raise AttributeError(f"module {module.__name__!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(table[name]), name)
        setattr(module, name, value)
        return value

    __getattr__.compat_table = table  # type: ignore[attr-defined]
    module.__getattr__ = __getattr__  # type: ignore[method-assign]


def _has_children(fullname: str) -> bool:
    rest = fullname.removeprefix("pretrained.")
    return any(path.startswith(rest + ".") for path in MODULES)


_PARENTS = {path.rsplit(".", i)[0] for path in MODULES for i in range(1, path.count(".") + 1)}
_alias_on = False


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if fullname.startswith("transformers.") and _alias_on:
            return importlib.machinery.ModuleSpec(fullname, _Loader(same_as="pretrained" + fullname[12:]))
        if not fullname.startswith("pretrained."):
            return None
        rest = fullname[len("pretrained."):]
        if rest not in MODULES and rest not in _PARENTS:
            return None
        real = importlib.machinery.PathFinder.find_spec(fullname, path)
        if real is not None:
            if real.loader is None:
                return None
            real.loader = _Loader(table=MODULES.get(rest, {}), real=real.loader)
            return real
        return importlib.machinery.ModuleSpec(fullname, _Loader(table=MODULES.get(rest, {})),
                                              is_package=_has_children(fullname))

    def find_distributions(self, context: Any = None) -> list:
        # Under the alias, importlib.metadata.version("transformers") reports the API level too.
        name = getattr(context, "name", None) or ""
        if _alias_on and name.lower().replace("-", "_") == "transformers":
            return [_AliasDistribution()]
        return []


class _AliasDistribution(importlib.metadata.Distribution):
    def read_text(self, filename: str) -> str | None:
        if filename == "METADATA":
            from pretrained.utils.versions import TRANSFORMERS_API_VERSION

            return f"Metadata-Version: 2.1\nName: transformers\nVersion: {TRANSFORMERS_API_VERSION}\n"
        return None

    def locate_file(self, path: Any) -> Any:
        return path


class TransformersAlias(types.ModuleType):
    """The top-level ``transformers`` under the alias: every attribute is ``pretrained``'s, except
    ``__version__``, the transformers API level pretrained implements."""

    def __getattr__(self, name: str) -> Any:
        return getattr(importlib.import_module("pretrained"), name)

    def __dir__(self) -> list[str]:
        return dir(importlib.import_module("pretrained"))


def install() -> None:
    """Serve the :data:`MODULES` paths under ``pretrained`` (done by ``import pretrained``)."""
    if not any(isinstance(finder, _Finder) for finder in sys.meta_path):
        sys.meta_path.insert(0, _Finder())
    for path, table in MODULES.items():  # a listed real module imported before the hook (rare)
        module = sys.modules.get(f"pretrained.{path}")
        if (module is not None and not isinstance(module, AliasModule)
                and not hasattr(vars(module).get("__getattr__"), "compat_table")):
            _extend(module, table)


def install_alias() -> None:
    """Make ``import transformers`` (and every ``transformers.x.y``) resolve to ``pretrained``.

    Raises:
        RuntimeError: the real ``transformers`` was imported already in this process.
    """
    global _alias_on
    from pretrained.utils.versions import TRANSFORMERS_API_VERSION

    current = sys.modules.get("transformers")
    if current is not None and not isinstance(current, TransformersAlias):
        raise RuntimeError("The real transformers is already imported in this process; install the alias "
                           "before anything imports transformers.")
    install()
    _alias_on = True
    alias = TransformersAlias("transformers", "transformers API served by pretrained")
    alias.__version__ = TRANSFORMERS_API_VERSION
    alias.__path__ = []
    sys.modules["transformers"] = alias
