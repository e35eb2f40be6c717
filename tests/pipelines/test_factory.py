"""pipeline(): task registry, aliases, inference from config, defaults, model objects, argument conflicts."""

import shutil
import subprocess
import sys

import pytest
import torch

import pretrained as P
from pretrained.pipelines import check_task, get_supported_tasks


def test_import_is_cheap_and_lazy():
    code = ("import sys; from pretrained import pipeline; "
            "print('torch' in sys.modules, any(m.startswith('pretrained.pipelines.') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_registry_and_aliases():
    tasks = get_supported_tasks()
    for task in ("text-classification", "token-classification", "question-answering", "fill-mask",
                 "feature-extraction", "zero-shot-classification", "text-generation", "sentiment-analysis", "ner"):
        assert task in tasks
    assert check_task("sentiment-analysis")[0] == "text-classification"
    assert check_task("ner")[0] == "token-classification"
    with pytest.raises(KeyError, match="Unknown task foo, available tasks are"):
        check_task("foo")
    # the encoder-decoder tasks transformers 5 removed are served (4.57 formats)
    assert check_task("translation_en_to_fr")[0::2] == ("translation", ("en", "fr"))
    assert check_task("summarization")[0] == "summarization"
    assert check_task("text2text-generation")[0] == "text2text-generation"


def test_task_inferred_from_architectures(model_dirs):
    for name, cls in [("sequence", "TextClassificationPipeline"), ("token", "TokenClassificationPipeline"),
                      ("mlm", "FillMaskPipeline"), ("base", "FeatureExtractionPipeline")]:
        assert type(P.pipeline(model=model_dirs[name])).__name__ == cls


def test_model_object_and_tokenizer_object(model_dirs):
    model = P.AutoModelForSequenceClassification.from_pretrained(model_dirs["sequence"])
    tokenizer = P.AutoTokenizer.from_pretrained(model_dirs["sequence"])
    by_object = P.pipeline("text-classification", model=model, tokenizer=tokenizer)
    by_path = P.pipeline("text-classification", model=model_dirs["sequence"])
    assert by_object("I love it") == by_path("I love it")
    # a model object whose config names another folder still gets its tokenizer when given one
    assert P.pipeline("text-classification", model=model, tokenizer=model_dirs["sequence"])("x")


def test_missing_default_model_names_it():
    with pytest.raises(OSError, match="distilbert/distilbert-base-uncased-finetuned-sst-2-english"):
        P.pipeline("sentiment-analysis")
    with pytest.raises(OSError, match="dbmdz/bert-large-cased-finetuned-conll03-english"):
        P.pipeline("ner")


def test_errors():
    with pytest.raises(RuntimeError, match="without either a task or a model"):
        P.pipeline()
    with pytest.raises(RuntimeError, match="tokenizer specified but not the model"):
        P.pipeline("text-classification", tokenizer="x")
    with pytest.raises(ValueError, match="never executes"):
        P.pipeline("text-classification", model="x", trust_remote_code=True)
    with pytest.raises(OSError, match="config.json"):
        P.pipeline("text-classification", model="/no/such/folder")
    with pytest.raises(TypeError, match="model must be"):
        P.pipeline("text-classification", model=3)


def test_dtype_and_device_map_conflicts(model_dirs):
    path = model_dirs["sequence"]
    with pytest.raises(ValueError, match="dtype"):
        P.pipeline("text-classification", model=path, dtype="float16", model_kwargs={"dtype": "float32"})
    with pytest.raises(ValueError, match="device_map"):
        P.pipeline("text-classification", model=path, device_map="cpu", model_kwargs={"device_map": "cpu"})
    with pytest.raises(ValueError, match="device"):
        P.pipeline("text-classification", model=path, device_map="cpu", device="cpu")
    pipe = P.pipeline("text-classification", model=path, dtype="bfloat16", device=-1)
    assert pipe.model.dtype == torch.bfloat16 and pipe.device == torch.device("cpu")
    assert pipe("I love it")[0]["label"] in {"NEGATIVE", "NEUTRAL", "POSITIVE"}
    pipe = P.pipeline("text-classification", model=path, torch_dtype=torch.float64)
    assert pipe.model.dtype == torch.float64


def test_model_without_the_needed_head(model_dirs):
    base = P.AutoModel.from_pretrained(model_dirs["base"])
    with pytest.raises(ValueError, match="not supported for text-classification.*BertForSequenceClassification"):
        P.pipeline("text-classification", model=base, tokenizer=model_dirs["base"])
    gpt2 = P.AutoModelForCausalLM.from_pretrained(model_dirs["causal"])
    with pytest.raises(ValueError, match="not supported for fill-mask"):
        P.pipeline("fill-mask", model=gpt2, tokenizer=model_dirs["causal"])


def test_exports_resolve():
    import pretrained.pipelines as pipelines

    for name in ("pipeline", "Pipeline", "TextClassificationPipeline", "TokenClassificationPipeline", "NerPipeline",
                 "QuestionAnsweringPipeline", "FillMaskPipeline", "FeatureExtractionPipeline",
                 "ZeroShotClassificationPipeline", "TextGenerationPipeline", "PipelineException"):
        assert getattr(P, name) is getattr(pipelines, name)


def test_checkpoint_without_the_needed_head(model_dirs):
    with pytest.raises(ValueError, match="question answering"):
        P.pipeline("question-answering", model=model_dirs["causal"])
    with pytest.raises(ValueError, match="causal lm"):
        P.pipeline("text-generation", model=model_dirs["sequence"])


def test_device_map_places_the_model(model_dirs):
    pipe = P.pipeline("text-classification", model=model_dirs["sequence"], device_map="cpu")
    assert pipe.device == torch.device("cpu") and pipe("I love it")[0]["label"]


def test_model_kwargs_are_loading_options_and_config_overrides(model_dirs, tmp_path):
    shutil.copytree(model_dirs["sequence"], tmp_path / "inner")
    pipe = P.pipeline("text-classification", model=str(tmp_path), dtype="bfloat16", model_kwargs={
        "subfolder": "inner", "attn_implementation": "eager", "low_cpu_mem_usage": True, "output_attentions": True})
    # subfolder located the config and the tokenizer as well as the weights
    assert pipe.model.config._attn_implementation == "eager" and pipe.model.config.output_attentions
    assert pipe.model.dtype == torch.bfloat16 and pipe("I love it")[0]["label"]
    with pytest.raises(TypeError, match="not_an_option"):
        P.pipeline("text-classification", model=model_dirs["sequence"], model_kwargs={"not_an_option": 1})
