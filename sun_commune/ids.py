"""Resident ID numbers (居民身份证号码, GB 11643-1999): the one check that the
register's form and import, the volunteers and every later use share, and
the keyed hash that finds a number without keeping it in clear.

A number is accepted only as ASCII ``[0-9]{17}[0-9X]`` with a real date of
birth from 1900 to today, a region code python-stdnum's ``cn.ric`` knows for
a person born that year may hold (historical codes included: a person keeps
the code of the county that first registered them; see ``region_known``) and
the right check digit.

Full-width digits and X (typed with a Chinese input method) are the same
characters a resident reads on their card, so they are turned into ASCII.
Digits of other scripts (Arabic-Indic ٠–٩, Devanagari, mathematical bold …)
are refused, not converted: no ID card prints them, so one of them means the
text came from somewhere we cannot vouch for, and a number that looks like
another must never pass as a second person. The keyed hash still folds every
decimal digit to ASCII, so that a look-alike form written before these rules
and the real number are seen as the one number they are.
"""

import datetime
import hashlib
import hmac
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from django.conf import settings
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _
from stdnum import exceptions as stdnum_errors
from stdnum import numdb
from stdnum.cn import ric

LENGTH = 18
EARLIEST_YEAR = 1900
SHAPE = re.compile(r"[0-9]{17}[0-9X]")
# Full-width 0–9, X and x, and ASCII x: nothing else is translated.
_FULL_WIDTH = {0xFF10 + d: str(d) for d in range(10)} | {0xFF38: "X", 0xFF58: "X", ord("x"): "X"}

MESSAGES = {
    "length": _("An ID number has 18 characters: 17 digits and a digit or X."),
    "foreign_digit": _(
        "Character %(position)s is a digit of another script, not one of 0–9: type the number with the digits 0–9."
    ),
    "characters": _(
        "Character %(position)s is not allowed: an ID number holds only the digits 0–9, and X as its last character."
    ),
    "date": _(
        "Characters 7 to 14 of an ID number are the date of birth (year, month, day): these are not a real date."
    ),
    "early": _("The date of birth in this ID number (characters 7 to 14) is before 1900."),
    "future": _("The date of birth in this ID number (characters 7 to 14) is in the future."),
    "region": _(
        "The first 6 digits of this ID number are not a known region code (for the year of birth); please check them."
    ),
    "check": _("The check digit of this ID number is wrong; please check each digit."),
}


@dataclass(eq=False)
class IdProblem(Exception):
    """Why a number is refused: ``code`` is one of ``MESSAGES``; the message
    never repeats the number or any part of it."""

    code: str
    position: int | None = None

    @property
    def message(self) -> str:
        text: Promise = MESSAGES[self.code]
        return str(text) % {"position": self.position} if self.position else str(text)

    def __str__(self):
        return self.message


def canonical(value: str) -> str:
    """Surrounding spaces removed, full-width digits and X made ASCII, x made
    X; nothing else changed (so a refused character stays visible)."""
    return (value or "").strip().translate(_FULL_WIDTH)


def problem(value: str, *, today: datetime.date | None = None) -> IdProblem | None:
    """The first thing wrong with ``value`` (canonicalised), or None."""
    number = canonical(value)
    for position, char in enumerate(number, start=1):
        if "0" <= char <= "9" or (char == "X" and position == LENGTH):
            continue
        if unicodedata.category(char) == "Nd" or char.isdigit():
            return IdProblem("foreign_digit", position)
        return IdProblem("characters", position)
    if len(number) != LENGTH or not SHAPE.fullmatch(number):
        return IdProblem("length")
    try:
        born = ric.get_birth_date(number)
    except stdnum_errors.ValidationError:
        return IdProblem("date")
    if born.year < EARLIEST_YEAR:
        return IdProblem("early")
    if born > (today or timezone.localdate()):
        return IdProblem("future")
    if not region_known(number[:6], born.year):
        return IdProblem("region")
    if ric.calc_check_digit(number) != number[-1]:
        return IdProblem("check")
    return None


def region_known(code: str, born: int) -> bool:
    """Whether ``code`` is a county python-stdnum's table (``cn/loc``) knows,
    in use at some time from the year of birth on.

    ``ric.get_birth_place`` wants the code in use in the year of birth; but
    a number is given when a person is first registered — the whole
    population in 1984–85, children since — with the code of that day: a
    woman born in 1952 in Yanting has 510723, a code made in 1985. So a code
    counts when it had not been retired before the person was born.
    """
    county = _county(code)
    if county is None:
        return False
    for name in county.split(","):
        if not name.startswith("["):
            return True
        _start, end = name[1:].split("]")[0].split("-")
        if not end or int(end) >= born:
            return True
    return False


@lru_cache(maxsize=16384)
def _county(code: str) -> str | None:
    """The table's county entry for ``code`` (its names, each with the years
    it was in use), or None. Kept: the table is searched line by line."""
    found = numdb.get("cn/loc").info(code)
    # A known province whose table lacks this county has no "county" (where
    # get_birth_place raises KeyError rather than InvalidComponent).
    return {k: v for _part, props in found for k, v in props.items()}.get("county")


def is_valid(value: str) -> bool:
    return problem(value) is None


def validate(value: str, *, today: datetime.date | None = None) -> str:
    """The canonical form of a valid number; raises ``IdProblem`` otherwise."""
    found = problem(value, today=today)
    if found is not None:
        raise found
    return canonical(value)


def _folded(value: str) -> str:
    """The canonical form with every decimal digit of any script as ASCII:
    what the keyed hash is computed on."""
    return "".join(str(unicodedata.decimal(c)) if unicodedata.category(c) == "Nd" else c for c in canonical(value))


def id_hash(value: str) -> str | None:
    """The keyed hash (``ID_HASH_KEY``) that finds a number exactly; look-alike
    forms of one number have the same hash."""
    value = _folded(value)
    if not value:
        return None
    return hmac.new(settings.ID_HASH_KEY.encode(), value.encode("utf-8", "surrogatepass"), hashlib.sha256).hexdigest()
