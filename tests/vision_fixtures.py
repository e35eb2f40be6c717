"""Shared helpers for the image tests: real image files made with Pillow, a tiny CLIP tokenizer, and tiny
random ViT / CLIP checkpoints saved by transformers (the test-only oracle)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

# (mode, height, width, format): every mode the processors convert, odd and even sizes, both file formats.
IMAGE_SPECS = [
    ("RGB", 48, 64, "JPEG"), ("RGB", 231, 199, "PNG"), ("RGBA", 61, 40, "PNG"), ("L", 40, 90, "JPEG"),
    ("L", 224, 224, "PNG"), ("CMYK", 70, 33, "JPEG"), ("P", 37, 52, "PNG"), ("RGB", 17, 300, "PNG"),
]

VOCAB_WORDS = ["a", "photo", "of", "cat", "dog", "car", "this", "is", "an", "image", "bird", "tree", "."]


def close(a, b, atol: float = 1e-4) -> None:
    """Assert equal shapes and values within ``atol`` (the model parity tolerance), naming the largest gap."""
    import torch

    assert a.shape == b.shape
    assert torch.allclose(a, b, atol=atol), (a - b).abs().max()


def random_image(rng, mode: str, height: int, width: int):
    """A noise image of ``mode`` ("L", "RGB" or "RGBA") from the numpy generator ``rng``."""
    from PIL import Image

    channels = {"L": 1, "RGB": 3, "RGBA": 4}[mode]
    pixels = rng.integers(0, 256, (height, width, channels), dtype=np.uint8)
    return Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)


def make_images(folder: Path, seed: int = 0) -> list[Path]:
    """Write one file per ``IMAGE_SPECS`` entry (smooth gradients plus noise, so resizing filters matter)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for i, (mode, height, width, fmt) in enumerate(IMAGE_SPECS):
        y, x = np.mgrid[0:height, 0:width]
        base = np.stack([(x * 255 // max(width - 1, 1)), (y * 255 // max(height - 1, 1)), (x + y) % 256,
                         rng.integers(0, 256, (height, width))], axis=-1)
        noisy = np.clip(base + rng.integers(-40, 40, base.shape), 0, 255).astype(np.uint8)
        if mode == "RGBA":
            image = Image.fromarray(noisy, "RGBA")
        elif mode == "L":
            image = Image.fromarray(noisy[..., 0], "L")
        elif mode == "CMYK":
            image = Image.fromarray(noisy[..., :3], "RGB").convert("CMYK")
        elif mode == "P":
            image = Image.fromarray(noisy[..., :3], "RGB").convert("P")
        else:
            image = Image.fromarray(noisy[..., :3], "RGB")
        path = folder / f"image{i}_{mode}.{'jpg' if fmt == 'JPEG' else 'png'}"
        image.save(path, format=fmt)
        paths.append(path)
    return paths


def open_images(paths: list[Path]) -> list:
    """The files as PIL images, loaded (mode kept)."""
    from PIL import Image

    images = []
    for path in paths:
        with Image.open(path) as image:
            image.load()
            images.append(image.copy())
    return images


def clip_tokenizer_vocab() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A byte-level BPE vocabulary with CLIP's ``</w>`` word ends: single bytes, whole words, specials."""
    from tokenizers.pre_tokenizers import ByteLevel

    letters = sorted(ByteLevel.alphabet())
    tokens = [*letters, *(f"{c}</w>" for c in letters)]
    merges: list[tuple[str, str]] = []
    for word in VOCAB_WORDS:
        current = word[0]
        for j, ch in enumerate(word[1:], start=1):
            piece = ch + ("</w>" if j == len(word) - 1 else "")
            merges.append((current, piece))
            current = current + piece
            tokens.append(current)
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {t: i for i, t in enumerate(dict.fromkeys(tokens))}
    return vocab, list(dict.fromkeys(merges))


def save_clip_tokenizer(folder: Path):
    """A transformers ``CLIPTokenizer`` over :func:`clip_tokenizer_vocab`, saved to ``folder``."""
    import transformers as T

    vocab, merges = clip_tokenizer_vocab()
    tokenizer = T.CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.save_pretrained(folder)
    return tokenizer


def save_tiny_vit(folder: Path, num_labels: int = 5, image_size: int = 32, with_processor: bool = True):
    """A random ``ViTForImageClassification`` (hidden 32, 2 layers) and its image processor."""
    import torch
    import transformers as T

    torch.manual_seed(0)
    labels = {i: name for i, name in enumerate(["cat", "dog", "car", "bird", "tree", "boat", "lamp"][:num_labels])}
    config = T.ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                         image_size=image_size, patch_size=8, id2label=labels,
                         label2id={v: k for k, v in labels.items()})
    model = T.ViTForImageClassification(config).eval()
    model.save_pretrained(folder)
    if with_processor:
        T.ViTImageProcessorPil(size={"height": image_size, "width": image_size}).save_pretrained(folder)
    return model


def tiny_clip_config(eos_token_id: int):
    import transformers as T

    vocab, _ = clip_tokenizer_vocab()
    text = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37,
                vocab_size=len(vocab), max_position_embeddings=32, eos_token_id=eos_token_id,
                bos_token_id=vocab["<|startoftext|>"], pad_token_id=eos_token_id, projection_dim=16)
    vision = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=37, image_size=32,
                  patch_size=8, projection_dim=16)
    return T.CLIPConfig(text_config=text, vision_config=vision, projection_dim=16)


def save_tiny_clip(folder: Path):
    """A random ``CLIPModel`` with its tokenizer and image processor (32 px), saved by transformers."""
    import torch
    import transformers as T

    tokenizer = save_clip_tokenizer(folder)
    torch.manual_seed(0)
    model = T.CLIPModel(tiny_clip_config(tokenizer.eos_token_id)).eval()
    with torch.no_grad():
        model.logit_scale.fill_(2.0)
    model.save_pretrained(folder)
    T.CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}).save_pretrained(folder)
    return model


def clip_inputs(folder, seed: int) -> dict:
    """Three padded texts (the saved tokenizer of ``folder``) and two random 32 px images for a tiny CLIP."""
    import torch
    import transformers as T

    tokenizer = T.AutoTokenizer.from_pretrained(folder)
    text = tokenizer(["a photo of a cat", "a dog", "this is an image of a bird tree"], padding=True,
                     return_tensors="pt")
    torch.manual_seed(seed)
    return {"input_ids": text["input_ids"], "attention_mask": text["attention_mask"],
            "pixel_values": torch.randn(2, 3, 32, 32)}
