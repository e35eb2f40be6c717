"""Processors of non-text inputs, beside ``tokenization``: image processors, audio feature extractors, and
processors that combine one with a tokenizer.

- `image_utils.py`: image inputs (`load_image`, channel layouts, `PILImageResampling`, constants).
- `image_transforms.py`: resize (Pillow), centre crop, rescale, normalise, RGB conversion, on numpy.
- `image_processing.py`: `BatchFeature`, `ImageProcessingMixin` (`preprocessor_config.json`),
  `BaseImageProcessor` (the standard convert → resize → crop → rescale → normalise).
- `vit.py`, `clip.py`: the families' image processors; `processor.py`: `ProcessorMixin`, `CLIPProcessor`.
- `feature_extraction.py`: `BatchFeature` (every processor's output), `FeatureExtractionMixin`,
  `SequenceFeatureExtractor` (padding / truncation of sequences); `audio_utils.py`: mel filter banks;
  `whisper.py`: `WhisperFeatureExtractor` (log-mel spectrogram).
- `auto.py`: `AutoImageProcessor`, `AutoFeatureExtractor`, `AutoProcessor`.
"""
