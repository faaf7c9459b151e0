"""The ledger's downloads are files written when a batch is published
(issue 14, finding 2): served as they are, never streamed from the database
through a worker; one batch's set at a time, consistent with its checkpoint;
safe to write twice, after a crash, or from another database's leftovers."""

import csv
import io
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import connection
from django.http import FileResponse
from django.test import Client

from donations import downloads, publication, tasks
from donations.models import LedgerBatch, PublishedEntry
from donations.services import money

from .ledger_support import yesterday

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "tools" / "verify_ledger.py"


@pytest.fixture
def files_root(settings, tmp_path):
    settings.LEDGER_FILES_ROOT = tmp_path / "ledger-files"
    return settings.LEDGER_FILES_ROOT


def gift(by, area, amount):
    return money.record_gift(by=by, area=area, amount=amount, reference=f"V-{amount}", occurred_on=yesterday())


def get(url) -> bytes:
    response = Client().get(url)
    assert response.status_code == 200, url
    return b"".join(response.streaming_content) if response.streaming else response.content


def set_bytes(files: downloads.FileSet) -> dict:
    return {name: (files.directory / name).read_bytes() for name in downloads.FILES}


def expected_jsonl() -> bytes:
    lines = PublishedEntry.objects.order_by("index").values_list("line", flat=True)
    return "".join(line + "\n" for line in lines).encode()


def expected_checkpoints() -> bytes:
    return "".join(
        json.dumps(b.checkpoint(), separators=(",", ":")) + "\n" for b in LedgerBatch.objects.order_by("number")
    ).encode()


@pytest.fixture
def two_batches(areas, county_reviewer, files_root):
    gift(county_reviewer, areas.yanting, "100")
    gift(county_reviewer, areas.zitong, "200")
    publication.publish_all()
    first = downloads.write_files()
    gift(county_reviewer, areas.yanting, "300")
    publication.publish_all()
    return first


def test_the_files_hold_exactly_what_was_published_up_to_the_latest_batch(two_batches):
    files = downloads.write_files()
    latest = LedgerBatch.objects.order_by("-number").first()

    assert (files.batch, files.tree_size, files.root_hash) == (2, 3, latest.root_hash)
    assert (files.directory / "ledger.jsonl").read_bytes() == expected_jsonl()
    assert (files.directory / "checkpoints.jsonl").read_bytes() == expected_checkpoints()
    assert json.loads((files.directory / "checkpoint.json").read_bytes()) == latest.checkpoint()
    table = (files.directory / "ledger.csv").read_bytes().decode("utf-8")
    rows = list(csv.reader(io.StringIO(table.removeprefix("\ufeff"))))
    assert table.startswith("\ufeffEntry Index,Transaction Id,") and [r[0] for r in rows[1:]] == ["0", "1", "2"]
    assert files.directory == (files.directory.parent.parent / "current").resolve()


def test_appending_a_batch_makes_the_same_bytes_as_writing_everything_anew(two_batches):
    first = set_bytes(two_batches)
    appended = set_bytes(downloads.write_files())  # batch 1's set + batch 2
    rebuilt = set_bytes(downloads.write_files(rebuild=True))

    assert appended == rebuilt
    assert two_batches.batch == 1 and first != appended
    assert appended["ledger.jsonl"].startswith(first["ledger.jsonl"])
    assert appended["ledger.csv"].startswith(first["ledger.csv"])


def test_the_stable_urls_serve_the_files_without_reading_the_entries(two_batches, django_assert_max_num_queries):
    files = downloads.write_files()
    for name in ("ledger.jsonl", "ledger.csv", "checkpoints.jsonl", "checkpoint.json"):
        with django_assert_max_num_queries(2):  # the latest batch, the lock: never the entries
            response = Client().get(f"/ledger/{name}")
        assert isinstance(response, FileResponse), name
        assert b"".join(response.streaming_content) == (files.directory / name).read_bytes(), name
    response = Client().get("/ledger/ledger.jsonl")
    assert response["Content-Type"] == "application/x-ndjson; charset=utf-8"
    assert response["Content-Disposition"] == 'attachment; filename="ledger.jsonl"'
    assert response["Content-Length"] == str(len(expected_jsonl()))
    assert Client().get("/ledger/checkpoint.json")["Content-Type"] == "application/json"


def test_a_request_brings_files_that_lag_behind_up_to_the_latest_batch(two_batches, tmp_path):
    """No worker wrote batch 2 yet (the fixture wrote only batch 1)."""
    ledger = tmp_path / "ledger.jsonl"
    ledger.write_bytes(get("/ledger/ledger.jsonl"))
    checkpoint = tmp_path / "checkpoint.json"
    checkpoint.write_bytes(get("/ledger/checkpoint.json"))

    assert ledger.read_bytes() == expected_jsonl()
    assert json.loads(checkpoint.read_bytes())["batch"] == 2
    key = ["--public-key", publication.public_key_hex()]
    result = subprocess.run(
        [sys.executable, "-I", str(VERIFIER), ledger, checkpoint, *key], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_while_another_process_writes_the_previous_whole_set_is_served(two_batches, tmp_path):
    locked, release = threading.Event(), threading.Event()

    def writer_elsewhere():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s)", [downloads.ADVISORY_LOCK])
            locked.set()
            release.wait(30)
            cursor.execute("SELECT pg_advisory_unlock(%s)", [downloads.ADVISORY_LOCK])
        connection.close()

    thread = threading.Thread(target=writer_elsewhere)
    thread.start()
    try:
        assert locked.wait(10)
        ledger, checkpoint = get("/ledger/ledger.jsonl"), json.loads(get("/ledger/checkpoint.json"))
    finally:
        release.set()
        thread.join()

    assert ledger == (two_batches.directory / "ledger.jsonl").read_bytes()
    assert ledger.count(b"\n") == checkpoint["tree_size"] == 2 and checkpoint["batch"] == 1
    assert downloads.current().batch == 1  # nothing written under someone else's lock


def test_files_from_another_database_are_rebuilt_not_served(areas, county_reviewer, files_root):
    gift(county_reviewer, areas.yanting, "100")
    publication.publish_all()
    mine = downloads.write_files()
    state = json.loads((mine.directory / downloads.STATE).read_text())
    (mine.directory / downloads.STATE).write_text(json.dumps({**state, "root_hash": "ab" * 32}))
    (mine.directory / "ledger.jsonl").write_text('{"not":"this ledger"}\n')

    assert get("/ledger/ledger.jsonl") == expected_jsonl()


def test_writing_twice_changes_nothing_and_a_dead_writers_leftovers_are_cleared(
    two_batches, areas, county_reviewer, files_root
):
    files = downloads.write_files()
    written = {name: (files.directory / name).stat().st_mtime_ns for name in downloads.FILES}
    assert downloads.write_files() == files
    assert {name: (files.directory / name).stat().st_mtime_ns for name in downloads.FILES} == written

    # A writer killed half-way: a set never swapped in, a directory never renamed.
    (files_root / "batches" / ".new-3-999").mkdir()
    (files_root / "batches" / "3-deadbeef").mkdir()
    (files_root / "batches" / "3-deadbeef" / "ledger.jsonl").write_text("half\n")
    gift(county_reviewer, areas.yanting, "400")
    publication.publish_all()
    newer = downloads.write_files()

    assert newer.batch == 3 and (newer.directory / "ledger.jsonl").read_bytes() == expected_jsonl()
    assert sorted(p.name.split("-")[0] for p in (files_root / "batches").iterdir()) == ["2", "3"]


def test_a_download_already_started_keeps_reading_its_own_set(two_batches):
    with open(two_batches.directory / "ledger.jsonl", "rb") as started:
        head = started.read(10)
        downloads.write_files()  # batch 2's set swapped in
        downloads.write_files(rebuild=True)  # and again: batch 1's set is pruned
        rest = started.read()
    assert (head + rest).count(b"\n") == 2 and not two_batches.directory.exists()


def test_the_beat_job_and_the_commands_write_the_files(areas, county_reviewer, files_root):
    gift(county_reviewer, areas.yanting, "100")
    tasks.publish_ledger()
    assert downloads.current().batch == 1

    gift(county_reviewer, areas.yanting, "200")
    call_command("publish_ledger", stdout=io.StringIO())
    assert downloads.current().batch == 2 and downloads.current().tree_size == 2

    out = io.StringIO()
    call_command("write_ledger_files", "--rebuild", stdout=out)
    assert "batch 2, 2 entries" in out.getvalue()
    assert (downloads.current().directory / "ledger.jsonl").read_bytes() == expected_jsonl()


def test_before_the_first_batch_the_ledger_is_empty_and_there_is_no_checkpoint(db, files_root):
    assert get("/ledger/ledger.jsonl") == b""
    assert get("/ledger/checkpoints.jsonl") == b""
    assert get("/ledger/ledger.csv").decode("utf-8").startswith("\ufeffEntry Index,")
    assert Client().get("/ledger/checkpoint.json").status_code == 404


# --- Two sets, appended to (province scale: no copy of the ledger per batch) ------------------


def both_sets(files_root) -> dict:
    """Each set by slot: its appended files' (inode, size, mtime) and inodes, and the entries it holds."""
    found = {}
    for directory in (files_root / "batches").iterdir():
        stat = (directory / "ledger.jsonl").stat()
        inodes = [(directory / name).stat().st_ino for name in downloads.APPENDED]
        held = json.loads((directory / downloads.STATE).read_text())["tree_size"]
        found[directory.name.split("-")[1]] = ((stat.st_ino, stat.st_size, stat.st_mtime_ns, inodes), held)
    return found


def publish_one(by, area, amount) -> None:
    gift(by, area, amount)
    publication.publish_all()


def test_publishing_a_batch_appends_to_the_other_set_only_what_it_lacks(
    areas, county_reviewer, files_root, monkeypatch
):
    written = []
    real_row = downloads.csv_row
    monkeypatch.setattr(downloads, "csv_row", lambda line: written.append(json.loads(line)["index"]) or real_row(line))

    publish_one(county_reviewer, areas.yanting, "100")
    assert downloads.write_files().directory.name == "1-a" and written == [0]  # the first time: from the rows
    publish_one(county_reviewer, areas.zitong, "200")
    publish_one(county_reviewer, areas.zitong, "250")
    written.clear()
    assert downloads.write_files().directory.name == "3-b" and written == [1, 2]  # a's files copied, then 2 and 3
    before = both_sets(files_root)

    for number, amount in ((4, "300"), (5, "400"), (6, "500")):
        publish_one(county_reviewer, areas.yanting, amount)
        lagging = "a" if number % 2 == 0 else "b"
        active = "b" if lagging == "a" else "a"
        written.clear()
        files = downloads.write_files()
        after = both_sets(files_root)

        assert files.directory.name == f"{number}-{lagging}" and files.tree_size == number
        assert written == list(range(before[lagging][1], number))  # once per set: only what this one lacked
        assert after[active] == before[active]  # the set that was current: not a byte written
        assert after[lagging][0][3] == before[lagging][0][3]  # the same files, grown: not copied, not rewritten
        assert after[lagging][0][1] == len(expected_jsonl()) and after[lagging][1] == number
        assert (files.directory / "ledger.jsonl").read_bytes() == expected_jsonl()
        assert (files.directory / "checkpoints.jsonl").read_bytes() == expected_checkpoints()
        before = after
    assert set_bytes(files) == set_bytes(downloads.write_files(rebuild=True))  # the same bytes as from the rows


@pytest.fixture
def both_written(areas, county_reviewer, files_root):
    """Set a at batch 1 and set b (current) at batch 2."""
    publish_one(county_reviewer, areas.yanting, "100")
    downloads.write_files()
    publish_one(county_reviewer, areas.zitong, "200")
    return downloads.write_files()


def test_an_append_cut_short_by_a_crash_is_cut_back_and_completed(both_written, areas, county_reviewer, files_root):
    lagging = files_root / "batches" / "1-a"
    inodes = {name: (lagging / name).stat().st_ino for name in downloads.APPENDED}
    for name in downloads.APPENDED:  # a writer killed half-way through its lines
        with open(lagging / name, "ab") as half:
            half.write(b'{"index": 99, "half a li')
    publish_one(county_reviewer, areas.yanting, "300")
    files = downloads.write_files()

    assert files.directory.name == "3-a" and {n: (files.directory / n).stat().st_ino for n in inodes} == inodes
    assert (files.directory / "ledger.jsonl").read_bytes() == expected_jsonl()
    assert set_bytes(files) == set_bytes(downloads.write_files(rebuild=True))


def test_a_set_with_a_file_shorter_than_recorded_is_made_anew(both_written, areas, county_reviewer, files_root):
    lagging = files_root / "batches" / "1-a"
    with open(lagging / "ledger.csv", "r+b") as cut:
        cut.truncate(10)
    publish_one(county_reviewer, areas.yanting, "300")
    files = downloads.write_files()

    assert files.directory.name == "3-a" and (files.directory / "ledger.jsonl").read_bytes() == expected_jsonl()
    assert set_bytes(files) == set_bytes(downloads.write_files(rebuild=True))


def test_a_reader_of_the_old_current_set_gets_exactly_its_bytes_while_two_batches_are_published(
    both_written, areas, county_reviewer
):
    old = (both_written.directory / "ledger.jsonl").read_bytes()
    response = Client().get("/ledger/ledger.jsonl")
    response.block_size = 10
    chunks = iter(response.streaming_content)
    head = next(chunks)
    for amount in ("300", "400"):  # set a becomes current; then b (the one being read) is appended to
        publish_one(county_reviewer, areas.yanting, amount)
        downloads.write_files()
    rest = b"".join(chunks)

    assert response["Content-Length"] == str(len(old)) and head + rest == old
    grown = downloads.current()
    assert grown.batch == 4 and grown.directory.name == "4-b"  # the very file being read grew
    assert (grown.directory / "ledger.jsonl").read_bytes().startswith(old) and len(expected_jsonl()) > len(old)


def test_a_reader_who_found_the_set_just_before_the_swap_gets_its_whole_consistent_file(
    both_written, areas, county_reviewer, monkeypatch
):
    old = (both_written.directory / "ledger.jsonl").read_bytes()
    publish_one(county_reviewer, areas.yanting, "300")
    downloads.write_files()  # current swapped away from the set just found
    with open(both_written.directory / "ledger.jsonl", "ab") as next_append:
        next_append.write(b'{"index": 3, "the next publication, under way')
    monkeypatch.setattr(downloads, "serving", lambda: both_written)

    stream = downloads.open_download("ledger.jsonl")
    assert stream.length == len(old) and stream.read() == old and stream.read() == b""
    stream.close()


def test_a_reader_who_found_a_set_since_appended_to_looks_again(both_written, areas, county_reviewer, monkeypatch):
    for amount in ("300", "400"):  # b, found a moment ago, is no longer current, then appended to
        publish_one(county_reviewer, areas.yanting, amount)
        downloads.write_files()
    found = iter([both_written, downloads.current()])
    monkeypatch.setattr(downloads, "serving", lambda: next(found))

    stream = downloads.open_download("checkpoint.json")
    assert json.loads(stream.read())["batch"] == 4 and not both_written.directory.exists()
    stream.close()


def test_a_crash_after_the_state_before_the_swap_is_finished_by_the_next_writer(
    both_written, areas, county_reviewer, files_root, monkeypatch
):
    publish_one(county_reviewer, areas.yanting, "300")
    monkeypatch.setattr(downloads, "_swap", lambda directory: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        downloads.write_files()
    assert downloads.current().batch == 2  # the half-published set is not current
    monkeypatch.undo()

    files = downloads.write_files()
    assert files.directory.name == "3-a" and downloads.current() == files
    assert (files.directory / "ledger.jsonl").read_bytes() == expected_jsonl()


def test_a_set_of_the_layout_before_the_two_sets_is_served_then_replaced(
    both_written, areas, county_reviewer, files_root
):
    """Upgrading: ``current`` points to a batches/<n>-<id> set whose state has no lengths."""
    old = files_root / "batches" / "2-0123abcd"
    both_written.directory.rename(old)
    state = json.loads((old / downloads.STATE).read_text())
    (old / downloads.STATE).write_text(json.dumps({k: state[k] for k in ("batch", "tree_size", "root_hash")}))
    shutil.rmtree(files_root / "batches" / "1-a")
    (files_root / "current").unlink()
    (files_root / "current").symlink_to(Path("batches") / old.name)
    assert get("/ledger/ledger.jsonl") == expected_jsonl()

    publish_one(county_reviewer, areas.yanting, "300")
    files = downloads.write_files()
    assert files.directory.name == "3-a" and (files.directory / "ledger.jsonl").read_bytes() == expected_jsonl()
    assert old.exists()  # found through ``current`` a moment ago: kept one more batch
    publish_one(county_reviewer, areas.yanting, "400")
    assert downloads.write_files().directory.name == "4-b" and not old.exists()
    assert set_bytes(downloads.current()) == set_bytes(downloads.write_files(rebuild=True))
