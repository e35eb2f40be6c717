"""text-generation parity with transformers' pipeline (tiny GPT-2 with a chat template), greedy decoding."""

import pytest
import transformers as T
from pipeline_fixtures import assert_close

import pretrained as P

PROMPTS = ["I love this", "John Smith lives in", "Hello world, this is a small test of the", "Paris"]
CHAT = [{"role": "user", "content": "Where does John live?"}]
GREEDY = {"do_sample": False, "max_new_tokens": 6}


@pytest.fixture(scope="module")
def pipes(model_dirs):
    return (P.pipeline("text-generation", model=model_dirs["causal"]),
            T.pipeline("text-generation", model=model_dirs["causal"], device="cpu"))


@pytest.mark.parametrize("batch_size", [1, 4])
@pytest.mark.parametrize("kwargs", [{}, {"return_full_text": False}, {"return_tensors": True},
                                    {"num_beams": 2, "num_return_sequences": 2},
                                    {"prefix": "Hello world, "}, {"skip_special_tokens": False, "max_new_tokens": 3}])
def test_prompts_parity(pipes, batch_size, kwargs):
    ours, theirs = pipes
    kwargs = {**GREEDY, **kwargs}
    assert_close(ours(PROMPTS, batch_size=batch_size, **kwargs), theirs(PROMPTS, batch_size=batch_size, **kwargs))


def test_single_prompt_and_chat(pipes):
    ours, theirs = pipes
    assert_close(ours(PROMPTS[1], **GREEDY), theirs(PROMPTS[1], **GREEDY))
    assert_close(ours(CHAT, **GREEDY), theirs(CHAT, **GREEDY))
    result = ours(CHAT, **GREEDY)[0]["generated_text"]
    assert result[:-1] == CHAT and result[-1]["role"] == "assistant"
    prefilled = [*CHAT, {"role": "assistant", "content": "He lives in"}]
    assert_close(ours(prefilled, **GREEDY), theirs(prefilled, **GREEDY))
    chats = [CHAT, prefilled, [{"role": "user", "content": "Hello"}]]
    assert_close(ours(chats, batch_size=2, **GREEDY), theirs(chats, batch_size=2, **GREEDY))
    assert_close(ours(prefilled, continue_final_message=False, **GREEDY),
                 theirs(prefilled, continue_final_message=False, **GREEDY))


def test_stop_sequence(pipes):
    ours, theirs = pipes
    full = ours(PROMPTS[0], do_sample=False, max_new_tokens=12, return_full_text=False)[0]["generated_text"]
    stop = full.split()[2]  # a word the model is known to produce
    kwargs = {"do_sample": False, "max_new_tokens": 12, "stop_sequence": stop, "return_full_text": False}
    ours_text = ours(PROMPTS[0], **kwargs)[0]["generated_text"]
    assert_close(ours_text, theirs(PROMPTS[0], **kwargs)[0]["generated_text"])
    assert len(ours_text) < len(full) and ours_text.endswith(stop)


def test_pipeline_defaults_and_generation_defaults(model_dirs):
    # generate kwargs given to pipeline() become defaults; transformers' sampling defaults apply otherwise
    pipe = P.pipeline("text-generation", model=model_dirs["causal"], max_new_tokens=4, do_sample=False)
    out = pipe(PROMPTS[0], return_tensors=True)[0]["generated_token_ids"]
    assert len(out) == len(pipe.tokenizer(PROMPTS[0])["input_ids"]) + 4
    kwargs = pipe._prepare_generate_kwargs({})
    assert kwargs["max_new_tokens"] == 4 and kwargs["do_sample"] is False and "temperature" not in kwargs
    bare = P.pipeline("text-generation", model=model_dirs["causal"])._prepare_generate_kwargs({})
    assert bare["max_new_tokens"] == 256 and bare["do_sample"] is True and bare["temperature"] == 0.7


def test_stream_and_empty_prompt(pipes):
    ours, theirs = pipes
    stream = ours((p for p in PROMPTS), batch_size=2, **GREEDY)
    assert [r[0]["generated_text"] for r in stream] == [r[0]["generated_text"] for r in ours(PROMPTS, **GREEDY)]
    assert_close(ours("", **GREEDY), theirs("", **GREEDY))


def test_bad_inputs(pipes):
    ours, _ = pipes
    with pytest.raises(ValueError, match="empty list"):
        ours([])
    with pytest.raises(TypeError, match="expects a prompt"):
        ours(3)
    with pytest.raises(ValueError, match="role"):
        ours([{"role": "user", "content": "hi"}, {"content": "x"}])
    with pytest.raises(ValueError, match="handle_long_generation"):
        ours("x", handle_long_generation="middle")
    with pytest.raises(ValueError, match="mutually exclusive"):
        ours("x", return_full_text=True, return_tensors=True)
