"""WhisperTokenizer (through AutoTokenizer) against transformers on a tiny byte-level BPE with Whisper's
special tokens, built in the test: ids, prefix tokens, decoding with and without timestamps, offsets."""


import pytest

transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from whisper_fixtures import CORPUS, build_reference_tokenizer  # noqa: E402, F401

from pretrained import AutoTokenizer, WhisperTokenizer  # noqa: E402


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    path = tmp_path_factory.mktemp("whisper-tok")
    build_reference_tokenizer().save_pretrained(path)
    ref = transformers.AutoTokenizer.from_pretrained(path)
    return ref, AutoTokenizer.from_pretrained(path), path


def test_class_and_special_ids(pair):
    ref, ours, _ = pair
    assert isinstance(ours, WhisperTokenizer)
    assert ours.all_special_ids == ref.all_special_ids
    assert ours.prefix_tokens == ref.prefix_tokens


@pytest.mark.parametrize("settings", [dict(), dict(language="french", task="transcribe"),
                                      dict(language="en", task="translate", predict_timestamps=True)])
def test_encoding_with_prefix(pair, settings):
    ref, ours, _ = pair
    ref.set_prefix_tokens(**settings)
    ours.set_prefix_tokens(**settings)
    for text in ["hello world", " the lazy fox!", "bonjour 123"]:
        assert ours(text)["input_ids"] == ref(text)["input_ids"]
    assert ours(["a b", "the quick"], padding=True)["input_ids"] == ref(["a b", "the quick"], padding=True)["input_ids"]
    assert ours.get_decoder_prompt_ids(language="de", task="transcribe") == \
        ref.get_decoder_prompt_ids(language="de", task="transcribe")
    ref.set_prefix_tokens(language=None, task=None, predict_timestamps=False)
    ours.set_prefix_tokens(language=None, task=None, predict_timestamps=False)


def test_prefix_from_from_pretrained_arguments(pair):
    _, _, path = pair
    ref = transformers.AutoTokenizer.from_pretrained(path, language="spanish", task="translate")
    ours = AutoTokenizer.from_pretrained(path, language="spanish", task="translate")
    assert ours("hola")["input_ids"] == ref("hola")["input_ids"]


def test_decoding(pair):
    ref, ours, _ = pair
    ts = ref.convert_tokens_to_ids("<|0.00|>")
    text_ids = ref(" hello world", add_special_tokens=False)["input_ids"]
    more_ids = ref(" the dog", add_special_tokens=False)["input_ids"]
    prompt = ref.get_prompt_ids("quick fox", return_tensors=None)
    assert list(ours.get_prompt_ids("quick fox", return_tensors=None)) == list(prompt)
    sot, en, tr, nots = (ref.convert_tokens_to_ids(t) for t in
                         ("<|startoftranscript|>", "<|en|>", "<|transcribe|>", "<|notimestamps|>"))
    sequences = [
        [sot, en, tr, nots, *text_ids, ref.eos_token_id],
        [sot, en, tr, ts + 3, *text_ids, ts + 40, ts + 40, *more_ids, ts + 90, ref.eos_token_id],
        [*prompt, sot, en, tr, ts, *text_ids, ts + 20, ts + 25, *more_ids],
        # a second window: times restart (a single timestamp ended the first)
        [ts + 5, *text_ids, ts + 50, *more_ids, ts + 10, *text_ids, ts + 30],
        # ... and after a pair of timestamps ending the first window
        [ts + 5, *text_ids, ts + 50, ts + 60, ts + 10, *more_ids, ts + 30],
    ]
    for seq in sequences:
        for skip in (False, True):
            assert ours.decode(seq, skip_special_tokens=skip) == ref.decode(seq, skip_special_tokens=skip)
            assert ours.decode(seq, skip_special_tokens=skip, decode_with_timestamps=True) == \
                ref.decode(seq, skip_special_tokens=skip, decode_with_timestamps=True)
        got = ours.decode(seq, output_offsets=True)
        want = ref.decode(seq, output_offsets=True)
        assert got["text"] == want["text"]
        assert [(o["text"], pytest.approx(o["timestamp"])) for o in got["offsets"]] == \
            [(o["text"], o["timestamp"]) for o in want["offsets"]]
    assert ours.batch_decode(sequences[:2], skip_special_tokens=True) == \
        ref.batch_decode(sequences[:2], skip_special_tokens=True)


def test_save_round_trip(pair, tmp_path):
    _, ours, _ = pair
    ours.save_pretrained(tmp_path)
    again = transformers.AutoTokenizer.from_pretrained(tmp_path)
    assert type(again).__name__ == "WhisperTokenizer"
    assert again("hello world")["input_ids"] == ours("hello world")["input_ids"]
