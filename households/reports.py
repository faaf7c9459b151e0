"""Reports on the register: households by status and by cause, and income per
household and per person this year against last year, for an area and each
area directly under it.

A report never reads the households themselves: a Celery task
(``refresh_figures``) sums each village's register into one
``VillageFigures`` row — nightly, after an import, or when staff ask — and a
report adds up the rows of the villages under the area (ten thousand rows
for a province, not two million households).
"""

from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal

from django.db import connection, transaction
from django.utils import timezone

from .models import Area, Household, VillageFigures

CENT = Decimal("0.01")

STATUS_SQL = """
SELECT h.village_id, h.status, COUNT(*), COALESCE(SUM(h.size), 0)
FROM households_household h JOIN households_area a ON a.id = h.village_id
WHERE a.path LIKE %s
GROUP BY 1, 2
"""
CAUSE_SQL = """
SELECT h.village_id, c.cause, COUNT(*)
FROM households_household h JOIN households_area a ON a.id = h.village_id,
     unnest(h.poverty_causes) AS c(cause)
WHERE a.path LIKE %s
GROUP BY 1, 2
"""
# Each household's income per year; then, per village and year, the
# households with income that year, and those of them with income the year
# before too (the base of a fair "this year against last year").
INCOME_SQL = """
WITH hy AS (
    SELECT r.household_id, r.year, SUM(r.amount) AS total
    FROM households_incomerecord r
    JOIN households_household h ON h.id = r.household_id
    JOIN households_area a ON a.id = h.village_id
    WHERE a.path LIKE %s
    GROUP BY 1, 2
)
SELECT h.village_id, cur.year,
       COUNT(*), COALESCE(SUM(h.size), 0), SUM(cur.total),
       COUNT(prev.household_id),
       COALESCE(SUM(h.size) FILTER (WHERE prev.household_id IS NOT NULL), 0),
       COALESCE(SUM(cur.total) FILTER (WHERE prev.household_id IS NOT NULL), 0),
       COALESCE(SUM(prev.total), 0)
FROM hy cur
JOIN households_household h ON h.id = cur.household_id
LEFT JOIN hy prev ON prev.household_id = cur.household_id AND prev.year = cur.year - 1
GROUP BY 1, 2
"""


def _like(area: Area) -> str:
    return area.path.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


@transaction.atomic
def refresh_figures(area: Area) -> int:
    """Recompute the figures of every village under ``area`` (one pass over
    its households and income records); returns the number of villages."""
    like = _like(area)
    figures: dict[int, dict] = defaultdict(
        lambda: {"households": 0, "persons": 0, "by_status": {}, "by_cause": {}, "income": {}}
    )
    with connection.cursor() as cursor:
        cursor.execute(STATUS_SQL, [like])
        for village_id, status, households, persons in cursor.fetchall():
            f = figures[village_id]
            f["households"] += households
            f["persons"] += persons
            f["by_status"][status] = households
        cursor.execute(CAUSE_SQL, [like])
        for village_id, cause, households in cursor.fetchall():
            figures[village_id]["by_cause"][cause] = households
        cursor.execute(INCOME_SQL, [like])
        for village_id, year, n, persons, total, both, both_persons, both_total, both_last in cursor.fetchall():
            figures[village_id]["income"][str(year)] = {
                "households": n,
                "persons": persons,
                "total": str(total),
                "both_households": both,
                "both_persons": both_persons,
                "both_total": str(both_total),
                "both_last_total": str(both_last),
            }
    now = timezone.now()
    VillageFigures.objects.filter(village__path__startswith=area.path).exclude(village_id__in=list(figures)).delete()
    VillageFigures.objects.bulk_create(
        [VillageFigures(village_id=village_id, computed_at=now, **f) for village_id, f in figures.items()],
        update_conflicts=True,
        unique_fields=["village"],
        update_fields=["households", "persons", "by_status", "by_cause", "income", "computed_at"],
        batch_size=2000,
    )
    return len(figures)


def _blank() -> dict:
    return {
        "households": 0,
        "persons": 0,
        "by_status": defaultdict(int),
        "by_cause": defaultdict(int),
        "income_households": 0,
        "income_persons": 0,
        "income_total": Decimal("0"),
        "both_households": 0,
        "both_persons": 0,
        "both_total": Decimal("0"),
        "both_last_total": Decimal("0"),
    }


def _add(into: dict, figures, year: int) -> None:
    into["households"] += figures.households
    into["persons"] += figures.persons
    for status, n in figures.by_status.items():
        into["by_status"][status] += n
    for cause, n in figures.by_cause.items():
        into["by_cause"][cause] += n
    income = figures.income.get(str(year))
    if income:
        into["income_households"] += income["households"]
        into["income_persons"] += income["persons"]
        into["income_total"] += Decimal(income["total"])
        into["both_households"] += income["both_households"]
        into["both_persons"] += income["both_persons"]
        into["both_total"] += Decimal(income["both_total"])
        into["both_last_total"] += Decimal(income["both_last_total"])


def _per(total: Decimal, count: int) -> Decimal | None:
    return (total / count).quantize(CENT, ROUND_HALF_UP) if count else None


def _finish(row: dict) -> dict:
    """Averages: this year per household and per person over all households
    with income recorded; this year against last year over those with income
    recorded in both years."""
    row["statuses"] = [(label, row["by_status"].get(value, 0)) for value, label in Household.Status.choices]
    row["causes"] = [(label, row["by_cause"].get(value, 0)) for value, label in Household.Cause.choices]
    row["per_household"] = _per(row["income_total"], row["income_households"])
    row["per_person"] = _per(row["income_total"], row["income_persons"])
    n, persons = row["both_households"], row["both_persons"]
    row["both_per_household"] = _per(row["both_total"], n)
    row["both_last_per_household"] = _per(row["both_last_total"], n)
    row["both_per_person"] = _per(row["both_total"], persons)
    row["both_last_per_person"] = _per(row["both_last_total"], persons)
    row["increase_per_household"] = _per(row["both_total"] - row["both_last_total"], n)
    row["increase_per_person"] = _per(row["both_total"] - row["both_last_total"], persons)
    return row


def area_report(area: Area, year: int) -> dict:
    """The report of ``area`` for ``year``: a row for each area directly under
    it and the area's total, from the village figures."""
    depth = len(area.ancestor_codes())
    children = {c.code: c for c in area.children.order_by("code")} if area.level < Area.Level.VILLAGE else {}
    rows = {code: _blank() for code in children}
    total = _blank()
    computed = None
    for path, figures in (
        (f.village.path, f)
        for f in VillageFigures.objects.filter(village__path__startswith=area.path)
        .select_related("village")
        .only("village__path", "households", "persons", "by_status", "by_cause", "income", "computed_at")
    ):
        _add(total, figures, year)
        codes = path.rstrip(".").split(".")
        if len(codes) > depth and codes[depth] in rows:
            _add(rows[codes[depth]], figures, year)
        computed = figures.computed_at if computed is None else min(computed, figures.computed_at)
    return {
        "area": area,
        "year": year,
        "rows": [{"area": children[code], **_finish(row)} for code, row in rows.items()],
        "total": _finish(total),
        "computed_at": computed,
    }
