"""Image inputs: what counts as an image, loading one, channel layouts, and the standard constants.

Pillow is the image dependency; it is imported on first use (:func:`require_pil`), so importing this
module stays cheap and a missing Pillow is reported by name only when an image is actually handled.
"""

from __future__ import annotations

import base64
import enum
import io
import os
from typing import Any

import numpy as np

IMAGENET_DEFAULT_MEAN = [0.485, 0.456, 0.406]
IMAGENET_DEFAULT_STD = [0.229, 0.224, 0.225]
IMAGENET_STANDARD_MEAN = [0.5, 0.5, 0.5]
IMAGENET_STANDARD_STD = [0.5, 0.5, 0.5]
OPENAI_CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
OPENAI_CLIP_STD = [0.26862954, 0.26130258, 0.27577711]


class PILImageResampling(enum.IntEnum):
    """Pillow's resampling filters, by the numbers Pillow (and ``preprocessor_config.json``) use."""

    NEAREST = 0
    LANCZOS = 1
    BILINEAR = 2
    BICUBIC = 3
    BOX = 4
    HAMMING = 5


class ChannelDimension(enum.StrEnum):
    """Where the channel axis of an array image is: ``(C, H, W)`` or ``(H, W, C)``."""

    FIRST = "channels_first"
    LAST = "channels_last"


def require_pil() -> Any:
    """The ``PIL.Image`` module; ``ImportError`` naming Pillow when it is not installed."""
    try:
        from PIL import Image
    except ImportError:
        raise ImportError("Image processing needs Pillow: install it with `pip install Pillow` "
                          "(or `pip install pretrained[vision]`).") from None
    return Image


def is_pil_image(image: Any) -> bool:
    # Only a module that is already imported can have made the object, so no import is needed to check.
    import sys

    pil = sys.modules.get("PIL.Image")
    return pil is not None and isinstance(image, pil.Image)


def is_torch_tensor(value: Any) -> bool:
    import sys

    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.Tensor)


def is_valid_image(image: Any) -> bool:
    """A PIL image, a numpy array or a torch tensor."""
    return is_pil_image(image) or isinstance(image, np.ndarray) or is_torch_tensor(image)


def to_numpy_array(image: Any) -> np.ndarray:
    """A PIL image or tensor as a numpy array (PIL images come out ``(H, W[, C])``)."""
    if is_pil_image(image):
        return np.array(image)
    if is_torch_tensor(image):
        return image.detach().cpu().numpy()
    if isinstance(image, np.ndarray):
        return image
    raise ValueError(f"Invalid image type: {type(image).__name__}; expected a PIL image, numpy array or torch tensor.")


def make_flat_list_of_images(images: Any, expected_ndims: int = 3) -> list[Any]:
    """One image, a list of images, a batched array ``(N, ...)`` or a list of lists → a flat list of images.

    Raises:
        ValueError: the input is not an image, or an array has neither ``expected_ndims`` nor one more.
    """
    if isinstance(images, (list, tuple)):
        if images and all(isinstance(group, (list, tuple)) for group in images):
            return [image for group in images for image in make_flat_list_of_images(list(group), expected_ndims)]
        flat: list[Any] = []
        for image in images:
            if not is_valid_image(image):
                raise ValueError(f"Invalid image type {type(image).__name__} in the list: expected PIL images, "
                                 "numpy arrays or torch tensors.")
            flat.extend(make_flat_list_of_images(image, expected_ndims))
        if not flat:
            raise ValueError("Got an empty list of images.")
        return flat
    if is_pil_image(images):
        return [images]
    if isinstance(images, np.ndarray) or is_torch_tensor(images):
        if images.ndim == expected_ndims + 1:
            return list(images)
        if images.ndim in (expected_ndims, expected_ndims - 1):  # (H, W) grayscale counts as one image
            return [images]
        raise ValueError(f"Invalid image shape {tuple(images.shape)}: expected {expected_ndims} dimensions for one "
                         f"image or {expected_ndims + 1} for a batch.")
    raise ValueError(f"Invalid image type {type(images).__name__}: expected a PIL image, numpy array or torch "
                     "tensor (or a list of them).")


def infer_channel_dimension_format(image: np.ndarray, num_channels: tuple[int, ...] = (1, 3)) -> ChannelDimension:
    """Guess whether an array image is channels-first or channels-last from its shape; first when both fit.

    Raises:
        ValueError: neither the first nor the last axis has a channel count in ``num_channels``.
    """
    if image.ndim not in (3, 4, 5):
        raise ValueError(f"Unsupported number of image dimensions: {image.ndim} (shape {tuple(image.shape)}).")
    first, last = image.shape[image.ndim - 3], image.shape[-1]
    if first in num_channels:
        return ChannelDimension.FIRST
    if last in num_channels:
        return ChannelDimension.LAST
    raise ValueError(f"Unable to infer the channel dimension of an image of shape {tuple(image.shape)}: neither "
                     f"the first nor the last axis has {' or '.join(map(str, num_channels))} channels. Pass "
                     "input_data_format='channels_first' or 'channels_last'.")


def get_image_size(image: np.ndarray, channel_dim: ChannelDimension | str | None = None) -> tuple[int, int]:
    """``(height, width)`` of an array image."""
    channel_dim = ChannelDimension(channel_dim) if channel_dim else infer_channel_dimension_format(image)
    if channel_dim == ChannelDimension.FIRST:
        return int(image.shape[-2]), int(image.shape[-1])
    return int(image.shape[-3]), int(image.shape[-2])


def load_image(image: Any, timeout: float | None = None) -> Any:
    """An image as an RGB PIL image.

    Accepts a local path, an ``http(s)://`` URL (fetched unless offline mode is on), a ``data:image/...``
    URI or bare base64 text, a PIL image (EXIF orientation applied), or a numpy array / torch tensor
    (``(H, W)``, ``(H, W, C)`` or ``(C, H, W)``; uint8, or floats in [0, 1]).

    Raises:
        ImportError: Pillow is not installed.
        OSError: a URL cannot be fetched (offline mode, no network) or a file is not an image.
        ValueError / TypeError: the input is none of the above.
    """
    Image = require_pil()
    from PIL import ImageOps

    if isinstance(image, os.PathLike):
        image = os.fspath(image)
    if isinstance(image, str):
        # An image opened here is ours: rotate it in place and convert it only when it is not RGB already,
        # saving two full-size copies per image.
        image = _open_image_source(image, timeout, Image)
        ImageOps.exif_transpose(image, in_place=True)
        return image if image.mode == "RGB" else image.convert("RGB")
    if isinstance(image, np.ndarray) or is_torch_tensor(image):
        from pretrained.processing.image_transforms import to_pil_image

        image = to_pil_image(image)
    elif not is_pil_image(image):
        raise TypeError(f"Incorrect format used for image: {type(image).__name__}. Should be a URL, a local path, "
                        "a base64 string, a PIL image, or a numpy array / torch tensor.")
    return ImageOps.exif_transpose(image).convert("RGB")  # the caller's image is left as it is


def load_image_to_read(image: Any, timeout: float | None = None) -> Any:
    """:func:`load_image` for code that only reads the result (the pipelines): an RGB PIL image with no EXIF
    rotation to apply is returned as it is, not copied."""
    if is_pil_image(image) and image.mode == "RGB" and image.getexif().get(0x0112, 1) == 1:
        return image
    return load_image(image, timeout)


def _open_image_source(source: str, timeout: float | None, Image: Any) -> Any:
    if source.startswith(("http://", "https://")):
        return Image.open(io.BytesIO(_fetch(source, timeout)))
    if os.path.isfile(source):
        try:
            return Image.open(source)
        except OSError as e:
            raise OSError(f"Cannot read the image file {source!r}: {e}") from None
    data = source.split(",", 1)[1] if source.startswith("data:image/") else source
    try:
        return Image.open(io.BytesIO(base64.b64decode(data.encode(), validate=True)))
    except Exception:
        pass
    raise ValueError(f"Incorrect image source {source[:80]!r}: not an existing file, an http(s) URL, or base64 "
                     "image data.")


def _fetch(url: str, timeout: float | None) -> bytes:
    from pretrained.hub import is_offline

    if is_offline():
        raise OSError(f"Cannot fetch the image {url!r}: offline mode is on (HF_HUB_OFFLINE). Download it and pass "
                      "the local path, or pass a PIL image.")
    import urllib.request

    try:
        with urllib.request.urlopen(url, timeout=timeout if timeout is not None else 30) as response:
            return response.read()
    except OSError as e:  # URLError, timeouts and connection errors are all OSErrors
        raise OSError(f"Cannot fetch the image {url!r} (no network?): {e}. Pass a local path or a PIL image "
                      "instead.") from None
