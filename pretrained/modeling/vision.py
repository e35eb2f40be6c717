"""Pieces shared by the vision encoders (ViT, CLIP's image tower)."""

from __future__ import annotations

import torch
from torch import nn


def interpolate_positions(table: torch.Tensor, height: int, width: int, patch_size: int) -> torch.Tensor:
    """A ``(1, 1 + n * n, dim)`` learned position table (first row: the class token) resized bicubically to
    the ``(height // patch) x (width // patch)`` patch grid of an image of another size. The table is
    returned as it is for the size it was trained on."""
    num_positions = table.shape[1] - 1
    rows, cols = height // patch_size, width // patch_size
    if rows * cols == num_positions and height == width:
        return table
    side = int(num_positions ** 0.5)
    dim = table.shape[-1]
    grid = table[:, 1:].reshape(1, side, side, dim).permute(0, 3, 1, 2)  # (1, dim, side, side)
    grid = nn.functional.interpolate(grid, size=(rows, cols), mode="bicubic", align_corners=False)
    return torch.cat((table[:, :1], grid.permute(0, 2, 3, 1).reshape(1, -1, dim)), dim=1)
