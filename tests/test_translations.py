"""The Simplified Chinese catalog is complete, compiled, and up to date.

Chinese is the site's default language, so a string that is marked for
translation but missing from locale/zh_Hans shows up in English to most
users. These tests need no database. The .po file is read with a small
parser of our own (standard library only); the project has no polib.

To update the catalog after changing strings (see the Makefile's messages
target):

    DEBUG=1 .venv/bin/python manage.py makemessages -l zh_Hans --ignore=.venv \
        --ignore=node_modules --ignore=staticfiles --ignore=tests --no-obsolete
    # translate every new or fuzzy entry in locale/zh_Hans/LC_MESSAGES/django.po
    DEBUG=1 .venv/bin/python manage.py compilemessages -l zh_Hans --ignore=.venv
"""

import gettext
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

BASE_DIR = Path(__file__).resolve().parent.parent
LC_MESSAGES = BASE_DIR / "locale" / "zh_Hans" / "LC_MESSAGES"
PO_FILE = LC_MESSAGES / "django.po"
MO_FILE = LC_MESSAGES / "django.mo"

# The same command as the Makefile's, minus the locale.
MAKEMESSAGES_ARGS = [
    "makemessages",
    "-l",
    "zh_Hans",
    "--ignore=.venv",
    "--ignore=node_modules",
    "--ignore=staticfiles",
    "--ignore=tests",
    "--no-obsolete",
]
# makemessages (domain "django") reads only these; copying just them keeps
# the temporary copy of the project small and fast.
SOURCE_SUFFIXES = {".py", ".html", ".txt"}
SKIPPED_DIRS = {".venv", "node_modules", "staticfiles", "tests", "locale", ".git", "media", "__pycache__"}

PLACEHOLDER = re.compile(r"%\([^)]+\)[sdif]|%[sdif]|\{[^{}]*\}")


# --- A small .po reader -------------------------------------------------------


@dataclass
class Entry:
    msgctxt: str | None = None
    msgid: str = ""
    msgid_plural: str | None = None
    msgstr: dict[int, str] = field(default_factory=dict)
    flags: set[str] = field(default_factory=set)
    line: int = 0

    @property
    def key(self) -> str:
        """The key gettext uses in a compiled catalog."""
        return f"{self.msgctxt}\x04{self.msgid}" if self.msgctxt is not None else self.msgid

    @property
    def label(self) -> str:
        return f"{PO_FILE.name}:{self.line} {self.msgid!r}"


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", '"': '"', "\\": "\\", "a": "\a", "b": "\b", "f": "\f", "v": "\v"}


def _unquote(text: str) -> str:
    text = text.strip()
    if not (len(text) >= 2 and text[0] == text[-1] == '"'):
        raise ValueError(f"not a quoted PO string: {text!r}")
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), text[1:-1])


def read_po(path: Path) -> list[Entry]:
    """Entries of a .po file, header included (msgid ""), obsolete (#~) ones left out."""
    entries: list[Entry] = []
    entry: Entry | None = None
    target: tuple[str, int | None] | None = None  # which field a continuation line extends
    seen_msgstr = False

    def finish():
        nonlocal entry, target, seen_msgstr
        if entry is not None and (seen_msgstr or entry.msgid):
            entries.append(entry)
        entry, target, seen_msgstr = None, None, False

    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = raw.strip()
        if not line:
            finish()
            continue
        if line.startswith("#~"):
            continue
        if line.startswith("#"):
            if seen_msgstr:
                finish()
            if entry is None:
                entry = Entry(line=number)
            if line.startswith("#,"):
                entry.flags.update(flag.strip() for flag in line[2:].split(",") if flag.strip())
            continue
        keyword, _, rest = line.partition(" ")
        if line.startswith('"'):
            if target is None or entry is None:
                raise ValueError(f"{path}:{number}: continuation line outside an entry")
            name, index = target
            if name == "msgstr":
                entry.msgstr[index] += _unquote(line)
            else:
                setattr(entry, name, (getattr(entry, name) or "") + _unquote(line))
            continue
        if keyword in ("msgctxt", "msgid") and seen_msgstr:
            finish()
        if entry is None:
            entry = Entry(line=number)
        if keyword in ("msgctxt", "msgid", "msgid_plural"):
            setattr(entry, keyword, _unquote(rest))
            if keyword == "msgid":
                entry.line = number
            target = (keyword, None)
        elif keyword == "msgstr":
            entry.msgstr[0] = _unquote(rest)
            target, seen_msgstr = ("msgstr", 0), True
        elif keyword.startswith("msgstr[") and keyword.endswith("]"):
            index = int(keyword[len("msgstr[") : -1])
            entry.msgstr[index] = _unquote(rest)
            target, seen_msgstr = ("msgstr", index), True
        else:
            raise ValueError(f"{path}:{number}: unexpected line {raw!r}")
    finish()
    return entries


def _header(entries: list[Entry]) -> dict[str, str]:
    header = next(e for e in entries if e.msgid == "" and e.msgctxt is None)
    fields = {}
    for row in header.msgstr[0].splitlines():
        name, sep, value = row.partition(":")
        if sep:
            fields[name.strip()] = value.strip()
    return fields


@pytest.fixture(scope="module")
def entries() -> list[Entry]:
    assert PO_FILE.exists(), f"{PO_FILE} is missing; run makemessages (see this module's docstring)"
    return read_po(PO_FILE)


@pytest.fixture(scope="module")
def messages(entries) -> list[Entry]:
    return [e for e in entries if not (e.msgid == "" and e.msgctxt is None)]


# --- (a) Every entry is translated --------------------------------------------


def test_parser_reads_the_catalog(messages):
    assert len(messages) > 100
    assert any(e.msgid == "Needs supermarket" for e in messages)


def test_header_is_simplified_chinese_without_plurals(entries):
    header = _header(entries)
    assert header.get("Language") == "zh_Hans"
    assert "charset=UTF-8" in header.get("Content-Type", "")
    assert header.get("Plural-Forms", "").replace(" ", "") == "nplurals=1;plural=0;"
    assert "fuzzy" not in next(e for e in entries if e.msgid == "").flags


def test_every_entry_is_translated(messages):
    untranslated = [e.label for e in messages if not e.msgstr or not all(e.msgstr.values())]
    assert not untranslated, "untranslated entries:\n" + "\n".join(untranslated)


def test_no_entry_is_fuzzy(messages):
    fuzzy = [e.label for e in messages if "fuzzy" in e.flags]
    assert not fuzzy, "fuzzy entries (check the translation, then remove the flag):\n" + "\n".join(fuzzy)


def test_plural_entries_have_exactly_one_form(messages):
    wrong = [e.label for e in messages if e.msgid_plural is not None and sorted(e.msgstr) != [0]]
    assert not wrong, "with nplurals=1 a plural entry has only msgstr[0]:\n" + "\n".join(wrong)


def test_translations_keep_their_placeholders(messages):
    wrong = []
    for e in messages:
        expected = set(PLACEHOLDER.findall(e.msgid)) | set(PLACEHOLDER.findall(e.msgid_plural or ""))
        for text in e.msgstr.values():
            if set(PLACEHOLDER.findall(text)) != expected:
                wrong.append(f"{e.label} -> {text!r}")
    assert not wrong, "placeholders differ:\n" + "\n".join(wrong)


# --- (b) The committed .mo is compiled from the committed .po ------------------


def _mo_catalog(path: Path) -> dict:
    with path.open("rb") as fp:
        return dict(gettext.GNUTranslations(fp)._catalog)


def test_mo_file_holds_the_po_translations(messages):
    """Needs no gettext tools: the .mo's catalog is exactly the .po's entries."""
    assert MO_FILE.exists(), f"{MO_FILE} is missing; run compilemessages"
    catalog = _mo_catalog(MO_FILE)
    catalog.pop("", None)
    expected = {}
    # msgfmt leaves out untranslated and fuzzy entries (the tests above report those).
    for e in messages:
        if "fuzzy" in e.flags or not e.msgstr or not all(e.msgstr.values()):
            continue
        if e.msgid_plural is None:
            expected[e.key] = e.msgstr[0]
        else:
            for index, text in e.msgstr.items():
                expected[(e.key, index)] = text
    stale = sorted(str(k) for k in expected.keys() | catalog.keys() if expected.get(k) != catalog.get(k))
    assert not stale, "django.mo is out of date; run compilemessages. Differs for:\n" + "\n".join(stale)


@pytest.mark.skipif(shutil.which("msgfmt") is None, reason="msgfmt (gettext) is not installed")
def test_mo_file_matches_a_fresh_msgfmt_compile(tmp_path):
    fresh = tmp_path / "django.mo"
    result = subprocess.run(
        ["msgfmt", "--check-format", "-o", str(fresh), str(PO_FILE)], capture_output=True, text=True
    )
    assert result.returncode == 0, f"msgfmt refuses django.po:\n{result.stderr}"
    assert _mo_catalog(MO_FILE) == _mo_catalog(fresh), "django.mo is out of date; run compilemessages"


# --- (c) The catalog holds every string the code marks, and no others ----------


def _copy_sources(destination: Path) -> None:
    """Copy what makemessages reads (Python files and templates) into ``destination``."""
    for root, dirs, files in os.walk(BASE_DIR):
        dirs[:] = [d for d in dirs if d not in SKIPPED_DIRS and not d.startswith(".")]
        target = destination / Path(root).relative_to(BASE_DIR)
        for name in files:
            if Path(name).suffix in SOURCE_SUFFIXES:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(Path(root) / name, target / name)


@pytest.mark.skipif(
    shutil.which("xgettext") is None or shutil.which("msgmerge") is None,
    reason="xgettext/msgmerge (gettext) are not installed",
)
def test_catalog_matches_the_strings_in_the_code(tmp_path, messages):
    """Runs makemessages on a temporary copy of the project (about a second)
    and compares its msgids with the committed catalog's."""
    copy = tmp_path / "project"
    _copy_sources(copy)
    (copy / "locale").mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "DJANGO_SETTINGS_MODULE")}
    env.update(DEBUG="1", DJANGO_SETTINGS_MODULE="sun_commune.settings")
    result = subprocess.run(
        [sys.executable, "manage.py", *MAKEMESSAGES_ARGS],
        cwd=copy,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    fresh_po = copy / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    in_code = {e.key for e in read_po(fresh_po) if e.msgid}
    in_catalog = {e.key for e in messages}
    missing = sorted(in_code - in_catalog)
    unused = sorted(in_catalog - in_code)
    problems = []
    if missing:
        problems.append("marked in the code but not in django.po (run makemessages, translate):")
        problems += [f"  {k!r}" for k in missing]
    if unused:
        problems.append("in django.po but no longer in the code (run makemessages --no-obsolete):")
        problems += [f"  {k!r}" for k in unused]
    assert not problems, "\n".join(problems)
