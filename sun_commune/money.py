"""Money is ``Decimal`` yuan with two places (DESIGN.md, rule 2)."""

from decimal import ROUND_HALF_UP, Decimal

CENT = Decimal("0.01")


def quantize_yuan(value) -> Decimal:
    """``value`` in yuan, rounded half up to the fen."""
    return Decimal(value).quantize(CENT, rounding=ROUND_HALF_UP)
