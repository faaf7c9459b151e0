"""The public fund-usage ledger: pages and downloads read only what was
published (a published batch never changes), and nothing private is in it."""

import json
from datetime import date
from decimal import Decimal
from io import BytesIO
from pathlib import Path

from django.conf import settings
from django.core.files.storage import default_storage
from django.db import connection
from django.db.models import Q
from django.http import FileResponse, Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET
from openpyxl import Workbook

from households.models import Area, Household
from sun_commune.access import staff_required
from sun_commune.errors import ActionRefused
from sun_commune.forms import act_on_form
from sun_commune.limits import accepts_files
from sun_commune.pagecache import public_page
from sun_commune.pagination import keyset_page
from sun_commune.spreadsheets import append_row

from . import access, downloads, publication, transparency
from .forms import AllocationForm, FundReportForm, GiftForm, LedgerFilterForm, ReverseForm, SpendForm
from .models import AreaLedgerTotal, LedgerAccount, LedgerBatch, LedgerCheck, LedgerTransaction, Need, PublishedEntry
from .services import money

VERIFIER = Path(settings.BASE_DIR) / "tools" / "verify_ledger.py"
DOWNLOAD_CACHE = "public, max-age=60"


def _latest_batch():
    return LedgerBatch.objects.order_by("-number").first()


def decorate(entries) -> list[dict]:
    """Rows for a page: the published line, parsed, beside its entry."""
    return [{"entry": e, "data": json.loads(e.line)} for e in entries]


def filter_query(request) -> str:
    """The query string less the page cursor: what the filters show."""
    query = request.GET.copy()
    query.pop("after", None)
    return query.urlencode()


@require_GET
@public_page(reads=(LedgerFilterForm, "after"))
def ledger_list(request):
    form = LedgerFilterForm(request.GET or None)
    entries = PublishedEntry.objects.all()
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        area = data["village"] or data["township"] or data["county"]
        if area:
            entries = entries.filter(area_path__startswith=area.path)
        if data["need"]:
            entries = entries.filter(need_id=data["need"])
        if data["kind"]:
            entries = entries.filter(kind=data["kind"])
        if data["date_from"]:
            entries = entries.filter(occurred_on__gte=data["date_from"])
        if data["date_to"]:
            entries = entries.filter(occurred_on__lte=data["date_to"])
    page = keyset_page(entries, order=("index",), descending=True, cursor=request.GET.get("after"), size=50)
    return render(
        request,
        "donations/ledger_list.html",
        {
            "form": form,
            "page": page,
            "rows": decorate(page.rows),
            "batch": _latest_batch(),
            "filter_query": filter_query(request),
        },
    )


@require_GET
@public_page(reads=("area",))
def ledger_totals(request):
    """Totals of the published ledger for an area and each area under it."""
    area_id = request.GET.get("area")
    if area_id and area_id.isdigit():
        area = get_object_or_404(Area, pk=area_id)
    else:
        area = Area.objects.filter(parent__isnull=True).order_by("code").first()
    if area is None:
        raise Http404
    children = list(area.children.order_by("code"))
    totals = {t.area_id: t for t in AreaLedgerTotal.objects.filter(area_id__in=[area.pk] + [c.pk for c in children])}
    rows = [{"area": child, "total": totals.get(child.pk)} for child in children]
    parents = Area.objects.filter(code__in=area.ancestor_codes()[:-1]).order_by("level")
    return render(
        request,
        "donations/ledger_totals.html",
        {"area": area, "total": totals.get(area.pk), "rows": rows, "parents": parents, "batch": _latest_batch()},
    )


# --- Downloads at stable URLs -----------------------------------------------------


DOWNLOADS = {
    "ledger.jsonl": ("application/x-ndjson; charset=utf-8", True),
    "ledger.csv": ("text/csv; charset=utf-8", True),
    "checkpoints.jsonl": ("application/x-ndjson; charset=utf-8", True),
    "checkpoint.json": ("application/json", False),
    "360giving.csv": ("text/csv; charset=utf-8", True),
    "360giving.json": ("application/json", True),
}


@require_GET
def download(request, name):
    """A download written as a file when its batch was published
    (donations/downloads.py): served with sendfile, never streamed from the
    database, exactly the length its set recorded (the file may have grown
    since). In production the proxy serves these files itself."""
    stream = downloads.open_download(name)
    if stream is None:
        raise Http404  # checkpoint.json before the first batch
    content_type, attachment = DOWNLOADS[name]
    response = FileResponse(stream, content_type=content_type, as_attachment=attachment, filename=name)
    response["Content-Length"] = str(stream.length)
    response["Cache-Control"] = DOWNLOAD_CACHE
    return response


@require_GET
def checkpoint_detail(request, number):
    batch = get_object_or_404(LedgerBatch, number=number)
    response = JsonResponse(batch.checkpoint())
    response["Content-Disposition"] = f'attachment; filename="checkpoint-{number}.json"'
    response["Cache-Control"] = "public, max-age=31536000, immutable"
    return response


IMMUTABLE = "public, max-age=31536000, immutable"
NOTE_TYPE = "text/plain; charset=utf-8"


def _text_error(message: str, status: int) -> HttpResponse:
    response = HttpResponse(message + "\n", content_type=NOTE_TYPE, status=status)
    response["Cache-Control"] = "no-store"
    return response


def _json_error(message: str, status: int) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status, json_dumps_params={"ensure_ascii": False})
    response["Cache-Control"] = "no-store"
    return response


def _no_checkpoint():
    return _text_error(_("Nothing has been published yet: there is no checkpoint."), 404)


@require_GET
def checkpoint_note(request):
    """The latest checkpoint as a C2SP signed note: the same batch as
    checkpoint.json, since both come from the download set being served."""
    number = downloads.serving().batch
    batch = LedgerBatch.objects.filter(number=number).first() if number else None
    if batch is None:
        return _no_checkpoint()
    response = HttpResponse(publication.note_of(batch), content_type=NOTE_TYPE)
    response["Cache-Control"] = DOWNLOAD_CACHE
    return response


@require_GET
def checkpoint_note_detail(request, number):
    batch = LedgerBatch.objects.filter(number=number).first() if number < 1 << 31 else None
    if batch is None:
        return _text_error(_("There is no batch with this number."), 404)
    response = HttpResponse(publication.note_of(batch), content_type=NOTE_TYPE)
    response["Cache-Control"] = IMMUTABLE
    return response


@require_GET
def verifier_key(request):
    return HttpResponse(publication.verifier_key() + "\n", content_type=NOTE_TYPE)


@require_GET
def tile(request, path):
    """C2SP tlog-tiles: hash tiles and entry bundles, read from the published rows."""
    parsed = transparency.parse_tile_path(path)
    if parsed is None:
        return _text_error(_("This is not a tile path (see tlog-tiles: tile/<L>/<N>[.p/<W>])."), 404)
    data = transparency.entry_bundle(parsed) if parsed.level is None else transparency.tile(parsed)
    if data is None:
        return _text_error(_("The log does not hold this tile (yet)."), 404)
    response = HttpResponse(data, content_type="application/octet-stream")
    response["Cache-Control"] = DOWNLOAD_CACHE if parsed.partial else IMMUTABLE
    return response


def _size(text: str) -> int | None:
    """A tree size written in ASCII digits, or None."""
    if not (text.isascii() and text.isdigit()) or len(text) > 18:
        return None
    return int(text)


@require_GET
def consistency_proof(request, old, new):
    old_size, new_size = _size(old), _size(new)
    if old_size is None or new_size is None:
        return _json_error(_("Tree sizes are whole numbers written in digits 0-9."), 400)
    if old_size == 0:
        return _json_error(
            _("There is no consistency proof from the empty tree: the old size must be at least 1."), 400
        )
    if old_size > new_size:
        return _json_error(_("The old tree size must not be larger than the new one."), 400)
    batch = _latest_batch()
    if batch is None or new_size > batch.tree_size:
        return _json_error(
            _("The log holds %(size)s entries: no tree of %(asked)s.")
            % {"size": batch.tree_size if batch else 0, "asked": new_size},
            404,
        )
    proof = publication.with_stored_nodes(lambda get_node: transparency.consistency(old_size, new_size, get_node))
    response = JsonResponse(proof)
    response["Cache-Control"] = IMMUTABLE
    return response


@require_GET
def public_key(request):
    return HttpResponse(publication.public_key_hex() + "\n", content_type="text/plain")


@require_GET
def verifier(request):
    return FileResponse(
        VERIFIER.open("rb"), as_attachment=True, filename="verify_ledger.py", content_type="text/x-python"
    )


@require_GET
def entry_proof(request, index):
    entry = PublishedEntry.objects.filter(index=index).first() if index < 1 << 63 else None
    if entry is None:
        return _json_error(_("The log holds no entry with this index."), 404)
    response = JsonResponse(publication.inclusion_proof(entry), json_dumps_params={"ensure_ascii": False})
    response["Content-Disposition"] = f'attachment; filename="proof-{index}.json"'
    return response


@require_GET
def ledger_about(request):
    return render(
        request,
        "donations/ledger_about.html",
        {"batch": _latest_batch(), "public_key": publication.public_key_hex()},
    )


NEED_TOTALS_SQL = """
SELECT e.kind, r.kind, SUM(e.amount)
  FROM donations_publishedentry e
  JOIN donations_ledgertransaction t ON t.id = e.transaction_id
  LEFT JOIN donations_ledgertransaction r ON r.id = t.reverses_id
 WHERE e.need_id = %s
 GROUP BY 1, 2
"""


def need_ledger(need: Need) -> dict:
    """The ledger section of a need's page, from published entries only: the
    totals over all of them (a reversal takes back what it reverses), and the
    latest entries."""
    effect = {"money_in": Decimal("0"), "goods_in": Decimal("0"), "spent": Decimal("0"), "returned": Decimal("0")}
    into = {
        "money_in": "money_in",
        "allocation": "money_in",
        "goods_in": "goods_in",
        "spend": "spent",
        "return": "returned",
    }
    with connection.cursor() as cursor:
        cursor.execute(NEED_TOTALS_SQL, [need.pk])
        for kind, reversed_kind, amount in cursor.fetchall():
            if kind == "reversal":
                if reversed_kind in into:
                    effect[into[reversed_kind]] -= amount
            elif kind in into:
                effect[into[kind]] += amount
    rows = decorate(PublishedEntry.objects.filter(need=need).order_by("-index")[:50])
    return {**effect, "rows": rows, "remaining": effect["money_in"] - effect["spent"] - effect["returned"]}


# --- Bureau staff: money in and out, audit, reports -------------------------------------


def transactions_for_staff(user):
    q = None
    for area in user.staff_areas:
        cond = Q(area__path__startswith=area.path)
        q = cond if q is None else q | cond
    return LedgerTransaction.objects.filter(q) if q is not None else LedgerTransaction.objects.none()


@staff_required
def ledger_audit(request):
    user = request.user
    pools = LedgerAccount.objects.filter(kind=LedgerAccount.Kind.POOL, area__in=user.staff_areas).select_related("area")
    recent = (
        transactions_for_staff(user)
        .select_related("need", "area", "recorded_by", "claim__donor")
        .prefetch_related("published")
        .order_by("-pk")[:30]
    )
    return render(
        request,
        "donations/ledger_audit.html",
        {
            "pools": pools,
            "recent": recent,
            "check": LedgerCheck.objects.first(),
            "batch": _latest_batch(),
        },
    )


def _staff_form(request, form_class, template, title, action, success, **extra):
    form = form_class(request.POST or None, request.FILES or None, staff_areas=request.user.staff_areas, **extra)
    done = act_on_form(request, form, action, success=success, next_url="donations:ledger-audit")
    return done or render(request, template, {"form": form, "title": title})


@staff_required
def gift_create(request):
    def act(data):
        money.record_gift(
            by=request.user,
            area=data["area"],
            amount=data["amount"],
            reference=data["reference"],
            occurred_on=data["occurred_on"],
            donor=data["donor"],
        )

    return _staff_form(
        request, GiftForm, "donations/ledger_form.html", _("Record an undirected gift"), act, _("The gift is recorded.")
    )


@staff_required
def allocation_create(request):
    def act(data):
        need = access.needs_for_staff(request.user).filter(pk=data["need"]).first()
        if need is None:
            raise ActionRefused(_("No need with this number in your area."), field="need")
        money.allocate(by=request.user, pool_area=data["area"], need_id=need.pk, amount=data["amount"])

    return _staff_form(
        request,
        AllocationForm,
        "donations/ledger_form.html",
        _("Allocate pool money to a need"),
        act,
        _("The money is allocated."),
    )


@accepts_files()
@staff_required
def spend_create(request):
    def act(data):
        need_id = pool_area = household = None
        if data["source"] == "need":
            need = access.needs_for_staff(request.user).filter(pk=data["need"]).first()
            if need is None:
                raise ActionRefused(_("No need with this number in your area."), field="need")
            need_id = need.pk
        else:
            pool_area = data["area"]
        if data["payee_household"]:
            household = (
                Household.objects.within_any(request.user.staff_areas)
                .filter(public_id=data["payee_household"].strip().upper())
                .first()
            )
            if household is None:
                raise ActionRefused(_("No household with this public id in your area."), field="payee_household")
        money.spend(
            by=request.user,
            amount=data["amount"],
            purpose=data["purpose"],
            category=data["category"],
            occurred_on=data["occurred_on"],
            need_id=need_id,
            pool_area=pool_area,
            payee=data["payee"],
            payee_household=household,
            voucher=data["voucher"],
        )

    return _staff_form(
        request, SpendForm, "donations/ledger_form.html", _("Record money spent"), act, _("The spending is recorded.")
    )


@staff_required
def transaction_reverse(request, pk):
    txn = get_object_or_404(transactions_for_staff(request.user), pk=pk)
    form = ReverseForm(request.POST or None)
    done = act_on_form(
        request,
        form,
        lambda data: money.reverse_transaction(by=request.user, transaction_id=txn.pk, reason=data["reason"]),
        success=_("The entry is reversed by a new entry."),
        next_url="donations:ledger-audit",
    )
    return done or render(request, "donations/ledger_reverse.html", {"form": form, "txn": txn})


@staff_required
def voucher_download(request, pk):
    """The original receipt, for auditors over the area only."""
    txn = get_object_or_404(transactions_for_staff(request.user), pk=pk)
    path = money.voucher_path(txn.voucher_sha256)
    if not txn.voucher_sha256 or not default_storage.exists(path):
        raise Http404
    return FileResponse(default_storage.open(path, "rb"), as_attachment=True, filename=f"voucher-{txn.pk}")


REPORT_SQL = """
SELECT a.path,
       COALESCE(r.kind, t.kind) AS kind,
       COALESCE(NULLIF(r.category, ''), t.category) AS category,
       SUM(CASE WHEN t.kind = 'reversal' THEN -t.amount ELSE t.amount END)
FROM donations_ledgertransaction t
JOIN households_area a ON a.id = t.area_id
LEFT JOIN donations_ledgertransaction r ON r.id = t.reverses_id
WHERE a.path LIKE %s AND t.occurred_on BETWEEN %s AND %s
GROUP BY a.path, 2, 3
"""


def fund_report(area: Area, date_from: date, date_to: date) -> dict:
    """Money in, goods in and money out by category for ``area`` and each area
    directly under it, over a period; and the current balance of every fund."""

    def blank():
        return {"money_in": Decimal("0"), "goods_in": Decimal("0"), "money_out": Decimal("0"), "by_category": {}}

    children = {c.code: c for c in area.children.order_by("code")}
    depth = len(area.ancestor_codes())
    total, parts = blank(), {code: blank() for code in children}
    with connection.cursor() as cursor:
        cursor.execute(REPORT_SQL, [area.path + "%", date_from, date_to])
        rows = cursor.fetchall()
    for path, kind, category, amount in rows:
        codes = path.rstrip(".").split(".")
        targets = [total] + ([parts[codes[depth]]] if len(codes) > depth and codes[depth] in parts else [])
        for target in targets:
            if kind in ("money_in", "gift_in"):
                target["money_in"] += amount
            elif kind == "goods_in":
                target["goods_in"] += amount
            elif kind == "spend":
                target["money_out"] += amount
                label = dict(LedgerTransaction.Category.choices).get(category, category)
                target["by_category"][label] = target["by_category"].get(label, Decimal("0")) + amount
    funds = list(
        LedgerAccount.objects.filter(kind=LedgerAccount.Kind.NEED_FUND, need__in=Need.objects.within(area))
        .exclude(balance=0)
        .select_related("need__village")
        .order_by("code")[:500]
    ) + list(
        LedgerAccount.objects.filter(kind=LedgerAccount.Kind.POOL, area__path__startswith=area.path).select_related(
            "area"
        )
    )
    return {
        "area": area,
        "date_from": date_from,
        "date_to": date_to,
        "total": total,
        "rows": [{"area": children[code], **parts[code]} for code in children],
        "funds": funds,
    }


def _report_xlsx(report: dict) -> HttpResponse:
    book = Workbook()
    sheet = book.active
    sheet.title = "Summary"
    append_row(sheet, [_("Fund report"), report["area"].name, str(report["date_from"]), str(report["date_to"])])
    append_row(sheet, [])
    append_row(sheet, [_("Area"), _("Money in"), _("Goods in (declared value)"), _("Money out")])
    t = report["total"]
    append_row(sheet, [report["area"].name, t["money_in"], t["goods_in"], t["money_out"]])
    for row in report["rows"]:
        append_row(sheet, [row["area"].name, row["money_in"], row["goods_in"], row["money_out"]])
    categories = book.create_sheet("Money out by category")
    append_row(categories, [_("Category"), _("Amount")])
    for label, amount in sorted(t["by_category"].items()):
        append_row(categories, [str(label), amount])  # a lazy choice label is no Excel value
    funds = book.create_sheet("Funds")
    append_row(funds, [_("Fund"), _("Need"), _("Village or area"), _("Current balance")])
    for fund in report["funds"]:
        place = fund.need.village.name if fund.need_id else fund.area.name
        append_row(funds, [fund.code, fund.need.title if fund.need_id else "", place, fund.balance])
    for ws in book.worksheets:
        for column in ("B", "C", "D"):
            for cell in ws[column][1:]:
                cell.number_format = "#,##0.00"
    out = BytesIO()
    book.save(out)
    response = HttpResponse(
        out.getvalue(), content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    )
    response["Content-Disposition"] = (
        f'attachment; filename="fund-report-{report["area"].code}-{report["date_from"]}-{report["date_to"]}.xlsx"'
    )
    return response


@staff_required
def fund_report_view(request):
    today = timezone.localdate()
    initial = {"area": request.user.staff_areas[0].pk, "date_from": today.replace(month=1, day=1), "date_to": today}
    form = FundReportForm(request.GET or None, staff_areas=request.user.staff_areas, initial=initial)
    report = None
    if form.is_bound and form.is_valid():
        data = form.cleaned_data
        report = fund_report(data["area"], data["date_from"], data["date_to"])
        if request.GET.get("format") == "xlsx":
            return _report_xlsx(report)
    return render(request, "donations/fund_report.html", {"form": form, "report": report})
