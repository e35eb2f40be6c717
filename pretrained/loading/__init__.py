"""The one loading pass, one module per step.

``options`` (every option, ``LoadOptions``) → ``plan`` (config, weight files, dtype from ``dtypes``, device
map from ``device_map``, the ``hooks`` chain) → ``build`` (modules on meta, nothing initialised, nothing
patched process-wide) → ``load`` (stream ``checkpoint`` tensors through the hooks) → ``finish`` (tie,
initialise what was missing, buffers, dispatch). ``save`` writes it all back. ``quantized`` and
``parallel`` are what a loaded model answers about its quantizer and its tensor-parallel sharding.
"""
