"""Finding 5 of issue 14: nothing the site exports runs as a formula. Every
string cell that begins with =, +, -, @, a tab or a carriage return is text
in every .xlsx and .csv; numbers (a negative amount too) stay numbers."""

import csv
import io
from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.urls import reverse
from openpyxl import load_workbook

from cooperatives import reports
from donations import ledger_views
from households import services
from sun_commune.spreadsheets import csv_row

from .register_support import valid_id

pytestmark = pytest.mark.django_db

FORMULA = '=HYPERLINK("http://x","y")'


def test_a_head_name_that_is_a_formula_is_exported_as_text(areas, secretary_a, county_reviewer, client_of):
    services.create_household(
        by=secretary_a,
        village=areas.village_a,
        head_name=FORMULA,
        id_number=valid_id(1),
        size=2,
        address="@SUM(1+1)",
        health_notes="-2+3",
    )

    response = client_of(county_reviewer).get(reverse("households:household-export"))

    sheet = load_workbook(io.BytesIO(b"".join(response.streaming_content))).worksheets[0]
    header = [c.value for c in sheet[1]]
    row = {header[i]: cell for i, cell in enumerate(sheet[2])}
    cells = [cell for cell in sheet[2] if cell.value in (FORMULA, "@SUM(1+1)", "-2+3")]
    assert len(cells) == 3, header
    for cell in cells:
        assert cell.data_type == "s", (cell.coordinate, cell.value)  # text, not "f"
    assert any(cell.value == 2 and cell.data_type == "n" for cell in row.values())  # the size stays a number


def _area(name):
    return SimpleNamespace(name=name, code="510000")


def test_cooperative_area_report_keeps_amounts_as_numbers_and_formulas_as_text():
    columns = {key: Decimal("-12.50") for key, _label in reports.AREA_COLUMNS}
    report = {"area": _area("=cmd|' /C calc'!A0"), "year": 2026, "total": columns, "rows": [{"area": _area("\tx")}]}
    report["rows"][0].update(columns)

    response = reports.area_xlsx(report)

    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    assert sheet["A2"].value == "=cmd|' /C calc'!A0" and sheet["A2"].data_type == "s"
    assert sheet["A3"].data_type == "s"
    assert sheet["B2"].value == Decimal("-12.5") or sheet["B2"].value == -12.5
    assert sheet["B2"].data_type == "n"


def test_fund_report_names_are_text():
    total = {"money_in": Decimal("-1.00"), "goods_in": Decimal("0"), "money_out": Decimal("3"), "by_category": {}}
    report = {
        "area": _area("=1+1"),
        "date_from": "2026-01-01",
        "date_to": "2026-12-31",
        "total": total,
        "rows": [{"area": _area("@x"), **total}],
        "funds": [],
    }

    response = ledger_views._report_xlsx(report)

    sheet = load_workbook(io.BytesIO(response.content)).worksheets[0]
    formulas = [c.coordinate for row in sheet.iter_rows() for c in row if c.data_type == "f"]
    assert formulas == []
    assert sheet["A4"].value == "=1+1" and sheet["B4"].data_type == "n"


def test_csv_cells_that_would_start_a_formula_get_an_apostrophe():
    out = io.StringIO()
    csv.writer(out).writerow(csv_row(["=1+1", "+1", "-x", "@y", "\tz", "\rw", "plain", -5, Decimal("-2.00")]))

    assert next(csv.reader(io.StringIO(out.getvalue()))) == [
        "'=1+1",
        "'+1",
        "'-x",
        "'@y",
        "'\tz",
        "'\rw",
        "plain",
        "-5",
        "-2.00",
    ]
