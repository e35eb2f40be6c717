"""question-answering: transformers 5 dropped the task, so these tests pin transformers v4's documented
format ({score, start, end, answer}) and check spans by construction with a model whose logits point at
known tokens."""

import pytest

import pretrained as P
from pretrained.modeling.outputs import QuestionAnsweringModelOutput

FILLER = "The quick brown fox jumps over the lazy dog. Hello world, this is a small test. "
CONTEXT = FILLER * 4 + "Berlin is the capital of Germany. " + FILLER * 2
QUESTION = "Where does John live?"


class PointingQA(P.BertForQuestionAnswering):
    """Start logits peak on `start_id` tokens, end logits on `end_id` tokens, and less on the CLS token
    ("no answer"), whatever the weights (built from a real checkpoint)."""

    start_id = end_id = 0
    cls_id = 2

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, **kwargs):
        no_answer = (input_ids == self.cls_id).float() * 15.0
        start = (input_ids == self.start_id).float() * 20.0 - 10.0 + no_answer
        end = (input_ids == self.end_id).float() * 20.0 - 10.0 + no_answer
        return QuestionAnsweringModelOutput(start_logits=start, end_logits=end)


@pytest.fixture(scope="module")
def qa(model_dirs):
    return P.pipeline("question-answering", model=model_dirs["qa"])


@pytest.fixture(scope="module")
def pointing(model_dirs):
    model = PointingQA.from_pretrained(model_dirs["qa"])
    tokenizer = P.AutoTokenizer.from_pretrained(model_dirs["qa"])
    model.start_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("Berlin")[0])
    model.end_id = tokenizer.convert_tokens_to_ids(tokenizer.tokenize("Germany")[-1])
    model.cls_id = tokenizer.cls_token_id
    assert model.start_id != tokenizer.unk_token_id and model.end_id != tokenizer.unk_token_id
    return P.pipeline("question-answering", model=model, tokenizer=tokenizer)


def _check(answer, context):
    assert set(answer) == {"score", "start", "end", "answer"}
    assert isinstance(answer["score"], float) and 0.0 <= answer["score"] <= 1.0
    assert isinstance(answer["start"], int) and isinstance(answer["end"], int)
    assert context[answer["start"]:answer["end"]] == answer["answer"]


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("windows", [{}, {"max_seq_len": 32, "doc_stride": 8}, {"max_seq_len": 24, "doc_stride": 4}])
def test_pointed_span_is_found_in_any_window(pointing, batch_size, windows):
    answer = pointing(question=QUESTION, context=CONTEXT, batch_size=batch_size, **windows)
    _check(answer, CONTEXT)
    assert answer["answer"] == "Berlin is the capital of Germany"
    assert answer["start"] == CONTEXT.index("Berlin") and answer["score"] > 0.9


def test_max_answer_len_and_top_k(pointing):
    # the pointed span is 6 tokens; a shorter limit must pick something else
    short = pointing(question=QUESTION, context=CONTEXT, max_answer_len=3)
    assert short["answer"] != "Berlin is the capital of Germany" and short["score"] < 0.5
    answers = pointing(question=QUESTION, context=CONTEXT, top_k=3)
    assert isinstance(answers, list) and len(answers) == 3
    assert answers[0]["answer"] == "Berlin is the capital of Germany"
    assert [a["score"] for a in answers] == sorted((a["score"] for a in answers), reverse=True)
    for a in answers:
        _check(a, CONTEXT)


def test_align_to_words(model_dirs):
    tokenizer = P.AutoTokenizer.from_pretrained(model_dirs["qa"])
    context = "Hello world, this is a small test of the tokenizer."
    word = next(w for w in context.replace(",", "").replace(".", "").split() if len(tokenizer.tokenize(w)) > 1)
    pieces = tokenizer.tokenize(word)
    model = PointingQA.from_pretrained(model_dirs["qa"])
    model.start_id = model.end_id = tokenizer.convert_tokens_to_ids(pieces[-1])
    pipe = P.pipeline("question-answering", model=model, tokenizer=tokenizer)
    aligned = pipe(question="what?", context=context)
    assert aligned["answer"] == word
    piece = pipe(question="what?", context=context, align_to_words=False)
    assert piece["answer"] == pieces[-1].removeprefix("##") and piece["start"] > aligned["start"]


def test_handle_impossible_answer(pointing):
    context = "Hello world, this is a small test."  # no pointed token: only the null answer is likely
    answer = pointing(question=QUESTION, context=context, handle_impossible_answer=True)
    assert answer == {"score": answer["score"], "start": 0, "end": 0, "answer": ""} and answer["score"] > 0.9
    found = pointing(question=QUESTION, context=CONTEXT, handle_impossible_answer=True)
    assert found["answer"] == "Berlin is the capital of Germany"
    _check(pointing(question=QUESTION, context=context), context)


def test_call_forms_and_batches(qa):
    contexts = [CONTEXT, "Paris is the capital of France.", "Hello"]
    one = qa(question=QUESTION, context=contexts[1])
    _check(one, contexts[1])
    assert qa({"question": QUESTION, "context": contexts[1]}) == one
    assert qa(QUESTION, contexts[1]) == one
    many = qa(question=[QUESTION] * 3, context=contexts)
    assert isinstance(many, list) and len(many) == 3
    for answer, context in zip(many, contexts):
        _check(answer, context)
    batched = qa([{"question": QUESTION, "context": c} for c in contexts], batch_size=4, max_seq_len=32, doc_stride=8)
    unbatched = qa([{"question": QUESTION, "context": c} for c in contexts], batch_size=1, max_seq_len=32, doc_stride=8)
    for a, b in zip(batched, unbatched):
        assert a["answer"] == b["answer"] and (a["start"], a["end"]) == (b["start"], b["end"])
        assert abs(a["score"] - b["score"]) < 1e-5
    assert qa(question=[QUESTION, "Who?"], context=contexts[1])[1]["answer"] in contexts[1]
    stream = qa({"question": QUESTION, "context": c} for c in contexts)
    assert [a["answer"] for a in stream] == [a["answer"] for a in many]


def test_context_shorter_than_question(qa):
    answer = qa(question="Where does John Smith live and where does he work these days?", context="Paris")
    assert answer["answer"] == "Paris"


def test_bad_inputs(qa):
    with pytest.raises(ValueError, match="`context` cannot be empty"):
        qa(question=QUESTION, context="")
    with pytest.raises(ValueError, match="`question` cannot be empty"):
        qa(question=" ", context="Paris")
    with pytest.raises(ValueError, match="`context` cannot be None"):
        qa({"question": QUESTION, "context": None})
    with pytest.raises(KeyError, match="question:..., context:..."):
        qa({"question": QUESTION})
    with pytest.raises(ValueError, match="same lengths"):
        qa(question=[QUESTION, QUESTION], context=["a", "b", "c"])
    with pytest.raises(ValueError, match="empty list"):
        qa([])
    with pytest.raises(TypeError, match="must be a string"):
        qa({"question": 3, "context": "Paris"})
    with pytest.raises(ValueError, match="question=... and context="):
        qa(context="Paris")
    with pytest.raises(ValueError, match="question is too long"):
        qa(question=" ".join(["where"] * 40), context=CONTEXT, max_seq_len=48, doc_stride=16)
    with pytest.raises(ValueError, match="doc_stride"):
        qa(question=QUESTION, context=CONTEXT, max_seq_len=16, doc_stride=32)
    with pytest.raises(ValueError, match="top_k"):
        qa(question=QUESTION, context=CONTEXT, top_k=0)


def test_scores_are_a_distribution_over_spans(qa):
    # The score of a span is P(start) * P(end); over all spans in one window they sum to at most 1.
    answers = qa(question=QUESTION, context="Paris is the capital of France.", top_k=1000, max_answer_len=64)
    total = sum(a["score"] for a in answers)
    assert 0.0 < total <= 1.0 + 1e-5
