"""The one way money is shown: ¥1,234.50, always two places, never a float."""

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from django import template

register = template.Library()


@register.filter
def yuan(value) -> str:
    if value is None or value == "":
        return "—"
    try:
        amount = Decimal(value).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, TypeError, ValueError):
        return "—"
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"
