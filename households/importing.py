"""Bulk import of households from an .xlsx or .csv file, and the same columns
for the template and the export.

The file: one row per household (sheet "户信息"/"Households", or the first
sheet, or the .csv), with the columns of ``HOUSEHOLD_COLUMNS``; in an .xlsx,
optionally a second sheet "家庭成员"/"Members" with one row per member,
linked to its household by the head's ID number. Headers are accepted in
Chinese or English, in any order; other columns are ignored.

Every row is checked before anything is written, and the result is a report
of row, column and problem; a file with one bad row imports nothing. A clean
file is imported in one transaction. A row whose ID number is already
registered with the same data is skipped as "already registered", so
importing the same file twice changes nothing. A row whose ID number is
registered with *different* data is a conflict, reported like any error, and
the file imports nothing: an import never overwrites the register — a
correction is made on the household's page, where it is kept in the history.
"""

import csv
import io
import logging
import time
import unicodedata
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.contenttypes.models import ContentType
from django.db import DEFAULT_DB_ALIAS, IntegrityError, connections, transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from openpyxl import Workbook, load_workbook

from sun_commune import audit, ids, outbox, pagecache
from sun_commune.models import AuditEntry
from sun_commune.spreadsheets import append_row

from . import access, tasks
from .crypto import decrypt_bytes, id_hash
from .models import Area, Household, HouseholdChange, HouseholdMember, ImportJob, new_public_id
from .models import name_terms as index_names

log = logging.getLogger(__name__)

MAX_ROWS = 200_000
ERRORS_KEPT = 1000
NOTES_KEPT = 1000
BATCH = 2000
PROGRESS_SECONDS = 0.5  # at most one progress write per this many seconds
# Advisory-lock namespace of import jobs: a job run twice at once waits for
# the first run and then finds the job finished.
LOCK_NAMESPACE = 7241


@dataclass(frozen=True)
class Column:
    key: str
    zh: str
    en: str
    required: bool = False
    also: tuple = ()

    def header(self) -> str:
        return self.zh if (translation.get_language() or "").startswith("zh") else self.en


HOUSEHOLD_COLUMNS = [
    Column("village_code", "村代码", "Village code", True, ("行政村代码", "村编码", "village code (12 digits)")),
    Column("head_name", "户主姓名", "Head of household", True, ("户主", "head name", "head")),
    Column("id_number", "身份证号", "ID number", True, ("身份证号码", "户主身份证号", "证件号码", "id")),
    Column("size", "家庭人口", "Household size", True, ("家庭人口数", "人口数", "size")),
    Column("phone", "联系电话", "Phone", False, ("电话", "手机号")),
    Column("address", "住址", "Address", False, ("家庭住址",)),
    Column("status", "状态", "Status", False, ("贫困户状态", "户类型")),
    Column("lifted_out_year", "脱贫年度", "Lifted out in", False, ("脱贫年份", "lifted out of poverty in")),
    Column("poverty_causes", "致贫原因", "Poverty causes", False, ("主要致贫原因", "causes")),
    Column("housing", "住房", "Housing", False, ("住房情况", "住房安全")),
    Column("health_notes", "健康状况", "Health notes", False, ("health",)),
]
MEMBER_COLUMNS = [
    Column("head_id_number", "户主身份证号", "Head's ID number", True, ("户主身份证号码", "head id number")),
    Column("name", "姓名", "Name", True, ("成员姓名",)),
    Column("relation", "与户主关系", "Relation to the head", True, ("关系", "relation")),
    Column("birth_year", "出生年份", "Year of birth", False, ("出生年", "birth year")),
    Column("ability", "劳动能力", "Ability to work", False, ("劳动技能", "ability")),
    Column("health", "健康状况", "Health", False, ()),
]
# Columns of the export that the import reads past.
EXPORT_ONLY = [Column("public_id", "公开编号", "Public id"), Column("village_name", "村名", "Village")]
HOUSEHOLD_SHEET = Column("households", "户信息", "Households")
MEMBER_SHEET = Column("members", "家庭成员", "Members")

# Words of the national register, besides our own codes and labels.
REGISTER_WORDS = {
    "status": {
        "贫困户": "poor",
        "未脱贫": "poor",
        "建档立卡贫困户": "poor",
        "已脱贫": "lifted",
        "脱贫户": "lifted",
        "已脱贫户": "lifted",
        "监测户": "monitored",
        "监测对象": "monitored",
        "边缘户": "monitored",
        "脱贫不稳定户": "monitored",
    },
    "poverty_causes": {
        "因病": "illness",
        "因病致贫": "illness",
        "因残": "disability",
        "因残致贫": "disability",
        "缺劳力": "labour",
        "缺劳动力": "labour",
        "缺技术": "skills",
        "缺资金": "funds",
        "缺土地": "land",
        "缺水": "water",
        "因灾": "disaster",
        "因灾致贫": "disaster",
        "因学": "schooling",
        "因学致贫": "schooling",
        "其他": "other",
        "其它": "other",
    },
    "housing": {
        "安全": "safe",
        "住房安全": "safe",
        "已改造": "renovated",
        "危房改造": "renovated",
        "危房": "dilapidated",
        "易地搬迁": "relocated",
        "易地扶贫搬迁": "relocated",
        "搬迁": "relocated",
    },
    "ability": {
        "有劳动能力": "full",
        "普通劳动力": "full",
        "技能劳动力": "full",
        "劳动力": "full",
        "弱劳动力": "partial",
        "半劳动力": "partial",
        "弱劳动力或半劳动力": "partial",
        "无劳动力": "none",
        "无劳动能力": "none",
        "丧失劳动力": "none",
        "丧失劳动能力": "none",
    },
}


def _key(text) -> str:
    """A header or a word as compared: NFKC, no spaces, lower case, no
    required-marker."""
    text = unicodedata.normalize("NFKC", str(text or "")).strip().lower()
    text = text.replace("（必填）", "").replace("(必填)", "").replace("(required)", "").rstrip("*").strip()
    return "".join(text.split())


def _vocabulary(name: str, choices) -> dict[str, str]:
    words = {_key(k): v for k, v in REGISTER_WORDS.get(name, {}).items()}
    for value, label in choices:
        words[_key(value)] = value
        for language in ("en", "zh-hans"):
            with translation.override(language):
                words[_key(str(label))] = value
    return words


def vocabularies() -> dict[str, dict[str, str]]:
    return {
        "status": _vocabulary("status", Household.Status.choices),
        "poverty_causes": _vocabulary("poverty_causes", Household.Cause.choices),
        "housing": _vocabulary("housing", Household.Housing.choices),
        "ability": _vocabulary("ability", HouseholdMember.Ability.choices),
    }


def _header_map(columns) -> dict[str, Column]:
    found = {}
    for column in columns:
        for name in (column.zh, column.en, column.key, *column.also):
            found.setdefault(_key(name), column)
    return found


# --- Reading the file -----------------------------------------------------------


class FileRefused(Exception):
    """The file as a whole cannot be read; the message says why."""


@dataclass
class Sheet:
    title: str
    header_row: int
    headers: list
    rows: list = field(default_factory=list)  # (row number, [cells])


def _rows_to_sheet(title: str, rows) -> Sheet | None:
    sheet = None
    for number, cells in rows:
        cells = list(cells)
        if not any(c is not None and str(c).strip() for c in cells):
            continue
        if sheet is None:
            sheet = Sheet(title=title, header_row=number, headers=cells)
            continue
        sheet.rows.append((number, cells))
        if len(sheet.rows) > MAX_ROWS:
            raise FileRefused(
                _("A file may hold at most %(max)s rows; split it by township.") % {"max": f"{MAX_ROWS:,}"}
            )
    return sheet


def read_sheets(filename: str, data: bytes) -> list[Sheet]:
    name = filename.lower()
    if name.endswith(".xlsx"):
        try:
            book = load_workbook(io.BytesIO(data), read_only=True, data_only=True)
        except Exception:  # noqa: BLE001 - any unreadable file gets the same answer
            raise FileRefused(
                _("This file cannot be read as an .xlsx workbook. Save it again from Excel or WPS as .xlsx.")
            )
        try:
            sheets = []
            for worksheet in book.worksheets:
                sheet = _rows_to_sheet(worksheet.title, enumerate(worksheet.iter_rows(values_only=True), start=1))
                if sheet is not None:
                    sheets.append(sheet)
            return sheets
        finally:
            book.close()
    if name.endswith(".csv"):
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        else:
            raise FileRefused(_("This .csv file is neither UTF-8 nor GB18030 text. Save it again as “CSV UTF-8”."))
        first = text[:4096].splitlines()[0] if text.strip() else ""
        delimiter = max((",", ";", "\t"), key=first.count) if first else ","
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        sheet = _rows_to_sheet("csv", enumerate(reader, start=1))
        return [sheet] if sheet is not None else []
    raise FileRefused(_("Upload an .xlsx or a .csv file."))


# --- Checking ---------------------------------------------------------------------


@dataclass
class Report:
    errors: list = field(default_factory=list)
    error_count: int = 0
    notes: list = field(default_factory=list)
    skipped: int = 0

    def error(self, sheet: str, row: int, column: str, message: str) -> None:
        self.error_count += 1
        if len(self.errors) < ERRORS_KEPT:
            self.errors.append({"sheet": sheet, "row": row, "column": column, "message": str(message)})

    def note(self, sheet: str, row: int, message: str) -> None:
        if len(self.notes) < NOTES_KEPT:
            self.notes.append({"sheet": sheet, "row": row, "message": str(message)})


@dataclass
class Row:
    sheet: str
    number: int
    values: dict
    headers: dict  # key → the header as written in the file


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, str):
        return value.strip()
    return str(value).strip()


def _columns_of(sheet: Sheet, columns, report: Report) -> dict[int, Column] | None:
    by_header = _header_map(columns)
    ignored = _header_map(EXPORT_ONLY)
    found: dict[int, Column] = {}
    for index, header in enumerate(sheet.headers):
        column = by_header.get(_key(header))
        if column is not None and column not in found.values():
            found[index] = column
        elif header is not None and str(header).strip() and _key(header) not in ignored:
            report.note(
                sheet.title,
                sheet.header_row,
                _("The column “%(column)s” is not one of ours and was not read.")
                % {"column": str(header).strip()[:40]},
            )
    missing = [c for c in columns if c.required and c not in found.values()]
    for column in missing:
        report.error(
            sheet.title,
            sheet.header_row,
            column.header(),
            _("This column is missing. Download the template to see the columns."),
        )
    return None if missing else found


def _rows(sheet: Sheet, found: dict[int, Column]) -> list[Row]:
    headers = {c.key: str(sheet.headers[i]).strip() for i, c in found.items()}
    rows = []
    for number, cells in sheet.rows:
        values = {c.key: (cells[i] if i < len(cells) else None) for i, c in found.items()}
        rows.append(Row(sheet=sheet.title, number=number, values=values, headers=headers))
    return rows


class Checker:
    """Checks every row of a file for an import into ``area`` by ``user``,
    and builds what is to be written. Reports progress to ``progress(n)``."""

    def __init__(self, *, area: Area, user, progress=lambda done, total=None: None):
        self.area = area
        self.user = user
        self.progress = progress
        self.report = Report()
        self.words = vocabularies()
        self.households: list[dict] = []  # clean rows to import
        self.members: dict[str, list[dict]] = defaultdict(list)  # id_hash → members to import
        self.total_rows = 0
        self.today = timezone.localdate()  # once, not once a row

    # One cell ---------------------------------------------------------------

    def _error(self, row: Row, key: str, message) -> None:
        self.report.error(row.sheet, row.number, row.headers.get(key, key), message)

    def _required(self, row: Row, key: str) -> str | None:
        value = _text(row.values.get(key))
        if not value:
            self._error(row, key, _("Required: this cell is empty."))
            return None
        return value

    def _length(self, row: Row, key: str, value: str, limit: int) -> str | None:
        if len(value) > limit:
            self._error(row, key, _("At most %(max)s characters.") % {"max": limit})
            return None
        return value

    def _integer(self, row: Row, key: str, low: int, high: int) -> tuple[bool, int | None]:
        raw = _text(row.values.get(key))
        if not raw:
            return True, None
        try:
            number = int(unicodedata.normalize("NFKC", raw))
        except ValueError:
            self._error(row, key, _("Enter a whole number."))
            return False, None
        if not low <= number <= high:
            self._error(row, key, _("Enter a number from %(low)s to %(high)s.") % {"low": low, "high": high})
            return False, None
        return True, number

    def _word(self, row: Row, key: str, vocabulary: str, default: str) -> tuple[bool, str]:
        raw = _text(row.values.get(key))
        if not raw:
            return True, default
        value = self.words[vocabulary].get(_key(raw))
        if value is None:
            self._error(row, key, self._not_one_of(raw, vocabulary))
            return False, default
        return True, value

    def _not_one_of(self, raw: str, vocabulary: str) -> str:
        labels = {
            "status": Household.Status.choices,
            "poverty_causes": Household.Cause.choices,
            "housing": Household.Housing.choices,
            "ability": HouseholdMember.Ability.choices,
        }[vocabulary]
        return _("“%(value)s” is not one of: %(choices)s.") % {
            "value": raw[:20],
            "choices": _join(str(label) for _value, label in labels),
        }

    def _id_number(self, row: Row, key: str) -> str | None:
        raw = row.values.get(key)
        if isinstance(raw, float):
            self._error(
                row,
                key,
                _(
                    "Excel stored this ID number as a number and lost its last digits: format the column as text and type the number again."
                ),
            )
            return None
        value = ids.canonical(_text(raw))
        if not value:
            self._error(row, key, _("Required: this cell is empty."))
            return None
        problem = ids.problem(value, today=self.today)
        if problem is not None:
            self._error(row, key, problem.message)
            return None
        return value

    def _phone(self, row: Row, key: str) -> str | None:
        value = unicodedata.normalize("NFKC", _text(row.values.get(key)))
        digits = sum(ch.isdigit() for ch in value)
        if value and (not all(ch.isdigit() or ch in "+- " for ch in value) or not 5 <= digits <= 20):
            self._error(row, key, _("Enter a phone number of digits (and +, - or spaces)."))
            return None
        return value

    # One row ----------------------------------------------------------------------

    def _household(self, row: Row, villages: dict) -> dict | None:
        errors_before = self.report.error_count
        code = self._required(row, "village_code")
        head = self._required(row, "head_name")
        if head is not None:
            head = self._length(row, "head_name", head, 64)
        id_number = self._id_number(row, "id_number")
        ok, size = self._integer(row, "size", 1, 60)
        if ok and size is None:
            self._required(row, "size")
        phone = self._phone(row, "phone")
        address = self._length(row, "address", _text(row.values.get("address")), 255)
        notes = self._length(row, "health_notes", _text(row.values.get("health_notes")), 2000)
        _ok, status = self._word(row, "status", "status", Household.Status.POOR)
        _ok, lifted = self._integer(row, "lifted_out_year", 1978, timezone.localdate().year)
        if status == Household.Status.LIFTED and lifted is None and _ok:
            self._error(row, "lifted_out_year", _("Enter the year the household was lifted out of poverty."))
        if status != Household.Status.LIFTED:
            lifted = None
        _ok, housing = self._word(row, "housing", "housing", "")
        causes = []
        for part in _split(_text(row.values.get("poverty_causes")), self.words["poverty_causes"]):
            value = self.words["poverty_causes"].get(_key(part))
            if value is None:
                self._error(row, "poverty_causes", self._not_one_of(part, "poverty_causes"))
            elif value not in causes:
                causes.append(value)
        village = None
        if code is not None:
            code = unicodedata.normalize("NFKC", code)
            village = villages.get(code)
            if village is None:
                self._error(row, "village_code", _("No village has the code %(code)s.") % {"code": code[:20]})
            elif village.level != Area.Level.VILLAGE:
                self._error(
                    row,
                    "village_code",
                    _("%(code)s is the code of %(name)s, not of a village.") % {"code": code, "name": village.label},
                )
                village = None
            elif not self.area.contains(village):
                self._error(
                    row,
                    "village_code",
                    _("Village %(code)s is not in %(area)s, the area of this import.")
                    % {"code": code, "area": self.area.label},
                )
                village = None
        if self.report.error_count > errors_before:
            return None
        return {
            "row": row,
            "village": village,
            "head_name": head,
            "id_number": id_number,
            "id_hash": id_hash(id_number),
            "size": size,
            "phone": phone,
            "address": address,
            "health_notes": notes,
            "status": status,
            "lifted_out_year": lifted,
            "housing": housing,
            "poverty_causes": causes,
        }

    def _member(self, row: Row) -> dict | None:
        errors_before = self.report.error_count
        head_id = self._id_number(row, "head_id_number")
        name = self._required(row, "name")
        if name is not None:
            name = self._length(row, "name", name, 64)
        relation = self._required(row, "relation")
        if relation is not None:
            relation = self._length(row, "relation", relation, 32)
        _ok, birth_year = self._integer(row, "birth_year", 1900, timezone.localdate().year)
        _ok, ability = self._word(row, "ability", "ability", HouseholdMember.Ability.FULL)
        health = self._length(row, "health", _text(row.values.get("health")), 200)
        if self.report.error_count > errors_before:
            return None
        return {
            "row": row,
            "head_hash": id_hash(head_id),
            "name": name,
            "relation": relation,
            "birth_year": birth_year,
            "ability": ability,
            "health": health,
        }

    # The file -------------------------------------------------------------------------

    def check(self, sheets: list[Sheet]) -> None:
        household_sheet, member_sheet = self._pick_sheets(sheets)
        if household_sheet is None:
            return
        found = _columns_of(household_sheet, HOUSEHOLD_COLUMNS, self.report)
        member_found = _columns_of(member_sheet, MEMBER_COLUMNS, self.report) if member_sheet else None
        if found is None or (member_sheet is not None and member_found is None):
            return
        rows = _rows(household_sheet, found)
        member_rows = _rows(member_sheet, member_found) if member_sheet else []
        self.total_rows = len(rows) + len(member_rows)
        self.progress(0, total=self.total_rows)
        if not rows:
            self.report.error(household_sheet.title, household_sheet.header_row, "", _("The file holds no households."))
            return
        codes = {unicodedata.normalize("NFKC", _text(r.values.get("village_code"))) for r in rows} - {""}
        villages = {}
        for chunk in _chunks(sorted(codes), 5000):
            villages.update({a.code: a for a in Area.objects.filter(code__in=chunk)})

        done = 0
        clean, first_row = [], {}
        for row in rows:
            data = self._household(row, villages)
            if data is not None:
                earlier = first_row.get(data["id_hash"])
                if earlier is not None:
                    self._error(
                        row, "id_number", _("The same ID number as row %(row)s of this file.") % {"row": earlier}
                    )
                else:
                    first_row[data["id_hash"]] = row.number
                    clean.append(data)
            else:
                number = _id_hash_or_none(row.values.get("id_number"))
                if number:
                    first_row.setdefault(number, row.number)
            done += 1
            if done % 500 == 0:
                self.progress(done)

        members_by_head: dict[str, list[dict]] = defaultdict(list)
        for row in member_rows:
            data = self._member(row)
            if data is not None:
                if data["head_hash"] not in first_row:
                    self._error(row, "head_id_number", _("No household row of this file has this ID number."))
                else:
                    members_by_head[data["head_hash"]].append(data)
            done += 1
            if done % 500 == 0:
                self.progress(done)

        self._against_register(clean, members_by_head, compare_members=member_sheet is not None)
        self.progress(done)

    def _pick_sheets(self, sheets: list[Sheet]) -> tuple[Sheet | None, Sheet | None]:
        household_headers = _header_map(HOUSEHOLD_COLUMNS)
        member_headers = _header_map(MEMBER_COLUMNS)

        def score(sheet, headers, key):
            keys = {headers[_key(h)].key for h in sheet.headers if _key(h) in headers}
            return len(keys) if key in keys else 0

        households = max(sheets, key=lambda s: score(s, household_headers, "village_code"), default=None)
        if households is None or score(households, household_headers, "village_code") == 0:
            households = sheets[0] if sheets else None
        members = None
        for sheet in sheets:
            if sheet is not households and score(sheet, member_headers, "head_id_number"):
                members = sheet
                break
        if households is None:
            self.report.error("", 1, "", _("The file holds no households."))
        return households, members

    def _against_register(self, clean: list[dict], members_by_head: dict, *, compare_members: bool) -> None:
        """Each clean row whose ID number is registered: skipped when the data
        are the same, a conflict otherwise."""
        hashes = [d["id_hash"] for d in clean]
        existing: dict[str, Household] = {}
        for chunk in _chunks(hashes, 2000):
            qs = Household.objects.filter(id_hash__in=chunk).select_related("village")
            if compare_members:
                qs = qs.prefetch_related("members")
            existing.update({h.id_hash: h for h in qs})
        visible = set()
        if existing:
            ids = [h.pk for h in existing.values()]
            for chunk in _chunks(ids, 5000):
                visible.update(access.households_for(self.user).filter(pk__in=chunk).values_list("pk", flat=True))
        for data in clean:
            row = data["row"]
            members = members_by_head.get(data["id_hash"], [])
            household = existing.get(data["id_hash"])
            if household is None:
                self.households.append(data)
                self.members[data["id_hash"]] = members
                continue
            if household.pk not in visible:
                self._error(
                    row,
                    "id_number",
                    _(
                        "A household with this ID number is already registered in another area. "
                        "Ask the county bureau to check the register."
                    ),
                )
                continue
            differs = _differences(data, household, members if compare_members else None)
            if not differs:
                self.report.skipped += 1
                self.report.note(
                    row.sheet, row.number, _("Already registered (%(id)s): skipped.") % {"id": household.public_id}
                )
            elif "village" in differs:
                self._error(
                    row,
                    "id_number",
                    _("A household with this ID number is already registered in %(village)s (%(id)s).")
                    % {"village": household.village.label, "id": household.public_id},
                )
            else:
                labels = {c.key: row.headers.get(c.key) or c.header() for c in HOUSEHOLD_COLUMNS}
                labels["members"] = MEMBER_SHEET.header()
                self._error(
                    row,
                    "id_number",
                    _(
                        "Already registered as %(id)s with different data (%(fields)s). An import never changes the register: "
                        "correct the household on its page, where the change is kept in its history, or remove this row."
                    )
                    % {"id": household.public_id, "fields": _join(labels.get(f, f) for f in differs)},
                )


def _join(items) -> str:
    separator = "、" if (translation.get_language() or "").startswith("zh") else ", "
    return separator.join(items)


def _split(text: str, words: dict) -> list[str]:
    """Causes separated by 、 or commas; or by spaces, where a space does not
    belong to a word ("Lack of water")."""
    for separator in "、，,;；/|\n":
        text = text.replace(separator, "\t")
    parts = []
    for part in text.split("\t"):
        part = part.strip()
        if not part:
            continue
        parts.extend([part] if _key(part) in words else part.split())
    return parts


def _chunks(items: list, size: int):
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _id_hash_or_none(raw) -> str | None:
    value = _text(raw) if not isinstance(raw, float) else ""
    return id_hash(value) if ids.is_valid(value) else None


def _member_key(m) -> tuple:
    get = m.get if isinstance(m, dict) else lambda k: getattr(m, k)
    return (get("name"), get("relation"), get("birth_year") or 0, get("ability"), get("health") or "")


def _differences(data: dict, household: Household, members: list | None) -> list[str]:
    differs = []
    if household.village_id != data["village"].pk:
        differs.append("village")
    for key in ("head_name", "size", "phone", "address", "health_notes", "status", "lifted_out_year", "housing"):
        if (getattr(household, key) or None) != (data[key] or None):
            differs.append(key)
    if sorted(household.poverty_causes) != sorted(data["poverty_causes"]):
        differs.append("poverty_causes")
    if members is not None and sorted(map(_member_key, household.members.all())) != sorted(map(_member_key, members)):
        differs.append("members")
    return differs


# --- Progress, over its own connection ----------------------------------------------------


class Progress:
    """Writes a job's progress over a second database connection, in its own
    short transactions, so that the page sees it while the import's
    transaction is still open. Writes at most every ``every`` seconds."""

    def __init__(self, job_id: int, every: float | None = None):
        self.job_id = job_id
        self.every = PROGRESS_SECONDS if every is None else every
        self.last = 0.0
        self.connection = connections.create_connection(DEFAULT_DB_ALIAS)

    def __call__(self, *, force: bool = False, **fields) -> None:
        now = time.monotonic()
        if not force and now - self.last < self.every:
            return
        self.last = now
        columns = ", ".join(f"{name} = %s" for name in fields)
        with self.connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE households_importjob SET {columns} WHERE id = %s AND status IN (%s, %s)",  # noqa: S608 - names are ours
                [*fields.values(), self.job_id, ImportJob.Status.QUEUED, ImportJob.Status.RUNNING],
            )

    def close(self) -> None:
        self.connection.close()


# --- Running a job -----------------------------------------------------------------------


def run(job_id: int) -> None:
    """Check the job's file and, if every row is clean, import it in one
    transaction; the job's final state is written in that transaction. Safe
    to run twice, also at once: the second run waits for the first and then
    finds the job finished."""
    job = ImportJob.objects.defer("content").filter(pk=job_id).first()
    if job is None or job.is_finished:
        return
    language = job.language or settings.LANGUAGE_CODE
    progress = Progress(job_id)
    try:
        with translation.override(language):
            _run(job_id, progress)
    except Exception as error:  # noqa: BLE001 - any failure leaves a finished job and nothing imported
        # Only the kind of error is logged: a database error's detail can
        # quote a row, and a row holds private fields.
        log.error("household import %s failed: %s", job_id, type(error).__name__)
        with translation.override(language):
            message = (
                _(
                    "While importing, someone registered a household with one of these ID numbers. Upload the file again to see which."
                )
                if isinstance(error, IntegrityError)
                else _(
                    "The import failed unexpectedly and imported nothing. Try again; if it fails again, tell the site's administrators."
                )
            )
        ImportJob.objects.filter(pk=job_id).exclude(status__in=ImportJob.FINAL).update(
            status=ImportJob.Status.FAILED,
            phase=ImportJob.Phase.FINISHED,
            message=message,
            content=b"",
            finished_at=timezone.now(),
        )
    finally:
        progress.close()


def _run(job_id: int, progress: Progress) -> None:
    with transaction.atomic(durable=True):
        with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [LOCK_NAMESPACE, job_id])
        job = ImportJob.objects.select_related("created_by", "area").get(pk=job_id)
        if job.is_finished:
            return
        job.started_at = timezone.now()
        progress(force=True, status=ImportJob.Status.RUNNING, phase=ImportJob.Phase.READING, started_at=job.started_at)

        def checked(done, total=None):
            if total is None:
                progress(processed_rows=done)
            else:
                progress(force=True, phase=ImportJob.Phase.CHECKING, processed_rows=done, total_rows=total)

        checker = Checker(area=job.area, user=job.created_by, progress=checked)
        try:
            sheets = read_sheets(job.filename, decrypt_bytes(job.content))
        except FileRefused as refusal:
            checker.report.error("", 0, "", str(refusal))
            sheets = []
        if sheets:
            checker.check(sheets)
        elif not checker.report.error_count:
            checker.report.error("", 0, "", _("The file holds no households."))
        report = checker.report
        job.total_rows = checker.total_rows
        job.errors, job.error_count, job.notes, job.skipped_count = (
            report.errors,
            report.error_count,
            report.notes,
            report.skipped,
        )
        if report.error_count:
            job.status = ImportJob.Status.INVALID
        else:
            progress(
                force=True, phase=ImportJob.Phase.IMPORTING, processed_rows=0, total_rows=len(checker.households) or 1
            )
            job.created_count, job.member_count = _write(job, checker, lambda n: progress(processed_rows=n))
            job.status = ImportJob.Status.DONE
        job.phase = ImportJob.Phase.FINISHED
        job.processed_rows = job.total_rows
        job.content = b""
        job.finished_at = timezone.now()
        job.save(
            update_fields=[
                "status",
                "phase",
                "total_rows",
                "processed_rows",
                "created_count",
                "member_count",
                "skipped_count",
                "error_count",
                "errors",
                "notes",
                "content",
                "started_at",
                "finished_at",
            ]
        )
        audit.record(
            actor=job.created_by,
            action="household_import.finished",
            obj=job,
            changes={
                "status": job.status,
                "households": job.created_count,
                "members": job.member_count,
                "already_registered": job.skipped_count,
                "errors": job.error_count,
            },
        )
        if job.status == ImportJob.Status.DONE and job.created_count:
            area_id = job.area_id
            outbox.enqueue(tasks.refresh_register_figures, area_id=area_id)


def _write(job: ImportJob, checker: Checker, progress) -> tuple[int, int]:
    """Insert the checked households, their members, an audit entry and a
    "registered" history row each, in batches, inside the caller's
    transaction."""
    user = job.created_by
    content_type = ContentType.objects.get_for_model(Household)
    now = timezone.now()
    created = members_created = 0
    for batch in _chunks(checker.households, BATCH):
        households = []
        for data in batch:
            members = checker.members.get(data["id_hash"], [])
            household = Household(
                village=data["village"],
                public_id=new_public_id(),
                head_name=data["head_name"],
                id_number=data["id_number"],
                id_hash=data["id_hash"],
                phone=data["phone"],
                address=data["address"],
                health_notes=data["health_notes"],
                size=data["size"],
                status=data["status"],
                lifted_out_year=data["lifted_out_year"],
                housing=data["housing"],
                poverty_causes=data["poverty_causes"],
                name_terms=index_names(data["head_name"], *(m["name"] for m in members)),
                created_by=user,
            )
            households.append(household)
        Household.objects.bulk_create(households)
        pagecache.changed_after_commit()  # bulk_create sends no post_save
        member_rows = [
            HouseholdMember(
                household=household,
                name=m["name"],
                relation=m["relation"],
                birth_year=m["birth_year"],
                ability=m["ability"],
                health=m["health"],
            )
            for household, data in zip(households, batch, strict=True)
            for m in checker.members.get(data["id_hash"], [])
        ]
        HouseholdMember.objects.bulk_create(member_rows)
        entries = AuditEntry.objects.bulk_create(
            [
                AuditEntry(
                    actor=user,
                    action="household.created",
                    content_type=content_type,
                    object_id=str(h.pk),
                    ip_address=job.ip_address,
                    changes={
                        "import": job.pk,
                        "village": h.village.code,
                        "size": h.size,
                        "status": h.status,
                        "poverty_causes": h.poverty_causes,
                        "members": len(checker.members.get(h.id_hash, [])),
                        **{k: "(private)" for k in ("head_name", "id_number", "phone", "address", "health_notes")},
                    },
                )
                for h in households
            ]
        )
        HouseholdChange.objects.bulk_create(
            [
                HouseholdChange(
                    household=h, kind=HouseholdChange.Kind.CREATED, changed_by=user, changed_at=now, audit_entry=e
                )
                for h, e in zip(households, entries, strict=True)
            ]
        )
        created += len(households)
        members_created += len(member_rows)
        progress(created)
    return created, members_created


# --- Writing: the template and the export ----------------------------------------------------


def _style_header(sheet) -> None:
    from openpyxl.styles import Font

    for cell in sheet[1]:
        cell.font = Font(bold=True)
    for index, _cell in enumerate(sheet[1], start=1):
        sheet.column_dimensions[sheet.cell(row=1, column=index).column_letter].width = 16


def template_workbook() -> Workbook:
    """The import template: the two sheets with their headers, every column
    typed as text (so that Excel keeps an ID number's digits), and a sheet of
    instructions naming each column in Chinese and English."""
    book = Workbook()
    households = book.active
    households.title = HOUSEHOLD_SHEET.header()
    append_row(households, [c.header() + (" *" if c.required else "") for c in HOUSEHOLD_COLUMNS])
    members = book.create_sheet(MEMBER_SHEET.header())
    append_row(members, [c.header() + (" *" if c.required else "") for c in MEMBER_COLUMNS])
    for sheet in (households, members):
        _style_header(sheet)
        for index in range(1, sheet.max_column + 1):
            letter = sheet.cell(row=1, column=index).column_letter
            for row in range(2, 1002):
                sheet[f"{letter}{row}"].number_format = "@"
    help_sheet = book.create_sheet(_("Instructions"))
    append_row(help_sheet, [_("Sheet"), "中文", "English", _("Required"), _("What to enter")])
    hints = {
        "village_code": _("The village's area code (12 digits), from the list of areas."),
        "id_number": _("The head of household's resident ID number, 18 characters."),
        "size": _("The number of people in the household."),
        "status": _("Default: registered poor. One of: %(values)s.")
        % {"values": "、".join(str(label) for _v, label in Household.Status.choices)},
        "lifted_out_year": _("Only for households lifted out of poverty: the year."),
        "poverty_causes": _("One or more, separated by 、 or commas: %(values)s.")
        % {"values": "、".join(str(label) for _v, label in Household.Cause.choices)},
        "housing": "、".join(str(label) for _v, label in Household.Housing.choices),
        "head_id_number": _("The ID number of the head of the household this member belongs to."),
        "ability": "、".join(str(label) for _v, label in HouseholdMember.Ability.choices),
    }
    for sheet_column, columns in ((HOUSEHOLD_SHEET, HOUSEHOLD_COLUMNS), (MEMBER_SHEET, MEMBER_COLUMNS)):
        for column in columns:
            append_row(
                help_sheet,
                [
                    sheet_column.header(),
                    column.zh,
                    column.en,
                    _("yes") if column.required else "",
                    hints.get(column.key, ""),
                ],
            )
    append_row(help_sheet, [])
    append_row(
        help_sheet,
        [
            _(
                "A file with one bad row imports nothing: the report names each row, column and problem. "
                "Rows already registered with the same data are skipped, so a file can be uploaded again. "
                "A .csv file holds the households only (UTF-8 or GB18030)."
            )
        ],
    )
    _style_header(help_sheet)
    help_sheet.column_dimensions["E"].width = 80
    return book


def export_workbook(households, stream) -> int:
    """Write ``households`` (an iterable of households with their village and
    members) to ``stream`` as an .xlsx the import reads back; returns the
    number of households written."""
    book = Workbook(write_only=True)
    sheet = book.create_sheet(HOUSEHOLD_SHEET.header())
    append_row(sheet, [c.header() for c in EXPORT_ONLY] + [c.header() for c in HOUSEHOLD_COLUMNS])
    members_sheet = book.create_sheet(MEMBER_SHEET.header())
    append_row(members_sheet, [c.header() for c in MEMBER_COLUMNS])
    status = dict(Household.Status.choices)
    causes = dict(Household.Cause.choices)
    housing = dict(Household.Housing.choices)
    ability = dict(HouseholdMember.Ability.choices)
    count = 0
    for h in households:
        append_row(
            sheet,
            [
                h.public_id,
                h.village.label,
                h.village.code,
                h.head_name,
                h.id_number,
                h.size,
                h.phone,
                h.address,
                str(status.get(h.status, h.status)),
                h.lifted_out_year,
                "、".join(str(causes.get(c, c)) for c in h.poverty_causes),
                str(housing.get(h.housing, "")) if h.housing else "",
                h.health_notes,
            ],
        )
        for m in h.members.all():
            append_row(
                members_sheet,
                [h.id_number, m.name, m.relation, m.birth_year, str(ability.get(m.ability, m.ability)), m.health],
            )
        count += 1
    book.save(stream)
    return count


SHEET_LABELS = {"households": gettext_lazy("Households"), "members": gettext_lazy("Members")}
