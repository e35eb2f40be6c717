"""The image operations of the processors, on numpy arrays, with transformers' numeric semantics.

Resizing is Pillow's (the filters give the pixel values models were trained on); everything after it
is vectorised numpy over the whole batch. Rescale then normalise of uint8 pixels (:class:`PixelTable`)
is three float32 operations per pixel when those reproduce, for every one of the 256 values of every
channel, the float64-rescale / float32-normalise steps transformers applies (checked when the table is
built), else one table lookup per pixel; either way the result is bit-identical.

:func:`split_resize` runs one Pillow resize on several threads with exactly Pillow's pixels: Pillow
resizes in two separable passes (one along each axis, each output row / column of a pass computed from
one input row / column with coefficients that depend only on the full sizes), and releases the GIL
while it does, so each pass is cut into strips across the axis it does not touch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np

from pretrained.processing import pixel_kernel
from pretrained.processing.image_utils import (
    ChannelDimension,
    PILImageResampling,
    infer_channel_dimension_format,
    is_pil_image,
    is_torch_tensor,
    require_pil,
)

# Modes whose bytes survive ``PIL -> numpy -> PIL`` unchanged, so resizing the PIL image directly gives the
# same pixels as transformers' round trip. Other modes (P, CMYK, I;16, ...) take the round trip.
_DIRECT_RESIZE_MODES = frozenset({"RGB", "L", "RGBA"})


def to_channels_last(image: np.ndarray, input_data_format: ChannelDimension | str | None = None) -> np.ndarray:
    """An array image as ``(H, W, C)`` (a view when it was ``(C, H, W)``); ``(H, W)`` gains a channel axis."""
    if image.ndim == 2:
        return image[:, :, None]
    fmt = ChannelDimension(input_data_format) if input_data_format else infer_channel_dimension_format(
        image, num_channels=(1, 3, 4))
    return np.moveaxis(image, 0, -1) if fmt == ChannelDimension.FIRST else image


def _needs_rescale_for_pil(image: np.ndarray) -> bool:
    """Whether a float image holds [0, 1] values that must become 0-255 before Pillow can take it."""
    if image.dtype == np.uint8:
        return False
    if np.allclose(image, image.astype(int)):
        if image.min() >= 0 and image.max() <= 255:
            return False
        raise ValueError("The image to be converted to a PIL image contains values outside the range [0, 255], "
                         f"got [{image.min()}, {image.max()}] which cannot be converted to uint8.")
    if image.min() >= 0 and image.max() <= 1:
        return True
    raise ValueError("The image to be converted to a PIL image contains values outside the range [0, 1], "
                     f"got [{image.min()}, {image.max()}] which cannot be converted to uint8.")


def to_pil_image(image: Any, do_rescale: bool | None = None,
                 input_data_format: ChannelDimension | str | None = None) -> Any:
    """An array or tensor image as a PIL image (floats in [0, 1] are scaled to 0-255 first, then truncated
    to uint8 as transformers does); a PIL image is returned as it is."""
    Image = require_pil()
    if is_pil_image(image):
        return image
    if is_torch_tensor(image):
        image = image.detach().cpu().numpy()
    if not isinstance(image, np.ndarray):
        raise ValueError(f"Input image type not supported: {type(image).__name__}.")
    image = to_channels_last(image, input_data_format)
    if image.shape[-1] == 1:
        image = image[..., 0]
    if do_rescale is None:
        do_rescale = _needs_rescale_for_pil(image)
    if do_rescale:
        image = rescale(image, 255)
    return Image.fromarray(image.astype(np.uint8))


def convert_to_rgb(image: Any) -> Any:
    """Three channels: a PIL image converted to RGB (transparency composited onto white); a channels-last
    numpy image with 1 channel repeated, with 4 channels alpha-blended onto white."""
    if is_pil_image(image):
        Image = require_pil()
        if "A" in image.getbands() or image.info.get("transparency") is not None:
            rgba = image.convert("RGBA")
            white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            return Image.alpha_composite(white, rgba).convert("RGB")
        return image if image.mode == "RGB" else image.convert("RGB")  # (a conversion to itself copies)
    channels = image.shape[-1]
    if channels == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 4:
        floating = np.issubdtype(image.dtype, np.floating)
        if floating and (image.min() < 0.0 or image.max() > 1.0):
            raise ValueError(f"The image to be converted to RGB contains values outside the range [0, 1], got "
                             f"[{image.min()}, {image.max()}].")
        white = 1.0 if floating else 255
        alpha = image[..., 3:4] / white
        blended = alpha * image[..., :3] + (1 - alpha) * white
        return blended.astype(image.dtype) if floating else np.round(blended).astype(image.dtype)
    return image


def get_resize_output_image_size(height: int, width: int, size: dict[str, int]) -> tuple[int, int]:
    """The ``(height, width)`` an image of ``height x width`` is resized to for a size dict: ``height`` /
    ``width``; ``shortest_edge`` (aspect kept, optionally capped by ``longest_edge``); or ``max_height`` /
    ``max_width`` (the largest size that fits)."""
    if size.get("shortest_edge") and size.get("longest_edge"):
        return _shortest_longest(height, width, size["shortest_edge"], size["longest_edge"])
    if size.get("shortest_edge"):
        target = size["shortest_edge"]
        short, long = (width, height) if width <= height else (height, width)
        new_short, new_long = target, int(target * long / short)
        return (new_long, new_short) if width <= height else (new_short, new_long)
    if size.get("max_height") and size.get("max_width"):
        scale = min(size["max_height"] / height, size["max_width"] / width)
        return int(height * scale), int(width * scale)
    if size.get("height") and size.get("width"):
        return size["height"], size["width"]
    raise ValueError("size must contain 'height' and 'width', or 'shortest_edge' (optionally with 'longest_edge'), "
                     f"or 'max_height' and 'max_width'; got {size}.")


def _shortest_longest(height: int, width: int, shortest: int, longest: int) -> tuple[int, int]:
    raw = None
    low, high = float(min(height, width)), float(max(height, width))
    if high / low * shortest > longest:
        raw = longest * low / high
        shortest = int(round(raw))
    if (height <= width and height == shortest) or (width <= height and width == shortest):
        return height, width
    if width < height:
        return int((raw if raw is not None else shortest) * height / width), shortest
    return shortest, int((raw if raw is not None else shortest) * width / height)


def resize(image: Any, size: tuple[int, int], resample: int | None = None) -> np.ndarray:
    """Resize a PIL image or a channels-last array to ``(height, width)`` with Pillow's ``resample`` filter.

    Returns a channels-last array: uint8 for uint8 / PIL / integral inputs; float32 in [0, 1] for float
    inputs in [0, 1] (scaled to 0-255 and truncated for Pillow, then back, as transformers does).
    """
    resample = PILImageResampling.BILINEAR if resample is None else resample
    height, width = size
    scaled = False
    if not is_pil_image(image):
        scaled = _needs_rescale_for_pil(image)
        image = to_pil_image(image, do_rescale=scaled, input_data_format=ChannelDimension.LAST)
    elif image.mode not in _DIRECT_RESIZE_MODES:
        image = to_pil_image(to_channels_last(np.array(image)), input_data_format=ChannelDimension.LAST)
    out = np.asarray(image.resize((width, height), resample=int(resample)))
    out = out[:, :, None] if out.ndim == 2 else out
    return rescale(out, 1 / 255) if scaled else out


# Modes split_resize handles: 8-bit modes Pillow resamples directly, and RGBA, which Pillow resamples
# premultiplied (as "RGBa") and converts back.
_SPLIT_MODES = frozenset({"RGB", "L", "RGBA"})
_SPLIT_CHECKED: list[bool] = []


def pillow_vertical_first(in_width: int, in_height: int, width: int, height: int) -> bool:
    """Which pass Pillow runs first for a resize: from Pillow 13 on, the vertical one when the height
    shrinks by more than twice as many pixels as the width does; before, always the horizontal one."""
    from PIL import __version__

    if int(__version__.split(".")[0]) < 13:
        return False
    return height < in_height and in_height - height > 2 * (in_width - width)


def row_shares(length: int, parts: int) -> list[tuple[int, int]]:
    """``range(length)`` cut into at most ``parts`` nearly equal, non-empty ``(start, end)`` spans."""
    edges = [length * i // parts for i in range(parts + 1)]
    return [(a, b) for a, b in zip(edges, edges[1:], strict=False) if b > a]


def _pass(image: Any, width: int, height: int, resample: int, parts: int,
          map_fn: Callable[..., Iterable[Any]], finish: Callable[[Any, int, int], None] | None = None) -> Any:
    """One separable pass (only the width or only the height changes), cut across the other axis. With
    ``finish``, each strip goes to ``finish(strip, left, top)`` on the thread that made it, and nothing is
    assembled (``None`` is returned)."""
    Image = require_pil()
    in_width, in_height = image.size
    horizontal = width != in_width
    spans = row_shares(in_height if horizontal else in_width, parts)

    def strip(span: tuple[int, int]) -> Any:
        a, b = span
        if horizontal:  # whole rows: each output row is computed from its own input row
            piece = image.crop((0, a, in_width, b)).resize((width, b - a), resample)
        else:
            piece = image.crop((a, 0, b, in_height)).resize((b - a, height), resample)
        if finish is None:
            return piece
        finish(piece, 0 if horizontal else a, a if horizontal else 0)
        return None

    pieces = list(map_fn(strip, spans))
    if finish is not None:
        return None
    out = Image.new(image.mode, (width, height))
    for (a, _), piece in zip(spans, pieces, strict=True):
        out.paste(piece, (0, a) if horizontal else (a, 0))
    return out


def split_resize(image: Any, size: tuple[int, int], resample: int, parts: int,
                 map_fn: Callable[..., Iterable[Any]] = map,
                 finish: Callable[[Any, int, int], None] | None = None) -> Any:
    """``image.resize(size, resample)`` (``size`` is ``(width, height)``) computed as ``parts`` strips per
    pass, the strips run through ``map_fn`` (a thread pool's ``map`` runs them in parallel); the pixels
    are Pillow's own. Callers check :func:`can_split_resize` first.

    With ``finish``, the last pass's strips are not pasted together: each is handed to
    ``finish(strip, left, top)`` (a PIL image in the input's mode and where it sits in the result) on the
    thread that made it, so what follows the resize runs in parallel too; ``None`` is returned then.
    """
    width, height = size
    in_width, in_height = image.size
    if (width, height) == (in_width, in_height):  # Pillow copies the image (no premultiplied round trip)
        if finish is None:
            return image.copy()
        finish(image, 0, 0)
        return None
    mode = image.mode
    if mode == "RGBA":
        image = image.convert("RGBa")
    steps = [(width, in_height), (width, height)]
    if pillow_vertical_first(in_width, in_height, width, height):
        steps = [(in_width, height), (width, height)]
    steps = [step for i, step in enumerate(steps) if step != (steps[i - 1] if i else (in_width, in_height))]
    if finish is not None and mode == "RGBA":  # back from premultiplied, strip by strip (per pixel)
        finish = _converted_back(finish)
    for i, step in enumerate(steps):
        image = _pass(image, step[0], step[1], resample, parts, map_fn, finish if i == len(steps) - 1 else None)
    if finish is not None:
        return None
    return image.convert("RGBA") if mode == "RGBA" else image


def _converted_back(finish: Callable[[Any, int, int], None]) -> Callable[[Any, int, int], None]:
    return lambda piece, left, top: finish(piece.convert("RGBA"), left, top)


def can_split_resize(image: Any, resample: int) -> bool:
    """Whether :func:`split_resize` gives Pillow's pixels for this image and filter: a mode and filter it
    handles, checked once per process against Pillow's own resize (so a Pillow that orders or computes
    its passes differently turns splitting off instead of changing pixels)."""
    if image.mode not in _SPLIT_MODES or int(resample) == PILImageResampling.NEAREST:
        return False
    if not _SPLIT_CHECKED:
        _SPLIT_CHECKED.append(_split_agrees_with_pillow())
    return _SPLIT_CHECKED[0]


def _split_agrees_with_pillow() -> bool:
    Image = require_pil()
    rng = np.random.default_rng(0)
    for mode, channels in (("RGB", 3), ("L", 1), ("RGBA", 4)):
        pixels = rng.integers(0, 256, (61, 47, channels), dtype=np.uint8)
        image = Image.fromarray(pixels[..., 0] if channels == 1 else pixels, mode)
        # shrinking the height most runs the vertical pass first on Pillow 13; the others horizontal first
        # (40, 47) and (40, 46): either side of Pillow 13's rule for which pass runs first
        for size in ((23, 19), (40, 8), (90, 30), (30, 90), (47, 20), (40, 47), (40, 46)):
            for resample in (1, 2, 3, 4, 5):
                ours = split_resize(image, size, resample, 3)
                if not np.array_equal(np.asarray(ours), np.asarray(image.resize(size, resample))):
                    return False
    return True


def center_crop(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Crop a channels-last image to ``(height, width)`` around its centre, zero-padding what is missing
    (the offsets follow transformers', so odd differences round the same way)."""
    orig_h, orig_w = image.shape[:2]
    crop_h, crop_w = int(size[0]), int(size[1])
    top, left = (orig_h - crop_h) // 2, (orig_w - crop_w) // 2
    if top >= 0 and left >= 0 and top + crop_h <= orig_h and left + crop_w <= orig_w:
        return image[top:top + crop_h, left:left + crop_w]
    new_h, new_w = max(crop_h, orig_h), max(crop_w, orig_w)
    padded = np.zeros((new_h, new_w, *image.shape[2:]), dtype=image.dtype)
    pad_top, pad_left = math.ceil((new_h - orig_h) / 2), math.ceil((new_w - orig_w) / 2)
    padded[pad_top:pad_top + orig_h, pad_left:pad_left + orig_w] = image
    top, left = top + pad_top, left + pad_left
    return padded[max(0, top):min(new_h, top + crop_h), max(0, left):min(new_w, left + crop_w)]


def rescale(image: np.ndarray, scale: float, dtype: Any = np.float32) -> np.ndarray:
    """``image * scale``, computed in float64 and stored as ``dtype``."""
    return (image.astype(np.float64) * scale).astype(dtype)


def _per_channel(value: float | Sequence[float], channels: int, name: str, dtype: Any) -> np.ndarray:
    values = list(value) if isinstance(value, (list, tuple, np.ndarray)) else [value] * channels
    if len(values) != channels:
        raise ValueError(f"{name} must have {channels} elements (one per channel), got {len(values)}.")
    return np.asarray(values, dtype=dtype)


def normalize(image: np.ndarray, mean: float | Sequence[float], std: float | Sequence[float],
              channel_axis: int = -1) -> np.ndarray:
    """``(image - mean) / std`` per channel, in float32 for integer images (float images keep their dtype)."""
    if not np.issubdtype(image.dtype, np.floating):
        image = image.astype(np.float32)
    channels = image.shape[channel_axis]
    shape = [1] * image.ndim
    shape[channel_axis] = channels
    mean_ = _per_channel(mean, channels, "image_mean", image.dtype).reshape(shape)
    std_ = _per_channel(std, channels, "image_std", image.dtype).reshape(shape)
    return (image - mean_) / std_


class PixelTable:
    """Rescale and normalise for uint8 pixels: ``table[c, v]`` is what channel ``c``'s value ``v`` becomes.
    Built once per (flags, factor, mean, std, channels) and reused.

    When ``v * factor`` (or ``v / (1 / factor)``), then ``- mean`` and ``/ std``, all in float32, give the
    table's bits for all 256 values of every channel, :meth:`apply` computes that (three vectorised passes)
    instead of gathering from the table; both give the same bits, since the check covers every input.
    """

    def __init__(self, channels: int, do_rescale: bool, rescale_factor: float, do_normalize: bool,
                 mean: Any, std: Any) -> None:
        values = np.tile(np.arange(256, dtype=np.uint8), (channels, 1)).T  # (256, channels): one "image row"
        out: np.ndarray = values
        if do_rescale:
            out = rescale(out, rescale_factor)
        if do_normalize:
            out = normalize(out, mean, std, channel_axis=-1)
        self.table = np.ascontiguousarray(out.T.astype(np.float32, copy=False))  # (channels, 256)
        self.steps: list[tuple[Any, Any]] | None = None
        candidates: list[list[tuple[Any, Any]]] = []
        for first in ([(np.multiply, np.float32(rescale_factor))], [(np.divide, np.float32(1 / rescale_factor))]
                      ) if do_rescale else ([],):
            steps = list(first)
            if do_normalize:
                steps += [(np.subtract, _per_channel(mean, channels, "image_mean", np.float32)),
                          (np.divide, _per_channel(std, channels, "image_std", np.float32))]
            candidates.append(steps)
        for steps in candidates:
            if steps and np.array_equal(self._arithmetic(values, steps).view(np.uint32), out.view(np.uint32)):
                self.steps = steps
                break

    @staticmethod
    def _arithmetic(values: np.ndarray, steps: list[tuple[Any, Any]]) -> np.ndarray:
        result = values.astype(np.float32)
        for op, operand in steps:
            op(result, operand, out=result)
        return result

    def apply(self, images: np.ndarray) -> np.ndarray:
        """``(N, H, W, C)`` uint8 → ``(N, C, H, W)`` float32."""
        n, h, w, c = images.shape
        out = np.empty((n, c, h, w), dtype=np.float32)
        for i in range(n):
            self.apply_into(images[i], out[i])
        return out

    def apply_into(self, image: np.ndarray, out: np.ndarray) -> None:
        """One ``(H, W, C)`` uint8 image into ``out``, a ``(C, H, W)`` float32 array.

        The compiled table loop (:mod:`~pretrained.processing.pixel_kernel`) does it in one pass without
        the GIL where it can be built; numpy otherwise. Both give the table's bits."""
        if pixel_kernel.table_into(image, self.table, out):
            return
        if self.steps is None:
            for channel in range(image.shape[-1]):
                np.take(self.table[channel], image[..., channel], out=out[channel])
            return
        np.copyto(out, np.moveaxis(image, -1, 0), casting="unsafe")  # uint8 -> float32, exact
        for op, operand in self.steps:
            op(out, operand if np.ndim(operand) == 0 else operand[:, None, None], out=out)
