"""Number formatting used in group names and log lines.

Group names are metric keys, so the rendering here must stay byte-identical to the original framework's.
"""

from __future__ import annotations

__all__ = ["float_to_scientific_notation"]


def float_to_scientific_notation(value: float, max_precision: int, remove_plus: bool = True) -> str:
    """Render ``value`` in compact scientific notation.

    The value is formatted with the general format at ``max_precision`` significant digits; if that gives no
    exponent (or the value is 0) it is formatted in exponent format with ``max_precision`` decimals instead. The
    exponent keeps at least two digits. Examples (``max_precision=1``): ``0.5 -> "5.0e-01"``, ``1e-5 -> "1e-05"``,
    ``2.0 -> "2.0e00"``.

    Args:
        value: The number to render.
        max_precision: Significant digits of the general format, and decimals of the exponent fallback.
        remove_plus: Drop the ``+`` sign of non-negative exponents (``2e+03`` -> ``2e03``).

    Returns:
        The rendered string.
    """
    text = f"{value:.{max_precision}g}"
    if "e" not in text or value == 0:
        text = f"{value:.{max_precision}e}"
    if remove_plus:
        text = text.replace("e+", "e")
    return text
