"""Shared helpers for the pipeline tests: one WordPiece tokenizer and tiny random models of every head, saved by transformers.

Each folder is loaded by both libraries' pipelines; transformers is the test-only oracle.
"""

from __future__ import annotations

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

CORPUS = [
    "Hello world, this is a small test of the tokenizer.",
    "The quick brown fox jumps over the lazy dog!",
    "John Smith lives in New York and works at Google in California.",
    "Paris is the capital of France. Berlin is the capital of Germany.",
    "I love this movie, it was great and wonderful.",
    "An awful, terrible and boring film.",
    "Where does John live? Who works at Google?",
] * 20

TEXTS = [
    "I love this movie",
    "An awful film.",
    "John Smith lives in New York",
    "Hello world, this is a small test of the tokenizer that is a little longer than the others.",
    "Paris",
    "Where does John live?",
]

CHAT_TEMPLATE = (
    "{% for m in messages %}[CLS] {{ m['role'] }} : {{ m['content'] }} [SEP] {% endfor %}"
    "{% if add_generation_prompt %}[CLS] assistant : {% endif %}"
)

LABELS = {
    "sequence": {0: "NEGATIVE", 1: "NEUTRAL", 2: "POSITIVE"},
    "token": {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC", 5: "B-ORG", 6: "I-ORG"},
    "nli": {0: "contradiction", 1: "neutral", 2: "entailment"},
}


# Words left out of the vocabulary so that they split into pieces ("tokenizer" -> "token", "##izer").
SPLIT = {"tokenizer": ["token", "##izer"], "capital": ["capi", "##tal"], "germany": ["germ", "##any"],
         "california": ["cali", "##fornia"], "wonderful": ["wonder", "##ful"], "terrible": ["terr", "##ible"]}


def wordpiece_vocab() -> dict[str, int]:
    """A fixed vocabulary (trained vocabularies vary from run to run): specials, corpus words, pieces, letters."""
    words = sorted({w for text in CORPUS for w in text.lower().replace(",", " ").replace(".", " ").replace(
        "!", " ").replace("?", " ").split()} - set(SPLIT))
    pieces = sorted({p for split in SPLIT.values() for p in split})
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)] + list("0123456789")
    tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *".,!?:'-", *words, *pieces, *letters,
              *(f"##{c}" for c in letters)]
    return {t: i for i, t in enumerate(dict.fromkeys(tokens))}


def build_tokenizer(path: str, chat: bool = False):
    import transformers as T

    tok = Tokenizer(models.WordPiece(wordpiece_vocab(), unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    tok.decoder = decoders.WordPiece()
    wrapped = T.BertTokenizerFast(
        tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_max_length=64,
    )
    if chat:
        wrapped.chat_template = CHAT_TEMPLATE
    wrapped.save_pretrained(path)
    return wrapped


def tiny_bert(vocab: int, **extra):
    import transformers as T

    return T.BertConfig(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=37, max_position_embeddings=64, **extra)


class ModelDirs:
    """Folders of tiny random models (BERT heads and a GPT-2), each built on first use and shared.

    Keys: "sequence", "multi_label", "token", "qa", "mlm", "nli", "base", "causal".
    """

    def __init__(self, root) -> None:
        self.root = root
        self.cache: dict[str, str] = {}
        self._tokenizer = None

    def __getitem__(self, name: str) -> str:
        if name not in self.cache:
            self.cache[name] = self._build(name)
        return self.cache[name]

    def _build(self, name: str) -> str:
        import transformers as T

        path = self.root / name
        if self._tokenizer is None:
            self._tokenizer = build_tokenizer(str(self.root / "tokenizer"))
        tok = self._tokenizer
        tok.chat_template = CHAT_TEMPLATE if name == "causal" else None
        tok.save_pretrained(path)
        torch.manual_seed(sorted(SPECS).index(name))
        if name == "causal":
            config = T.GPT2Config(vocab_size=len(tok), n_embd=32, n_layer=2, n_head=4, n_positions=128, initializer_range=0.3,
                                  bos_token_id=tok.cls_token_id, eos_token_id=tok.sep_token_id,
                                  pad_token_id=tok.pad_token_id)
            model = T.GPT2LMHeadModel(config)
        else:
            class_name, extra = SPECS[name]
            extra = dict(extra)
            labels = LABELS[extra.pop("labels")] if "labels" in extra else None
            if labels:
                extra.update(id2label=labels, label2id={v: k for k, v in labels.items()})
            model = getattr(T, class_name)(tiny_bert(len(tok), **extra))
        model.eval().save_pretrained(path)
        return str(path)


SPECS = {
    "sequence": ("BertForSequenceClassification", {"labels": "sequence"}),
    "multi_label": ("BertForSequenceClassification",
                    {"labels": "sequence", "problem_type": "multi_label_classification"}),
    "token": ("BertForTokenClassification", {"labels": "token"}),
    "qa": ("BertForQuestionAnswering", {}),
    "mlm": ("BertForMaskedLM", {}),
    # a wide init spreads the labels' scores, so near-ties do not make the label order fragile
    "nli": ("BertForSequenceClassification", {"labels": "nli", "initializer_range": 0.5}),
    "base": ("BertModel", {}),
    "causal": ("GPT2LMHeadModel", {}),
}


def assert_close(ours, theirs, atol=1e-5, path="out"):
    """Recursive equality of pipeline outputs: floats within atol, everything else exact."""
    import numpy as np

    if isinstance(theirs, (np.floating, float)) and not isinstance(theirs, bool):
        assert isinstance(ours, (float, np.floating)), f"{path}: {ours!r} vs {theirs!r}"
        assert abs(float(ours) - float(theirs)) <= atol, f"{path}: {ours} vs {theirs}"
    elif isinstance(theirs, np.integer):
        assert int(ours) == int(theirs), f"{path}: {ours!r} vs {theirs!r}"
    elif isinstance(theirs, torch.Tensor):
        torch.testing.assert_close(torch.as_tensor(ours), theirs, atol=atol, rtol=0)
    elif isinstance(theirs, dict):
        assert set(ours) == set(theirs), f"{path}: keys {sorted(ours)} vs {sorted(theirs)}"
        for k in theirs:
            assert_close(ours[k], theirs[k], atol, f"{path}[{k!r}]")
    elif isinstance(theirs, (list, tuple)):
        assert isinstance(ours, (list, tuple)), f"{path}: {type(ours).__name__} vs {type(theirs).__name__}"
        assert len(ours) == len(theirs), f"{path}: length {len(ours)} vs {len(theirs)}"
        for i, (a, b) in enumerate(zip(ours, theirs)):
            assert_close(a, b, atol, f"{path}[{i}]")
    else:
        assert ours == theirs, f"{path}: {ours!r} vs {theirs!r}"
