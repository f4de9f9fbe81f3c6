"""The demo: a neural surrogate of Burgers' equation trained with Lion and with AdamW (``noether-optim demo``)."""

from pathlib import Path

__all__ = ["CONFIG_DIR"]

CONFIG_DIR = Path(__file__).parent / "configs"
"""The demo's two optimizer configs, ``burgers_lion.yaml`` and ``burgers_adamw.yaml`` (copies of examples/configs)."""
