"""Logging helpers."""

from noether.core.utils.logging.formatting import float_to_scientific_notation

__all__ = ["float_to_scientific_notation"]
