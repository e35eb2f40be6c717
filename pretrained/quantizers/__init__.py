"""Quantization: packed weight formats and quantized linear layers."""
