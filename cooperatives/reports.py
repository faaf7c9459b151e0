"""Reports: one cooperative's year, and an area's cooperatives with what they
added to poor households' income. Read-only; grouped queries whose number
does not grow with the members, deliveries or areas counted."""

from decimal import Decimal
from io import BytesIO

from django.db.models import Count, Q, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook

from households.models import Area, Household, IncomeRecord
from sun_commune.spreadsheets import append_row

from .models import Cooperative, Delivery, Distribution, Loan, LoanInstallment, Member, ShareEvent

ZERO = Decimal("0")
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def cooperative_report(coop: Cooperative, year: int) -> dict:
    """A cooperative's year: members, the register at the year's end,
    purchases, loans and the distribution."""
    from datetime import date

    year_end = date(year, 12, 31)
    members = (
        Member.objects.confirmed().filter(cooperative=coop, joined_on__lte=year_end).exclude(exited_on__lte=year_end)
    )
    counts = members.aggregate(total=Count("pk"), poor=Count("pk", filter=Q(household__isnull=False)))
    register = dict(
        ShareEvent.objects.filter(cooperative=coop, occurred_on__lte=year_end)
        .values_list("holding")
        .annotate(total=Sum("quantity"))
        .order_by()
    )
    holdings = [(label, register.get(value, ZERO), value) for value, label in ShareEvent.Holding.choices]
    products = list(
        Delivery.objects.filter(cooperative=coop, year=year)
        .values("product")
        .annotate(
            deliveries=Count("pk"),
            quantity=Sum("quantity"),
            amount=Sum("amount"),
            extra=Sum("extra_above_market"),
            poor_extra=Coalesce(Sum("extra_above_market", filter=Q(member__household__isnull=False)), ZERO),
        )
        .order_by("product")
    )
    loans = Loan.objects.filter(cooperative=coop).aggregate(
        count=Count("pk"),
        principal=Coalesce(Sum("principal"), ZERO),
        overdue=Count("pk", filter=Q(status=Loan.Status.OVERDUE)),
    )
    outstanding = LoanInstallment.objects.filter(loan__cooperative=coop, paid_on__isnull=True).aggregate(
        principal=Coalesce(Sum("principal"), ZERO)
    )["principal"]
    distribution = Distribution.objects.filter(cooperative=coop, year=year).first()
    poor_extra = sum((p["poor_extra"] for p in products), ZERO)
    return {
        "cooperative": coop,
        "year": year,
        "members": counts["total"],
        "poor_members": counts["poor"],
        "holdings": holdings,
        "products": products,
        "purchases": sum((p["amount"] for p in products), ZERO),
        "extra": sum((p["extra"] for p in products), ZERO),
        "poor_extra": poor_extra,
        "loans": {**loans, "outstanding": outstanding},
        "distribution": distribution,
        "poor_income": (distribution.poor_received_total if distribution and distribution.is_public else ZERO)
        + poor_extra,
    }


def _blank() -> dict:
    return {
        "cooperatives": 0,
        "members": 0,
        "poor_members": 0,
        "surplus": ZERO,
        "volume": ZERO,
        "fixed": ZERO,
        "capital": ZERO,
        "poor_received": ZERO,
        "households_with_coop_income": 0,
        "coop_dividend": ZERO,
        "coop_rebate": ZERO,
        "all_income": ZERO,
    }


def area_report(area: Area, year: int) -> dict:
    """The cooperatives in ``area`` and each area directly under it for a
    year: members, poor households among them, the approved distributions,
    and — counted where the households live — the income poor households had
    from cooperatives (dividends, rebates, extra above market price) beside
    all their recorded income."""
    children = {c.code: c for c in area.children.order_by("code")}
    depth = len(area.ancestor_codes())
    total, parts = _blank(), {code: _blank() for code in children}

    def targets(path: str) -> list[dict]:
        codes = path.rstrip(".").split(".")
        found = [total]
        if len(codes) > depth and codes[depth] in parts:
            found.append(parts[codes[depth]])
        return found

    coops = Cooperative.objects.within(area)
    for path, n in coops.values_list("area__path").annotate(n=Count("pk")).order_by():
        for t in targets(path):
            t["cooperatives"] += n
    for path, n, poor in (
        Member.objects.confirmed()
        .filter(cooperative__in=coops, exited_on__isnull=True)
        .values_list("cooperative__area__path")
        .annotate(n=Count("pk"), poor=Count("pk", filter=Q(household__isnull=False)))
        .order_by()
    ):
        for t in targets(path):
            t["members"] += n
            t["poor_members"] += poor
    for path, surplus, volume, fixed, capital, poor in (
        Distribution.objects.public()
        .filter(cooperative__in=coops, year=year)
        .values_list("cooperative__area__path")
        .annotate(
            Sum("surplus"), Sum("volume_total"), Sum("fixed_total"), Sum("capital_total"), Sum("poor_received_total")
        )
        .order_by()
    ):
        for t in targets(path):
            t["surplus"] += surplus
            t["volume"] += volume
            t["fixed"] += fixed
            t["capital"] += capital
            t["poor_received"] += poor
    incomes = IncomeRecord.objects.filter(year=year, household__in=Household.objects.within(area))
    for path, source, coop_amount, amount in (
        incomes.values_list("household__village__path", "source")
        .annotate(coop=Coalesce(Sum("amount", filter=Q(origin__startswith="coop-")), ZERO), amount=Sum("amount"))
        .order_by()
    ):
        for t in targets(path):
            t["all_income"] += amount
            if source == IncomeRecord.Source.DIVIDEND:
                t["coop_dividend"] += coop_amount
            elif source == IncomeRecord.Source.REBATE:
                t["coop_rebate"] += coop_amount
    # Households with any cooperative income, counted once each (not per source).
    for path, n in (
        incomes.filter(origin__startswith="coop-")
        .values_list("household__village__path")
        .annotate(n=Count("household", distinct=True))
        .order_by()
    ):
        for t in targets(path):
            t["households_with_coop_income"] += n
    for t in [total, *parts.values()]:
        t["coop_income"] = t["coop_dividend"] + t["coop_rebate"]
        t["coop_average"] = (
            (t["coop_income"] / t["households_with_coop_income"]).quantize(Decimal("0.01"))
            if t["households_with_coop_income"]
            else None
        )
    return {
        "area": area,
        "year": year,
        "total": total,
        "rows": [{"area": children[code], **parts[code]} for code in children],
    }


def _xlsx_response(book: Workbook, filename: str) -> HttpResponse:
    for ws in book.worksheets:
        for row in ws.iter_rows(min_row=2):
            for cell in row:
                if isinstance(cell.value, Decimal):
                    cell.number_format = "#,##0.00"
    out = BytesIO()
    book.save(out)
    response = HttpResponse(out.getvalue(), content_type=XLSX)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def cooperative_xlsx(report: dict, lines=None) -> HttpResponse:
    """The report as a workbook; with ``lines`` (for the cooperative's keepers)
    a sheet of the distribution's lines by member number."""
    coop, year = report["cooperative"], report["year"]
    book = Workbook()
    sheet = book.active
    sheet.title = "Summary"
    append_row(sheet, [_("Cooperative report"), coop.name, year])
    append_row(sheet, [_("Members"), report["members"]])
    append_row(sheet, [_("Poor households among the members"), report["poor_members"]])
    append_row(sheet, [_("Purchases from members (yuan)"), report["purchases"]])
    append_row(sheet, [_("Paid above the market price (yuan)"), report["extra"]])
    append_row(sheet, [_("Loans"), report["loans"]["count"], report["loans"]["principal"]])
    append_row(sheet, [_("Loan principal outstanding (yuan)"), report["loans"]["outstanding"]])
    d = report["distribution"]
    if d:
        append_row(sheet, [_("Distribution status"), d.get_status_display()])
        append_row(sheet, [_("Distributable surplus (yuan)"), d.surplus])
        append_row(sheet, [_("Returned by transaction volume (yuan)"), d.volume_total])
        append_row(sheet, [_("Fixed returns (yuan)"), d.fixed_total])
        append_row(sheet, [_("Shared by capital (yuan)"), d.capital_total])
        append_row(sheet, [_("Received by poor households (yuan)"), d.poor_received_total])
    register = book.create_sheet("Register")
    append_row(register, [_("Holding"), _("Total at the year's end")])
    for label, amount, _value in report["holdings"]:
        append_row(register, [str(label), amount])
    purchases = book.create_sheet("Purchases")
    append_row(
        purchases,
        [
            _("Product"),
            _("Deliveries"),
            _("Quantity"),
            _("Amount paid (yuan)"),
            _("Paid above the market price (yuan)"),
        ],
    )
    for p in report["products"]:
        append_row(purchases, [p["product"], p["deliveries"], p["quantity"], p["amount"], p["extra"]])
    if lines is not None:
        sheet_lines = book.create_sheet("Distribution")
        append_row(
            sheet_lines,
            [
                _("Member number"),
                _("Poor household"),
                _("Transactions"),
                _("Capital weight"),
                _("Fixed return"),
                _("Returned by transaction volume"),
                _("Dividend on capital"),
                _("Total"),
                _("Paid"),
            ],
        )
        for line in lines:
            append_row(
                sheet_lines,
                [
                    line.member.number,
                    _("yes") if line.is_poor else _("no"),
                    line.transactions,
                    line.capital_weight,
                    line.fixed_return,
                    line.volume_return,
                    line.capital_return,
                    line.total,
                    line.paid_at.date().isoformat() if line.paid_at else "",
                ],
            )
    return _xlsx_response(book, f"cooperative-{coop.pk}-{year}.xlsx")


AREA_COLUMNS = [
    ("cooperatives", gettext_lazy("Cooperatives")),
    ("members", gettext_lazy("Members")),
    ("poor_members", gettext_lazy("Poor households among the members")),
    ("surplus", gettext_lazy("Distributable surplus")),
    ("volume", gettext_lazy("Returned by transaction volume")),
    ("fixed", gettext_lazy("Fixed returns")),
    ("capital", gettext_lazy("Shared by capital")),
    ("poor_received", gettext_lazy("Received by poor households")),
    ("households_with_coop_income", gettext_lazy("Households with cooperative income")),
    ("coop_dividend", gettext_lazy("Dividends")),
    ("coop_rebate", gettext_lazy("Rebates and extra above market price")),
    ("coop_income", gettext_lazy("Cooperative income of poor households")),
    ("all_income", gettext_lazy("All recorded income")),
]


def area_xlsx(report: dict) -> HttpResponse:
    book = Workbook()
    sheet = book.active
    sheet.title = "Cooperatives"
    append_row(sheet, [_("Area"), *[str(label) for _key, label in AREA_COLUMNS]])
    rows = [{"area": report["area"], **report["total"]}, *report["rows"]]
    for row in rows:
        append_row(sheet, [row["area"].name, *[row[key] for key, _label in AREA_COLUMNS]])
    return _xlsx_response(book, f"cooperatives-{report['area'].code}-{report['year']}.xlsx")
