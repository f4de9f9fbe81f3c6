"""The demo's neural surrogate: a small residual 1-D convolutional network on a periodic grid."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BurgersSurrogate"]


class _ResidualBlock(nn.Module):
    def __init__(self, width: int, kernel_size: int) -> None:
        super().__init__()
        self.norm = nn.GroupNorm(1, width)
        # Circular padding: the domain is periodic.
        self.conv1 = nn.Conv1d(width, width, kernel_size, padding=kernel_size // 2, padding_mode="circular")
        self.conv2 = nn.Conv1d(width, width, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = x + self.conv2(nn.functional.gelu(self.conv1(self.norm(x))))
        return out


class BurgersSurrogate(nn.Module):
    """Maps ``u(., 0)`` of shape ``(batch, grid)`` to a prediction of ``u(., t_end)``.

    It predicts the change ``u(t_end) - u(0)``. The parameters cover every case the param-group builder
    distinguishes: conv weights (decayed), biases and GroupNorm affines (excluded from weight decay by the flags)
    and a learned positional embedding ``pos_embed`` (1-D-like, set per name in the demo config).
    """

    def __init__(self, grid_size: int = 64, width: int = 48, depth: int = 4, kernel_size: int = 5) -> None:
        super().__init__()
        self.lift = nn.Conv1d(1, width, 1)
        self.pos_embed = nn.Parameter(torch.zeros(1, width, grid_size))
        self.blocks = nn.ModuleList(_ResidualBlock(width, kernel_size) for _ in range(depth))
        self.norm = nn.GroupNorm(1, width)
        self.head = nn.Conv1d(width, 1, 1)

    def forward(self, u0: torch.Tensor) -> torch.Tensor:  # noqa: D102
        x = self.lift(u0.unsqueeze(1)) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        prediction: torch.Tensor = u0 + self.head(self.norm(x)).squeeze(1)
        return prediction
