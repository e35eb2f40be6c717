"""pretrained: the transformers API for Hugging Face checkpoints, smaller and faster.

``import pretrained`` is cheap: every public name is resolved on first use, so
torch (and everything else heavy) is imported only when something needs it.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from pretrained import compat as _compat

__version__ = "0.1.0"

# public name -> module that defines it. Each area keeps its own block.
_EXPORTS: dict[str, str] = {}


def _export(module: str, *names: str) -> None:
    for name in names:
        _EXPORTS[name] = module


# --- configs and models (foundation) ---
_export("pretrained.configuration", "PretrainedConfig", "PreTrainedConfig")
_export("pretrained.modeling.outputs", "ModelOutput")
_export("pretrained.modeling.base", "PreTrainedModel")
_export(
    "pretrained.models.auto",
    "AutoConfig",
    "AutoModel",
    "AutoModelForMaskedLM",
    "AutoModelForSequenceClassification",
    "AutoModelForTokenClassification",
    "AutoModelForQuestionAnswering",
    "AutoModelForCausalLM",
    "AutoModelForSeq2SeqLM",
    "AutoModelForMultipleChoice",
    "AutoModelForPreTraining",
    "AutoModelForNextSentencePrediction",
)
_export(
    "pretrained.models.bert",
    "BertConfig",
    "BertModel",
    "BertForMaskedLM",
    "BertForSequenceClassification",
    "BertForTokenClassification",
    "BertForQuestionAnswering",
    "BertForMultipleChoice",
    "BertForPreTraining",
    "BertForNextSentencePrediction",
    "RobertaForMultipleChoice",
    "RobertaConfig",
    "RobertaModel",
    "RobertaForMaskedLM",
    "RobertaForSequenceClassification",
    "RobertaForTokenClassification",
    "RobertaForQuestionAnswering",
)
_export(
    "pretrained.models.distilbert",
    "DistilBertConfig",
    "DistilBertModel",
    "DistilBertForMaskedLM",
    "DistilBertForSequenceClassification",
    "DistilBertForTokenClassification",
    "DistilBertForQuestionAnswering",
    "DistilBertForMultipleChoice",
)

# --- tokenization ---
_export("pretrained.tokenization.auto", "AutoTokenizer")
_export(
    "pretrained.tokenization.batch_encoding",
    "BatchEncoding",
    "CharSpan",
    "TokenSpan",
    "PaddingStrategy",
    "TruncationStrategy",
    "TensorType",
)
_export("pretrained.tokenization.base", "PreTrainedTokenizerBase")
_export("pretrained.tokenization.fast", "PreTrainedTokenizerFast", "PreTrainedTokenizer", "TokenizersBackend")
_export(
    "pretrained.tokenization.models",
    "BertTokenizer",
    "BertTokenizerFast",
    "DistilBertTokenizer",
    "DistilBertTokenizerFast",
    "GPT2Tokenizer",
    "GPT2TokenizerFast",
    "RobertaTokenizer",
    "RobertaTokenizerFast",
    "LlamaTokenizer",
    "LlamaTokenizerFast",
    "T5Tokenizer",
    "T5TokenizerFast",
)
_export("pretrained.tokenization.models", "MT5Tokenizer", "MT5TokenizerFast", "BartTokenizer", "BartTokenizerFast",
        "MBartTokenizer", "MBartTokenizerFast")
_export("pretrained.tokenization.marian", "MarianTokenizer")

# --- images: processors (beside tokenization), models, pipelines ---
_export("pretrained.processing.feature_extraction", "BatchFeature", "FeatureExtractionMixin", "SequenceFeatureExtractor")
_export("pretrained.processing.image_processing", "ImageProcessingMixin", "BaseImageProcessor")
_export("pretrained.processing.image_utils", "load_image", "PILImageResampling", "ChannelDimension")
_export("pretrained.processing.vit", "ViTImageProcessor", "ViTImageProcessorPil")
_export("pretrained.processing.clip", "CLIPImageProcessor", "CLIPImageProcessorPil")
_export("pretrained.processing.processor", "ProcessorMixin", "CLIPProcessor")
_export("pretrained.processing.auto", "AutoImageProcessor", "AutoProcessor", "AutoFeatureExtractor")
_export("pretrained.processing.whisper", "WhisperFeatureExtractor")
_export("pretrained.tokenization.models", "CLIPTokenizer", "CLIPTokenizerFast")
_export("pretrained.models.auto", "AutoModelForImageClassification", "AutoModelForZeroShotImageClassification",
        "MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING", "MODEL_FOR_ZERO_SHOT_IMAGE_CLASSIFICATION_MAPPING")
_export("pretrained.models.vit", "ViTConfig", "ViTModel", "ViTForImageClassification", "ViTPreTrainedModel")
_export("pretrained.models.clip", "CLIPConfig", "CLIPTextConfig", "CLIPVisionConfig", "CLIPModel", "CLIPTextModel",
        "CLIPVisionModel", "CLIPTextModelWithProjection", "CLIPVisionModelWithProjection", "CLIPPreTrainedModel",
        "CLIPForImageClassification")
_export("pretrained.pipelines.image_classification", "ImageClassificationPipeline")
_export("pretrained.pipelines.zero_shot_image_classification", "ZeroShotImageClassificationPipeline")
_export("pretrained.pipelines.image_feature_extraction", "ImageFeatureExtractionPipeline")

# --- generation ---
_export("pretrained.generation.configuration_utils", "GenerationConfig")
_export("pretrained.generation.streamers", "TextStreamer", "TextIteratorStreamer")
_export(
    "pretrained.generation.logits_process",
    "LogitsProcessor",
    "LogitsProcessorList",
    "TemperatureLogitsWarper",
    "TopKLogitsWarper",
    "TopPLogitsWarper",
    "MinPLogitsWarper",
    "TypicalLogitsWarper",
    "RepetitionPenaltyLogitsProcessor",
    "NoRepeatNGramLogitsProcessor",
    "NoBadWordsLogitsProcessor",
    "SequenceBiasLogitsProcessor",
    "MinLengthLogitsProcessor",
    "MinNewTokensLengthLogitsProcessor",
    "ForcedBOSTokenLogitsProcessor",
    "ForcedEOSTokenLogitsProcessor",
    "EncoderRepetitionPenaltyLogitsProcessor",
    "EncoderNoRepeatNGramLogitsProcessor",
)
_export(
    "pretrained.generation.stopping_criteria",
    "StoppingCriteria",
    "StoppingCriteriaList",
    "MaxLengthCriteria",
    "MaxTimeCriteria",
    "EosTokenCriteria",
    "StopStringCriteria",
)
_export(
    "pretrained.generation.utils",
    "GenerateDecoderOnlyOutput",
    "GenerateBeamDecoderOnlyOutput",
)
_export("pretrained.modeling.cache", "Cache", "DynamicCache", "EncoderDecoderCache", "StaticCache")
_export("pretrained.models.auto", "AutoModelForSeq2SeqLM", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING")
_export("pretrained.models.t5", *(f"{p}{n}" for p in ("T5", "MT5", "UMT5") for n in (
    "Config", "PreTrainedModel", "Model", "ForConditionalGeneration", "EncoderModel", "ForSequenceClassification",
    "ForTokenClassification", "ForQuestionAnswering")))
_export("pretrained.distributed.mesh", "DistributedConfig")
_export("pretrained.models.gpt2", "GPT2Config", "GPT2Model", "GPT2LMHeadModel", "GPT2ForSequenceClassification")
_export(
    "pretrained.models.llama",
    "LlamaConfig",
    "LlamaModel",
    "LlamaForCausalLM",
    "LlamaForSequenceClassification",
    "MistralConfig",
    "MistralModel",
    "MistralForCausalLM",
    "MistralForSequenceClassification",
    "Qwen2Config",
    "Qwen2Model",
    "Qwen2ForCausalLM",
    "Qwen2ForSequenceClassification",
    "Qwen3Config",
    "Qwen3Model",
    "Qwen3ForCausalLM",
    "Qwen3ForSequenceClassification",
)
_export("pretrained.models.bart", "BartConfig", "BartModel", "BartForConditionalGeneration",
        "BartForSequenceClassification", "BartForQuestionAnswering", "BartForCausalLM", "BartPreTrainedModel")
_export("pretrained.models.mbart", "MBartConfig", "MBartModel", "MBartForConditionalGeneration",
        "MBartForSequenceClassification", "MBartForQuestionAnswering", "MBartForCausalLM")
_export("pretrained.models.whisper", "WhisperConfig", "WhisperModel", "WhisperForConditionalGeneration",
        "WhisperPreTrainedModel")
_export("pretrained.models.auto", "AutoModelForSpeechSeq2Seq")
_export("pretrained.generation.whisper", "WhisperTimeStampLogitsProcessor")
_export("pretrained.tokenization.whisper", "WhisperTokenizer", "WhisperTokenizerFast")
_export("pretrained.processing.processor", "WhisperProcessor")
_export("pretrained.pipelines.automatic_speech_recognition", "AutomaticSpeechRecognitionPipeline")
_export("pretrained.models.marian", "MarianConfig", "MarianModel", "MarianMTModel", "MarianForCausalLM")

# --- pipelines ---
_export("pretrained.pipelines", "pipeline", "get_supported_tasks")
_export("pretrained.pipelines.base", "Pipeline", "ChunkPipeline", "PipelineException")
_export("pretrained.pipelines.text_classification", "TextClassificationPipeline")
_export("pretrained.pipelines.token_classification", "TokenClassificationPipeline", "NerPipeline")
_export("pretrained.pipelines.question_answering", "QuestionAnsweringPipeline")
_export("pretrained.pipelines.fill_mask", "FillMaskPipeline")
_export("pretrained.pipelines.feature_extraction", "FeatureExtractionPipeline")
_export("pretrained.pipelines.zero_shot_classification", "ZeroShotClassificationPipeline")
_export("pretrained.pipelines.text_generation", "TextGenerationPipeline")

# --- training ---
_export("pretrained.training.arguments", "TrainingArguments")
_export("pretrained.training.trainer", "Trainer")
_export("pretrained.training.state", "TrainerState", "TrainerControl")
_export(
    "pretrained.training.callbacks",
    "TrainerCallback",
    "DefaultFlowCallback",
    "ProgressCallback",
    "PrinterCallback",
    "EarlyStoppingCallback",
    "TensorBoardCallback",
)
_export("pretrained.training.outputs", "EvalPrediction", "PredictionOutput", "TrainOutput", "SchedulerType",
        "IntervalStrategy")
_export("pretrained.training.seeding", "set_seed")
_export(
    "pretrained.training.schedulers",
    "get_scheduler",
    "get_constant_schedule",
    "get_constant_schedule_with_warmup",
    "get_linear_schedule_with_warmup",
    "get_cosine_schedule_with_warmup",
    "get_cosine_with_hard_restarts_schedule_with_warmup",
    "get_polynomial_decay_schedule_with_warmup",
    "get_inverse_sqrt_schedule",
    "get_cosine_with_min_lr_schedule_with_warmup",
    "get_wsd_schedule",
)
_export(
    "pretrained.training.collators",
    "default_data_collator",
    "DefaultDataCollator",
    "DataCollatorWithPadding",
    "DataCollatorForTokenClassification",
    "DataCollatorForLanguageModeling",
    "DataCollatorForSeq2Seq",
    "DataCollatorWithFlattening",
    "DataCollatorForMultipleChoice",
)
_export("pretrained.training.checkpoints", "get_last_checkpoint")
_export("pretrained.training.seq2seq", "Seq2SeqTrainer", "Seq2SeqTrainingArguments")
_export("pretrained.training.argparser", "HfArgumentParser")

# --- transformers' module paths and helpers (pretrained.compat) ---
_export("pretrained.models.auto", "CONFIG_MAPPING", "MODEL_MAPPING", "MODEL_FOR_MASKED_LM_MAPPING",
        "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING", "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING",
        "MODEL_FOR_QUESTION_ANSWERING_MAPPING", "MODEL_FOR_CAUSAL_LM_MAPPING", "MODEL_FOR_MULTIPLE_CHOICE_MAPPING",
        "MODEL_FOR_PRETRAINING_MAPPING", "MODEL_FOR_NEXT_SENTENCE_PREDICTION_MAPPING")
_export("pretrained.models.auto", "MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING")
_export("pretrained.utils.import_utils", *(
    f"is_{name}_available" for name in (
        "datasets", "sentencepiece", "tokenizers", "scipy", "sklearn", "tensorboard", "wandb", "psutil", "torch",
        "torch_xla", "torch_npu", "torch_xpu", "apex", "bitsandbytes", "vision", "torchvision")))
_export("pretrained.utils.quantization_config", "BitsAndBytesConfig", "TorchAoConfig", "GPTQConfig", "AwqConfig")
_compat.install()  # serves pretrained.trainer_utils, pretrained.models.bert.modeling_bert, ... (one table)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is not None:
        value = getattr(importlib.import_module(module), name)
    elif name in _compat.NOT_IMPLEMENTED:
        value = _compat.not_implemented(name)
    elif name in _compat.MODULES or any(info.name == name for info in pkgutil.iter_modules(__path__)):
        return importlib.import_module(f"{__name__}.{name}")  # a submodule, e.g. pretrained.utils
    else:
        raise AttributeError(f"module 'pretrained' has no attribute {name!r}")
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


__all__ = sorted(_EXPORTS)
