"""The ledger's downloads, written as files once a batch is published.

``ledger.jsonl``, ``ledger.csv``, ``checkpoints.jsonl`` and
``checkpoint.json`` are read by anyone, some of them slowly, over mountain
connections; streamed from the database through a web worker, five slow
readers held every sync worker and the site stopped answering (issue 14).
So they are files under ``LEDGER_FILES_ROOT`` that the proxy (or, without
one, the web process with ``sendfile``) serves as they are:

    LEDGER_FILES_ROOT/
        batches/<n>-a/ledger.jsonl … state.json   one set, up to batch n
        batches/<m>-b/…                           the other, a batch or two behind
        current -> batches/<n>-a                  the latest complete set

Two sets, double buffered, so that publishing a batch costs that batch, not
the whole ledger (10 million entries are gigabytes; copying them every
minute is what this replaced). To publish batch n the set ``current`` does
not point to is brought up to n: the lines of the batches it lacks (those
published since it was last current, usually two) are appended to its
``ledger.jsonl``, ``ledger.csv`` and ``checkpoints.jsonl``, which only grow,
their earlier bytes never changing (the directory is first renamed to the
batch it will hold, so a request that found it before it stopped being
current opens nothing there and looks again); ``checkpoint.json`` is
replaced (temp + rename); everything is fsynced; its ``state.json`` (temp +
rename) records the batch it holds and each file's byte length; then
``current`` is swapped to it with one rename. A reader sees
the old set or the new one, never a part of either: nobody opens the set
being appended to (new opens go through ``current``, which resolves at open
time), and a download that opened it while it was current has a fixed
length (the proxy sends the size it found at open; the web process sends
exactly the length in the state it read, :func:`open_download`), and bytes
past that length do not change the bytes before it.

Writing is safe to run twice, at once (one writer at a time, by an advisory
lock) or after a crash: a set whose files are longer than its state records
(an append cut short) is truncated back to those lengths before appending,
and a set that does not match the database's batches (another database, a
restore, files shorter than recorded) is made anew, in a directory of its
own, from the current set when that one matches (copied in the kernel) or
else from the published rows, as is a missing set the first time.
``--rebuild`` makes both sets from the published rows. Both ways write the
same bytes.
"""

import csv
import json
import os
import re
import shutil
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
APPENDED = ("ledger.jsonl", "ledger.csv", "checkpoints.jsonl")  # only ever grow
SLOTS = ("a", "b")  # the two sets: batches/<n>-a, batches/<m>-b
SLOT_NAME = re.compile(r"^(\d+)-([ab])$")
# The files' layout; a set of another layout, or whose 360Giving
# identifiers have another GIVING_PREFIX, is not built on but made anew.
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
    directory: Path  # batches/<n>-<slot>, resolved
    batch: int  # 0: nothing published yet
    tree_size: int
    root_hash: str
    lengths: dict  # file name -> the bytes of it this set holds (a download sends exactly these)


def _state_of(batch: LedgerBatch | None) -> dict:
    if batch is None:
        return {"batch": 0, "tree_size": 0, "root_hash": ""}
    return {"batch": batch.number, "tree_size": batch.tree_size, "root_hash": batch.root_hash}


def root() -> Path:
    return Path(settings.LEDGER_FILES_ROOT)


def _read_set(directory: Path) -> FileSet | None:
    try:
        state = json.loads((directory / STATE).read_text())
        lengths = state.get("lengths")
        if lengths is None:  # a set written before the sets were appended to: its files never change
            lengths = {name: (directory / name).stat().st_size for name in FILES if (directory / name).exists()}
        return FileSet(directory, state["batch"], state["tree_size"], state["root_hash"], lengths)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def current() -> FileSet | None:
    """The set ``current`` points to, or None when there is none yet."""
    try:
        directory = (root() / "current").resolve(strict=True)
    except OSError:
        return None
    return _read_set(directory)


def _matches(files: FileSet, batch: LedgerBatch | None) -> bool:
    """Whether ``files`` hold exactly what the database published up to ``batch``."""
    return {"batch": files.batch, "tree_size": files.tree_size, "root_hash": files.root_hash} == _state_of(batch)


def _still_published(files: FileSet) -> bool:
    """Whether the database published what ``files`` hold (they may lag behind)."""
    if files.batch == 0:
        return True
    return _matches(files, LedgerBatch.objects.filter(number=files.batch).first())


def _layout() -> dict:
    return {"format": FORMAT, "giving_prefix": settings.GIVING_PREFIX}


def _same_layout(files: FileSet) -> bool:
    try:
        state = json.loads((files.directory / STATE).read_text())
    except (OSError, ValueError):
        return False
    return {k: state.get(k) for k in ("format", "giving_prefix")} == _layout()


def _usable(files: FileSet | None, latest: LedgerBatch | None) -> bool:
    """Whether ``files`` are a part of what the database published up to
    ``latest``, in this layout (else a set is made anew, not built on)."""
    return (
        files is not None
        and files.batch <= _state_of(latest)["batch"]
        and _still_published(files)
        and _same_layout(files)
    )


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
    to the set ``current`` does not point to what it lacks, and swapping
    ``current`` to it; making a set anew when it is not a part of what the
    database published, or both sets when ``rebuild``). Returns the current
    set, or None when ``wait`` is false and another process is writing
    them. Writes only files; no database change."""
    with _writer_lock(wait) as got:
        if not got:
            return None
        latest = LedgerBatch.objects.order_by("-number").first()
        have = current()
        if have is not None and _matches(have, latest) and _same_layout(have) and not rebuild:
            return have
        sets = _sets()
        active = _slot_of(have.directory) if have is not None else None
        target = SLOTS[1] if active == SLOTS[0] else SLOTS[0]
        base = have if not rebuild and _usable(have, latest) else None
        made = _bring_up(target, sets.get(target), latest, base=base, rebuild=rebuild)
        _swap(made.directory)
        if rebuild and active is not None:
            # The other set, no longer current, is made the same (a copy of
            # the rebuilt one: byte for byte what the rows would make).
            _make(active, latest, base=made)
        # The set just replaced stays (it is the other buffer), and so does
        # one of the old layout: a request that found it through
        # ``current`` a moment ago may not have opened its file yet.
        _prune(keep={made.directory, have.directory if have else None} | {d.resolve() for d in _sets().values()})
        return made


def _sets() -> dict:
    """The directory of each of the two sets there are, by slot."""
    found = {}
    batches = root() / "batches"
    if batches.is_dir():
        for directory in batches.iterdir():
            named = SLOT_NAME.match(directory.name)
            if named and directory.is_dir():
                slot, number = named.group(2), int(named.group(1))
                if slot not in found or number > int(SLOT_NAME.match(found[slot].name).group(1)):
                    found[slot] = directory
    return found


def _slot_of(directory: Path) -> str | None:
    named = SLOT_NAME.match(directory.name)
    return named.group(2) if named else None


def _bring_up(slot: str, directory: Path | None, latest, *, base: FileSet | None, rebuild: bool) -> FileSet:
    """The set in ``slot`` brought up to ``latest``: appended to when it is a
    part of what was published, else made anew."""
    files = _read_set(directory) if directory is not None and not rebuild else None
    if _usable(files, latest):
        files = _moved(files, _state_of(latest), slot)
        if _repaired(files):
            return _append(files, latest, slot)
    return _make(slot, latest, base=base)


def _moved(files: FileSet, state: dict, slot: str) -> FileSet:
    """The set renamed to the batch it is about to hold, before a byte of it
    changes: a request that found it while it was current and has not yet
    opened its file finds nothing there and looks again (:func:`open_download`)."""
    final = files.directory.parent / f"{state['batch']}-{slot}"
    if final == files.directory:
        return files
    shutil.rmtree(final, ignore_errors=True)  # a leftover of this slot's, never current
    os.rename(files.directory, final)
    _sync_dir(final.parent)
    return files._replace(directory=final)


def _repaired(files: FileSet) -> bool:
    """Cut what an append cut short left past the recorded lengths; False
    when a file is shorter than recorded (or missing): the set is made anew."""
    for name in APPENDED:
        path = files.directory / name
        try:
            size = path.stat().st_size
        except OSError:
            return False
        recorded = files.lengths.get(name)
        if recorded is None or size < recorded:
            return False
        if size > recorded:
            with open(path, "r+b") as f:
                f.truncate(recorded)
                os.fsync(f.fileno())
    return True


def _append(files: FileSet, latest, slot: str) -> FileSet:
    state = _state_of(latest)
    directory = files.directory
    with (
        open(directory / "ledger.jsonl", "a", encoding="utf-8", newline="") as jsonl,
        open(directory / "ledger.csv", "a", encoding="utf-8", newline="") as table,
        open(directory / "checkpoints.jsonl", "a", encoding="utf-8") as checkpoints,
    ):
        _write_lines(jsonl, table, checkpoints, files.tree_size, files.batch, state)
    giving.write_set(directory, directory, files.tree_size, state["tree_size"])
    return _finish(directory, latest, slot)


def _make(slot: str, latest, *, base: FileSet | None) -> FileSet:
    """The set in ``slot`` made in a directory of its own: ``base``'s files
    copied (in the kernel) and what was published since appended, or, without
    a base, everything from the published rows."""
    state = _state_of(latest)
    batches = root() / "batches"
    batches.mkdir(parents=True, exist_ok=True)
    work = batches / f".new-{state['batch']}-{slot}"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    if base is not None:
        for name in APPENDED:
            shutil.copyfile(base.directory / name, work / name)  # sendfile/copy_file_range: in the kernel
            with open(work / name, "r+b") as copy:
                if os.fstat(copy.fileno()).st_size < base.lengths[name]:
                    raise OSError(f"{base.directory / name}: shorter than the {base.lengths[name]} bytes recorded")
                copy.truncate(base.lengths[name])
    with (
        open(work / "ledger.jsonl", "a", encoding="utf-8", newline="") as jsonl,
        open(work / "ledger.csv", "a", encoding="utf-8", newline="") as table,
        open(work / "checkpoints.jsonl", "a", encoding="utf-8") as checkpoints,
    ):
        if base is None:
            table.write("\ufeff")
            csv.writer(table).writerow([name for name, _get in CSV_COLUMNS])
        _write_lines(jsonl, table, checkpoints, base.tree_size if base else 0, base.batch if base else 0, state)
    giving.write_set(work, base.directory if base else None, base.tree_size if base else 0, state["tree_size"])
    for old in batches.iterdir():
        named = SLOT_NAME.match(old.name)
        if named and named.group(2) == slot:
            shutil.rmtree(old, ignore_errors=True)  # never current: the other slot is, or none
    return _finish(work, latest, slot)


def _write_lines(jsonl, table, checkpoints, start: int, since: int, state: dict) -> None:
    """Append the entries ``start``..tree_size and the checkpoints of the
    batches after ``since``, and fsync them."""
    writer = csv.writer(table)
    entries = PublishedEntry.objects.filter(index__gte=start, index__lt=state["tree_size"]).order_by("index")
    for line in entries.values_list("line", flat=True).iterator(chunk_size=CHUNK):
        jsonl.write(line + "\n")
        writer.writerow(csv_row(line))
    batches = LedgerBatch.objects.filter(number__gt=since, number__lte=state["batch"]).order_by("number")
    for batch in batches.iterator(chunk_size=2000):
        checkpoints.write(json.dumps(batch.checkpoint(), separators=(",", ":")) + "\n")
    _sync(jsonl, table, checkpoints)


def _finish(directory: Path, latest, slot: str) -> FileSet:
    """Replace the set's checkpoint and state (temp + rename) and name a new
    set's directory after its batch; ready to be swapped in."""
    state = _state_of(latest)
    if latest is not None:
        _write_atomically(directory / "checkpoint.json", checkpoint_json(latest))
    else:
        (directory / "checkpoint.json").unlink(missing_ok=True)
    lengths = {name: (directory / name).stat().st_size for name in FILES if (directory / name).exists()}
    _write_atomically(directory / STATE, json.dumps({**state, **_layout(), "lengths": lengths}))
    _sync_dir(directory)
    final = directory.parent / f"{state['batch']}-{slot}"
    if final != directory:
        os.rename(directory, final)  # the slot's old directory is gone (_make)
        _sync_dir(directory.parent)
    return FileSet(final.resolve(), state["batch"], state["tree_size"], state["root_hash"], lengths)


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.new")
    with open(temporary, "w", encoding="utf-8") as out:
        out.write(text)
        _sync(out)
    os.replace(temporary, path)


def _swap(directory: Path) -> None:
    link = root() / f".current-{os.getpid()}"
    link.unlink(missing_ok=True)
    os.symlink(Path("batches") / directory.name, link)
    os.replace(link, root() / "current")
    _sync_dir(root())


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
    """Remove the other directories: a dead writer's leftovers, sets of the
    old layout (a download that opened one keeps reading it: the files go
    away only when it closes them)."""
    for directory in (root() / "batches").iterdir():
        if directory.resolve() not in keep:
            shutil.rmtree(directory, ignore_errors=True)


class Download:
    """The first ``length`` bytes of an open file, and never more: the
    length the set's state recorded, though the file may since have grown
    (the set is appended to once it is no longer current). ``fileno`` lets
    the WSGI server ``sendfile``, which stops at the Content-Length."""

    def __init__(self, file, length: int):
        self.file, self.length, self.left = file, length, length

    def read(self, size: int = -1) -> bytes:
        size = self.left if size is None or size < 0 else min(size, self.left)
        data = self.file.read(size) if size else b""
        self.left -= len(data)
        return data

    def fileno(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()


def open_download(name: str) -> Download | None:
    """One of ``FILES`` of the set a download is served from, cut at the
    length its state records; None when the set has no such file
    (checkpoint.json before the first batch)."""
    for _attempt in range(2):
        files = serving()
        length = files.lengths.get(name)
        if length is None:
            return None
        try:
            return Download(open(files.directory / name, "rb"), length)
        except FileNotFoundError:
            continue  # the set was renamed between finding it and opening the file: find it again
    return None


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
