"""ViT's image processor: resize to 224 x 224 (bilinear), rescale, normalise with mean = std = 0.5."""

from __future__ import annotations

from pretrained.processing.image_processing import BaseImageProcessor
from pretrained.processing.image_utils import (
    IMAGENET_STANDARD_MEAN,
    IMAGENET_STANDARD_STD,
    PILImageResampling,
)


class ViTImageProcessor(BaseImageProcessor):
    """Image processor of ViT checkpoints (``image_processor_type: "ViTImageProcessor"``)."""

    resample = PILImageResampling.BILINEAR
    image_mean = IMAGENET_STANDARD_MEAN
    image_std = IMAGENET_STANDARD_STD
    size = {"height": 224, "width": 224}
    do_resize = True
    do_rescale = True
    do_normalize = True


ViTImageProcessorPil = ViTImageProcessor  # transformers 5's name for its Pillow backend
