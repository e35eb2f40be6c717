"""CLIP's image processor: RGB, shortest edge to 224 (bicubic), centre crop 224 x 224, rescale, normalise
with OpenAI's CLIP statistics."""

from __future__ import annotations

from typing import Any

from pretrained.processing.image_processing import BaseImageProcessor
from pretrained.processing.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, PILImageResampling


class CLIPImageProcessor(BaseImageProcessor):
    """Image processor of CLIP checkpoints (``image_processor_type: "CLIPImageProcessor"``)."""

    resample = PILImageResampling.BICUBIC
    image_mean = OPENAI_CLIP_MEAN
    image_std = OPENAI_CLIP_STD
    size = {"shortest_edge": 224}
    default_to_square = False
    crop_size = {"height": 224, "width": 224}
    do_resize = True
    do_center_crop = True
    do_rescale = True
    do_normalize = True
    do_convert_rgb = True

    def __init__(self, **kwargs: Any) -> None:
        # Old KOSMOS-2 configs ask for a square resize with use_square_size.
        if kwargs.pop("use_square_size", False):
            edge = kwargs.get("size", self.size)
            edge = edge.get("shortest_edge", 224) if isinstance(edge, dict) else edge
            kwargs["size"] = {"height": edge, "width": edge}
        super().__init__(**kwargs)


CLIPImageProcessorPil = CLIPImageProcessor  # transformers 5's name for its Pillow backend
