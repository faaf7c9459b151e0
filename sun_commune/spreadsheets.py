"""Cells that a spreadsheet will not run.

Excel, WPS and LibreOffice treat a cell that begins with ``=``, ``+``, ``-``,
``@``, a tab or a carriage return as a formula (or start of one): a head of
household named ``=HYPERLINK(...)`` would become a link that leaks the
sheet when clicked. Every .xlsx and .csv the site writes goes through here.

Only strings are neutralised: a negative amount is a number and stays one.
In an .xlsx the text is kept as it is, typed as a string (so that an export
reads back into the import unchanged); a .csv has no types, so the text is
prefixed with an apostrophe, which spreadsheets read as "this is text".
"""

from openpyxl.cell.cell import WriteOnlyCell

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _risky(value) -> bool:
    return isinstance(value, str) and value.startswith(FORMULA_STARTS)


def csv_cell(value):
    """``value`` for a .csv row: a string that would start a formula gets a
    leading apostrophe; anything else is returned unchanged."""
    return "'" + value if _risky(value) else value


def csv_row(values) -> list:
    return [csv_cell(v) for v in values]


def xlsx_row(sheet, values) -> list:
    """``values`` ready for ``sheet.append``: a string that would start a
    formula becomes a cell typed as text (works in write-only sheets too)."""
    row = []
    for value in values:
        if _risky(value):
            cell = WriteOnlyCell(sheet, value=value)
            cell.data_type = "s"  # set after the value: assigning "=..." made it a formula
            row.append(cell)
        else:
            row.append(value)
    return row


def append_row(sheet, values) -> None:
    """Append ``values`` to ``sheet`` with every string kept as text."""
    sheet.append(xlsx_row(sheet, values))
