"""The `pretrained` command line: run (arguments, file, stdin, JSON input), env, errors."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "pipelines"))
from pipeline_fixtures import ModelDirs  # noqa: E402

from pretrained.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def dirs(tmp_path_factory):
    return ModelDirs(tmp_path_factory.mktemp("cli"))


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, [json.loads(line) for line in out.splitlines()], err


def test_run_arguments_match_the_pipeline(dirs, capsys):
    import pretrained as P

    code, lines, _ = _run(capsys, "run", "sentiment-analysis", "--model", dirs["sequence"], "I love it", "awful",
                          "--top-k", "2", "--batch-size", "2")
    assert code == 0
    assert lines == P.pipeline("text-classification", model=dirs["sequence"])(["I love it", "awful"], top_k=2)


def test_run_file_progress_and_with_input(dirs, capsys, tmp_path):
    texts = [f"text number {i}" for i in range(25)]
    path = tmp_path / "inputs.txt"
    path.write_text("\n".join(texts) + "\n\n", encoding="utf-8")
    code, lines, err = _run(capsys, "run", "text-classification", "-m", dirs["sequence"], "--file", str(path),
                            "--batch-size", "8", "--with-input", "--progress", "always")
    assert code == 0
    assert [line["input"] for line in lines] == texts
    assert all(set(line["output"]) == {"label", "score"} for line in lines)
    assert "25/25" in err  # the progress bar


def test_run_stdin_json_input(dirs, capsys, monkeypatch):
    pairs = [{"text": "I love it", "text_pair": "awful"}, {"text": "x", "text_pair": "y"}]
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n".join(json.dumps(p) for p in pairs) + "\n"))
    code, lines, _ = _run(capsys, "run", "text-classification", "-m", dirs["sequence"], "--json-input",
                          "-p", "top_k=null")
    assert code == 0 and len(lines) == 2 and len(lines[0]) == 3


def test_run_feature_extraction_pooling_on_the_embedded_model(capsys):
    from pretrained.embed import embed

    sentences = ["The cat sits on the mat.", "A feline is resting on a rug."]
    code, lines, _ = _run(capsys, "run", "feature-extraction", "--pool", "mean", "--normalize", *sentences)
    assert code == 0
    expected = embed(sentences)
    for line, row in zip(lines, expected.tolist()):
        assert len(line) == 384
        assert max(abs(a - b) for a, b in zip(line, row)) < 1e-5


def test_run_errors_are_one_line(dirs, capsys):
    code, _, err = _run(capsys, "run", "no-such-task", "x")
    assert code == 1 and "Unknown task no-such-task" in err and "Traceback" not in err
    code, _, err = _run(capsys, "run", "text-classification", "x")
    assert code == 1 and "distilbert/distilbert-base-uncased-finetuned-sst-2-english" in err
    code, _, err = _run(capsys, "run", "question-answering", "-m", dirs["qa"], "some context")
    assert code == 1 and "--question" in err
    with pytest.raises(SystemExit):
        main(["run", "text-classification", "--no-such-flag", "x"])


def test_env_and_module_entry_point():
    out = subprocess.run([sys.executable, "-m", "pretrained", "env", "--json"], capture_output=True, text=True,
                         check=True).stdout
    info = json.loads(out)
    assert info["pretrained"] and info["torch"] and "embedded model" in info


def test_run_similarity_matches_the_main_job(capsys):
    from pretrained.embed import embed

    sentences = ["The cat sits on the mat.", "A feline is resting on a rug.", "Stock markets fell sharply today."]
    code, lines, _ = _run(capsys, "run", "feature-extraction", "--similarity", *sentences)
    assert code == 0 and [line["input"] for line in lines] == sentences
    emb = embed(sentences)
    expected = (emb @ emb.T).tolist()
    for line, row in zip(lines, expected):
        assert max(abs(a - b) for a, b in zip(line["similarity"], row)) < 1e-5
    code, _, err = _run(capsys, "run", "text-classification", "--similarity", "x")
    assert code == 1 and "feature-extraction only" in err


def test_run_question_answering_and_text_generation(dirs, capsys, monkeypatch):
    import pretrained as P

    context = "Paris is the capital of France."
    code, lines, _ = _run(capsys, "run", "question-answering", "-m", dirs["qa"], "--question", "What is Paris?",
                          context)
    assert code == 0 and lines == [P.pipeline("question-answering", model=dirs["qa"])(
        question="What is Paris?", context=context)]
    monkeypatch.setattr(sys, "stdin", io.StringIO("I love this\nParis\n"))
    code, lines, _ = _run(capsys, "run", "text-generation", "-m", dirs["causal"], "--max-new-tokens", "3",
                          "-p", "do_sample=false", "--batch-size", "2")
    expected = P.pipeline("text-generation", model=dirs["causal"])(["I love this", "Paris"], max_new_tokens=3,
                                                                   do_sample=False)
    assert code == 0 and lines == expected
