"""The ledger's downloads, written as files once a batch is published.

``ledger.jsonl``, ``ledger.csv``, ``checkpoints.jsonl`` and
``checkpoint.json`` are read by anyone, some of them slowly, over mountain
connections; streamed from the database through a web worker, five slow
readers held every sync worker and the site stopped answering (issue 14).
So they are files under ``LEDGER_FILES_ROOT`` that the proxy (or, without
one, the web process with ``sendfile``) serves as they are:

    LEDGER_FILES_ROOT/
        batches/<n>-<id>/ledger.jsonl …   everything up to batch n; never changes
        current -> batches/<n>-<id>       the latest complete set

The four files of one set are written together, up to one batch, so the
ledger file and the checkpoint downloaded beside it agree. Set n is made
from set m < n by copying m's files (in the kernel) and appending what
batches m+1..n published, in a directory of its own; then ``current`` is
swapped to it with one rename, so a reader sees the old set or the new one,
never a part of either, and a download already started keeps reading the
old files. Writing is safe to run twice, at once (one writer at a time, by
an advisory lock) or after a crash (a half-made set is never ``current``),
and a set that does not match the database's batches (another database, a
restore) is rebuilt from the published rows.
"""

import csv
import json
import os
import shutil
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection

from sun_commune.spreadsheets import csv_cell

from . import giving
from .models import LedgerBatch, PublishedEntry

ADVISORY_LOCK = 0x5C0_F11E  # "sun files": one writer of the download files at a time
FILES = ("ledger.jsonl", "ledger.csv", "checkpoints.jsonl", "checkpoint.json", *giving.FILES)
STATE = "state.json"  # what the set holds; not served
# The files' layout; a set of another layout, or whose 360Giving
# identifiers have another GIVING_PREFIX, is not built on but rebuilt.
# 2: the ledger CSV's own columns, and the 360Giving files (issue 15).
FORMAT = 2
CHUNK = 5000

CSV_COLUMNS = [
    # The ledger's own columns, one entry a row (README, "The public ledger").
    # They are not 360Giving's: that file holds the grants only (giving.py).
    ("Entry Index", lambda d: d["index"]),
    ("Transaction Id", lambda d: d["id"]),
    ("Kind", lambda d: d["kind"]),
    ("Date", lambda d: d["date"]),
    ("Recorded At", lambda d: d["recorded_at"]),
    ("Amount", lambda d: d["amount"]),
    ("Currency", lambda d: d["currency"]),
    ("Need Id", lambda d: d["need"] or ""),
    ("Need Title", lambda d: d["need_title"] or ""),
    ("Household", lambda d: d["household"] or ""),
    ("Area Code", lambda d: d["area"]),
    ("Area Name", lambda d: d["area_name"]),
    ("Donor", lambda d: d["donor"] or ""),
    ("Purpose", lambda d: d["purpose"]),
    ("Category", lambda d: d["category"] or ""),
    ("Payee", lambda d: d["payee"] or ""),
    ("Voucher SHA-256", lambda d: d["voucher_sha256"] or ""),
    ("Reverses", lambda d: d["reverses"] or ""),
    ("Legs", lambda d: " ".join(f"{leg['account']}:{leg['amount']}" for leg in d["legs"])),
]
TEXT_COLUMNS = {"Need Title", "Area Name", "Donor", "Purpose", "Payee"}


def csv_row(line: str) -> list:
    data = json.loads(line)
    return [csv_cell(get(data)) if name in TEXT_COLUMNS else get(data) for name, get in CSV_COLUMNS]


def checkpoint_json(batch: LedgerBatch) -> str:
    """The latest checkpoint as /ledger/checkpoint.json has always served it."""
    return json.dumps(batch.checkpoint(), cls=DjangoJSONEncoder)


class FileSet(NamedTuple):
    directory: Path  # batches/<n>, resolved: its files never change
    batch: int  # 0: nothing published yet
    tree_size: int
    root_hash: str


def _state_of(batch: LedgerBatch | None) -> dict:
    if batch is None:
        return {"batch": 0, "tree_size": 0, "root_hash": ""}
    return {"batch": batch.number, "tree_size": batch.tree_size, "root_hash": batch.root_hash}


def root() -> Path:
    return Path(settings.LEDGER_FILES_ROOT)


def current() -> FileSet | None:
    """The set ``current`` points to, or None when there is none yet."""
    try:
        directory = (root() / "current").resolve(strict=True)
        state = json.loads((directory / STATE).read_text())
        if state.get("format") != FORMAT or state.get("giving_prefix") != settings.GIVING_PREFIX:
            return None
        return FileSet(directory, state["batch"], state["tree_size"], state["root_hash"])
    except (OSError, ValueError, KeyError):
        return None


def _matches(files: FileSet, batch: LedgerBatch | None) -> bool:
    """Whether ``files`` hold exactly what the database published up to ``batch``."""
    return {"batch": files.batch, "tree_size": files.tree_size, "root_hash": files.root_hash} == _state_of(batch)


def _still_published(files: FileSet) -> bool:
    """Whether the database published what ``files`` hold (they may lag behind)."""
    if files.batch == 0:
        return True
    return _matches(files, LedgerBatch.objects.filter(number=files.batch).first())


@contextmanager
def _writer_lock(wait: bool):
    with connection.cursor() as cursor:
        if wait:
            cursor.execute("SELECT pg_advisory_lock(%s)", [ADVISORY_LOCK])
            got = True
        else:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [ADVISORY_LOCK])
            got = cursor.fetchone()[0]
    try:
        yield got
    finally:
        if got:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [ADVISORY_LOCK])


def write_files(*, wait: bool = True, rebuild: bool = False) -> FileSet | None:
    """Bring the download files up to the latest published batch (appending
    what was published since the current set, or rebuilding them all when
    the current set is not a part of what the database published, or when
    ``rebuild``). Returns
    the current set, or None when ``wait`` is false and another process is
    writing them. Writes only files; no database change."""
    with _writer_lock(wait) as got:
        if not got:
            return None
        latest = LedgerBatch.objects.order_by("-number").first()
        have = current()
        if have is not None and _matches(have, latest) and not rebuild:
            return have
        usable = have is not None and not rebuild and have.batch <= _state_of(latest)["batch"]
        base = have if usable and _still_published(have) else None
        made = _write_set(base, latest)
        # The set just replaced stays a while: a request that found it
        # through ``current`` a moment ago may not have opened its file yet.
        _prune(keep={made.directory, have.directory if have else None})
        return made


def _write_set(base: FileSet | None, latest: LedgerBatch | None) -> FileSet:
    state = _state_of(latest)
    batches = root() / "batches"
    batches.mkdir(parents=True, exist_ok=True)
    final = batches / f"{state['batch']}-{uuid.uuid4().hex[:8]}"  # a rebuild of n is a set of its own
    work = batches / f".new-{final.name}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    start = base.tree_size if base else 0
    if base is not None:
        for name in ("ledger.jsonl", "ledger.csv", "checkpoints.jsonl"):
            shutil.copyfile(base.directory / name, work / name)  # sendfile/copy_file_range: in the kernel
    with (
        open(work / "ledger.jsonl", "a", encoding="utf-8", newline="") as jsonl,
        open(work / "ledger.csv", "a", encoding="utf-8", newline="") as table,
    ):
        writer = csv.writer(table)
        if base is None:
            table.write("\ufeff")
            writer.writerow([name for name, _get in CSV_COLUMNS])
        entries = PublishedEntry.objects.filter(index__gte=start, index__lt=state["tree_size"]).order_by("index")
        for line in entries.values_list("line", flat=True).iterator(chunk_size=CHUNK):
            jsonl.write(line + "\n")
            writer.writerow(csv_row(line))
        _sync(jsonl, table)
    with open(work / "checkpoints.jsonl", "a", encoding="utf-8") as out:
        since = LedgerBatch.objects.filter(number__gt=base.batch if base else 0, number__lte=state["batch"])
        for batch in since.order_by("number").iterator(chunk_size=2000):
            out.write(json.dumps(batch.checkpoint(), separators=(",", ":")) + "\n")
        _sync(out)
    giving.write_set(work, base.directory if base else None, start, state["tree_size"])
    if latest is not None:
        (work / "checkpoint.json").write_text(checkpoint_json(latest), encoding="utf-8")
    layout = {"format": FORMAT, "giving_prefix": settings.GIVING_PREFIX}
    (work / STATE).write_text(json.dumps({**state, **layout}), encoding="utf-8")
    os.rename(work, final)
    link = root() / f".current-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(Path("batches") / final.name, link)
    os.replace(link, root() / "current")
    _sync_dir(root())
    return FileSet(final, state["batch"], state["tree_size"], state["root_hash"])


def _sync(*files) -> None:
    for f in files:
        f.flush()
        os.fsync(f.fileno())


def _sync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _prune(*, keep: set) -> None:
    """Remove the older sets (a download that opened one keeps reading it:
    the files go away only when it closes them)."""
    for directory in (root() / "batches").iterdir():
        if directory.resolve() not in keep:
            shutil.rmtree(directory, ignore_errors=True)


def serving() -> FileSet:
    """The set a download is served from: up to the latest batch when the
    files can be brought up to it now, or the previous set (whole and
    consistent, a batch or so behind) while another process writes them."""
    latest = LedgerBatch.objects.order_by("-number").first()
    have = current()
    if have is not None and _matches(have, latest):
        return have
    made = write_files(wait=False)
    if made is not None:
        return made
    if have is not None and _still_published(have):
        return have
    return write_files(wait=True)
