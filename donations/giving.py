"""The ledger's grants as 360Giving open data (``/ledger/360giving.csv`` and
``/ledger/360giving.json``, issue 15).

360Giving describes grants: money (or goods) a funder gave a recipient. Of
the ledger's entries only two kinds are that: money a donor's pledge brought
to a need (``money_in``) and goods that arrived at a need, at their declared
value (``goods_in``). Undirected gifts to a pool, allocations from a pool,
left-overs returned to it and payments out are the platform moving money
that it already counted once; published as awards they doubled the total
(issue 15). A grant that a later reversal took back was never a grant:
360Giving has no negative award, and a publisher republishes its file as
things stand, so the reversed grant is left out of every set made after the
reversal was published (the full ledger keeps both entries).

Identifiers live under ``GIVING_PREFIX`` (a ``360G-`` namespace):

- a grant: ``<prefix>-<transaction id>``;
- a funder: ``<prefix>-donor-<donor id>`` for a donor who chose to be named,
  and one organisation ``<prefix>-anonymous-donor`` named "Anonymous donor"
  for everyone else (a donor who stays anonymous is not told apart from
  another). ``Donor`` keeps no unified social credit code, so no funder is
  ``CN-USCC-…`` yet;
- a household: ``Recipient Ind`` with ``<prefix>-household-<public id>`` and
  the name "Household <public id>", never a person's name (DESIGN rule 4);
- a need of a whole village: ``Recipient Org`` ``<prefix>-village-<area
  code>`` with the village's name (360Giving wants a recipient organisation
  or individual; the village committee receives it);
- the location: the village, by its name and 12-digit statistical area code.

Everything comes from published entries (their lines, and for a named donor
the id of the donor on the entry's transaction): nothing unpublished. The
files are written into each set of downloads beside the ledger
(``downloads._write_set``): ``giving.jsonl`` (one grant per line, not
served) is carried from set to set, with the new grants appended and a
reversed one dropped, and the CSV and JSON are written from it.
"""

import csv
import json
import os
import shutil
from pathlib import Path

from django.conf import settings

from sun_commune.spreadsheets import csv_cell

from .models import LedgerTransaction, PublishedEntry
from .publication import ANONYMOUS

Kind = LedgerTransaction.Kind
GRANT_KINDS = (Kind.MONEY_IN, Kind.GOODS_IN)
FILES = ("360giving.csv", "360giving.json")
GRANTS = "giving.jsonl"  # the set's grants, one JSON object a line; not served
CHUNK = 5000
PROGRAMMES = {Kind.MONEY_IN: "Money for a need", Kind.GOODS_IN: "Goods for a need (declared value)"}

# The columns of 360Giving's flattened form (its schema's titles, as
# flattentool reads them), and where each comes from in a grant.
COLUMNS = [
    ("Identifier", ("id",)),
    ("Title", ("title",)),
    ("Description", ("description",)),
    ("Currency", ("currency",)),
    ("Amount Awarded", ("amountAwarded",)),
    ("Award Date", ("awardDate",)),
    ("Recipient Org:Identifier", ("recipientOrganization", 0, "id")),
    ("Recipient Org:Name", ("recipientOrganization", 0, "name")),
    ("Recipient Ind:Identifier", ("recipientIndividual", "id")),
    ("Recipient Ind:Name", ("recipientIndividual", "name")),
    ("Funding Org:Identifier", ("fundingOrganization", 0, "id")),
    ("Funding Org:Name", ("fundingOrganization", 0, "name")),
    ("Beneficiary Location:Name", ("beneficiaryLocation", 0, "name")),
    ("Beneficiary Location:Geographic Code", ("beneficiaryLocation", 0, "geoCode")),
    ("Beneficiary Location:Country Code", ("beneficiaryLocation", 0, "countryCode")),
    ("Grant Programme:Title", ("grantProgramme", 0, "title")),
    ("Last Modified", ("dateModified",)),
]
JSON_HEAD, JSON_TAIL = '{"grants":[\n', "\n]}\n"


def funder(entry: dict, donor_id: int | None) -> dict:
    """The funding organisation of a grant: the donor if they chose to be
    named (the published line carries their name), else the one anonymous
    donor."""
    prefix = settings.GIVING_PREFIX
    if entry["donor"] in (None, ANONYMOUS) or donor_id is None:
        return {"id": f"{prefix}-anonymous-donor", "name": "Anonymous donor"}
    return {"id": f"{prefix}-donor-{donor_id}", "name": entry["donor"]}


def grant_line(entry: dict, donor_id: int | None) -> str:
    """One grant, as a JSON object on one line. The amount is written as the
    ledger's decimal (a JSON number, never through a float)."""
    prefix = settings.GIVING_PREFIX
    title = entry["need_title"] or entry["purpose"]
    grant = {
        "id": f"{prefix}-{entry['id']}",
        "title": title,
        "description": f"{PROGRAMMES[entry['kind']]}: {title}",
        "currency": entry["currency"],
        "awardDate": entry["date"],
        "fundingOrganization": [funder(entry, donor_id)],
        "beneficiaryLocation": [{"name": entry["area_name"], "geoCode": entry["area"], "countryCode": "CN"}],
        "grantProgramme": [{"title": PROGRAMMES[entry["kind"]]}],
        "dateModified": entry["recorded_at"],
    }
    if entry["household"]:
        household = entry["household"]
        grant["recipientIndividual"] = {"id": f"{prefix}-household-{household}", "name": f"Household {household}"}
    else:
        grant["recipientOrganization"] = [{"id": f"{prefix}-village-{entry['area']}", "name": entry["area_name"]}]
    text = json.dumps(grant, ensure_ascii=False, separators=(",", ":"))
    return f'{text[:-1]},"amountAwarded":{entry["amount"]}}}'


def csv_row(line: str) -> list:
    grant = json.loads(line, parse_float=str)
    row = []
    for _title, path in COLUMNS:
        value = grant
        for step in path:
            try:
                value = value[step]
            except (KeyError, IndexError):
                value = ""
                break
        row.append(csv_cell(value))
    return row


def _grant_id(line: str) -> str:
    return line[len('{"id":"') : line.index('"', len('{"id":"'))]


def write_set(work: Path, base: Path | None, start: int, end: int) -> None:
    """Write the 360Giving files of the set being made in ``work``: the
    grants of ``base`` (the previous set, holding entries below ``start``)
    and of the entries ``start``..``end`` − 1. Without ``base`` (or when it
    has no grants file yet) every published entry below ``end`` is read.
    Reads published rows only; writes only files."""
    if base is None or not (base / GRANTS).exists():
        base, start = None, 0
    new, reversed_ids = [], set()
    entries = (
        PublishedEntry.objects.filter(index__gte=start, index__lt=end, kind__in=(*GRANT_KINDS, Kind.REVERSAL))
        .order_by("index")
        .values_list("kind", "line", "transaction__donor_id")
    )
    for kind, line, donor_id in entries.iterator(chunk_size=CHUNK):
        entry = json.loads(line)
        if kind == Kind.REVERSAL:
            reversed_ids.add(f"{settings.GIVING_PREFIX}-{entry['reverses']}")
        else:
            new.append(grant_line(entry, donor_id))
    new = [line for line in new if _grant_id(line) not in reversed_ids]
    # Each file is written under a new name and renamed over the old one: a
    # download of a set's earlier file keeps its bytes (``base`` may be
    # ``work`` itself: the set appended to in place, downloads.py).
    if base is not None and not reversed_ids:
        # Nothing taken back: the previous set's files, with the new grants added.
        for name in (GRANTS, *FILES):
            shutil.copyfile(base / name, _new(work, name))
        _append(work, new)
    else:
        kept = []
        if base is not None:
            with open(base / GRANTS, encoding="utf-8") as previous:
                kept = [line.rstrip("\n") for line in previous if _grant_id(line) not in reversed_ids]
        _write_all(work, kept + new)
    for name in (GRANTS, *FILES):
        os.replace(_new(work, name), work / name)


def _new(work: Path, name: str) -> Path:
    return work / f".{name}.new"


def _append(work: Path, new: list[str]) -> None:
    if not new:
        return
    with open(_new(work, GRANTS), "a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in new)
    with open(_new(work, "360giving.csv"), "a", encoding="utf-8", newline="") as out:
        csv.writer(out).writerows(csv_row(line) for line in new)
    with open(_new(work, "360giving.json"), "r+b") as out:
        size = out.seek(0, 2)
        empty = size == len((JSON_HEAD + JSON_TAIL[1:]).encode())
        out.seek(size - len(JSON_TAIL if not empty else JSON_TAIL[1:]))
        out.truncate()
        out.write((("" if empty else ",\n") + ",\n".join(new) + JSON_TAIL).encode())


def _write_all(work: Path, grants: list[str]) -> None:
    with open(_new(work, GRANTS), "w", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in grants)
    with open(_new(work, "360giving.csv"), "w", encoding="utf-8", newline="") as out:
        out.write("\ufeff")
        writer = csv.writer(out)
        writer.writerow([title for title, _path in COLUMNS])
        writer.writerows(csv_row(line) for line in grants)
    with open(_new(work, "360giving.json"), "w", encoding="utf-8") as out:
        out.write(JSON_HEAD + ",\n".join(grants) + (JSON_TAIL if grants else JSON_TAIL[1:]))
