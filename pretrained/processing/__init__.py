"""Processors of non-text inputs, beside ``tokenization``: image processors, and processors that combine
an image processor with a tokenizer.

- `image_utils.py`: image inputs (`load_image`, channel layouts, `PILImageResampling`, constants).
- `image_transforms.py`: resize (Pillow), centre crop, rescale, normalise, RGB conversion, on numpy.
- `image_processing.py`: `BatchFeature`, `ImageProcessingMixin` (`preprocessor_config.json`),
  `BaseImageProcessor` (the standard convert → resize → crop → rescale → normalise).
- `vit.py`, `clip.py`: the families' image processors; `processor.py`: `ProcessorMixin`, `CLIPProcessor`.
- `auto.py`: `AutoImageProcessor`, `AutoProcessor`.
"""
