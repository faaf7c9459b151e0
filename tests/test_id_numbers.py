"""Resident ID numbers checked as GB 11643 defines them (sun_commune.ids),
against python-stdnum's ``cn.ric`` on a large generated set."""

import datetime
import random
import sys
import unicodedata
from pathlib import Path

import pytest
import stdnum
from django.utils import translation
from stdnum.cn import ric

from sun_commune import ids

TODAY = datetime.date(2026, 12, 4)
RNG = random.Random(11643)
ASCII = "0123456789"
# Every decimal digit of every script but ASCII's (Arabic-Indic, Devanagari,
# full-width, mathematical bold …), as the script's 0 to 9.
FOREIGN_DIGITS = [c for c in map(chr, range(sys.maxunicode + 1)) if unicodedata.category(c) == "Nd" and c not in ASCII]
FULL_WIDTH = {chr(0xFF10 + d): str(d) for d in range(10)}
# Characters that pass str.isdigit() without being decimal digits: int() refuses them.
OTHER_DIGITS = [c for c in map(chr, range(sys.maxunicode + 1)) if c.isdigit() and unicodedata.category(c) != "Nd"]


def counties() -> list[tuple[str, int, int]]:
    """(code, first year, last year) of every county in stdnum's table."""
    found, province = [], None
    for line in (Path(stdnum.__file__).parent / "cn" / "loc.dat").read_text(encoding="utf-8").splitlines():
        if not line or line.startswith("#"):
            continue
        if not line.startswith(" "):
            province = line.split()[0]
            continue
        part, rest = line.split(maxsplit=1)
        for name in rest.split("=", 1)[1].strip('"').split(","):
            start, end = 1900, TODAY.year
            if name.startswith("["):
                first, last = name[1:].split("]")[0].split("-")
                start, end = max(int(first or 1900), 1900), min(int(last or TODAY.year), TODAY.year)
            if start <= end:
                found.append((province + part, start, end))
    return found


def stdnum_valid(n: str) -> bool:
    try:
        return ric.is_valid(n)
    except KeyError:  # a known province, an unknown county: stdnum's own slip
        return False


def number(region: str, born: datetime.date | str, sequence: int = 1) -> str:
    birth = born if isinstance(born, str) else f"{born:%Y%m%d}"
    first17 = f"{region}{birth}{sequence:03d}"
    return first17 + ric.calc_check_digit(first17 + "0")


def random_date(start: int, end: int) -> datetime.date:
    low, high = datetime.date(start, 1, 1), min(datetime.date(end, 12, 31), TODAY)
    return low + datetime.timedelta(days=RNG.randrange((high - low).days + 1))


COUNTIES = counties()
VALID = [number(code, random_date(start, end), RNG.randrange(1000)) for code, start, end in COUNTIES]


def test_the_generated_set_is_large_and_stdnum_accepts_it():
    assert len(VALID) > 5000
    assert all(ric.is_valid(n) for n in VALID)


def test_every_number_stdnum_accepts_from_1900_to_today_is_accepted():
    for n in VALID:
        assert ids.validate(n, today=TODAY) == n
        assert ids.validate(n.lower(), today=TODAY) == n


def test_a_number_is_accepted_only_where_stdnum_knows_its_parts():
    """Random numbers with a right check digit: whatever we accept has a date
    and a region stdnum knows and the check digit stdnum computes."""
    codes = [c for c, _s, _e in COUNTIES]
    latest_start = {}
    for code, start, _end in COUNTIES:
        latest_start[code] = max(start, latest_start.get(code, start))
    accepted = 0
    for _ in range(20000):
        region = RNG.choice(codes) if RNG.random() < 0.7 else f"{RNG.randrange(10**6):06d}"
        birth = f"{RNG.randrange(1890, 2030)}{RNG.randrange(0, 14):02d}{RNG.randrange(0, 33):02d}"
        n = number(region, birth, RNG.randrange(1000))
        if ids.problem(n, today=TODAY) is None:
            accepted += 1
            assert ric.calc_check_digit(n) == n[-1]
            born = ric.get_birth_date(n)
            assert 1900 <= born.year and born <= TODAY
            assert ids.region_known(n[:6], born.year)
            stdnum_ok = stdnum_valid(n)  # stdnum also wants the code in use in the year of birth
            assert stdnum_ok or latest_start[n[:6]] > born.year
        elif stdnum_valid(n):
            born = ric.get_birth_date(n)
            assert born.year < 1900 or born > TODAY, n[:6]
    assert accepted > 1000


def test_a_code_made_after_the_birth_is_kept_by_those_registered_under_it():
    """Yanting's 510723 dates from 1985; its people born before keep it."""
    n = number("510723", "19520126")
    assert not stdnum_valid(n)  # stdnum wants the code of the year of birth
    assert ids.problem(n, today=TODAY) is None
    retired = number("110103", "20150101")  # Chongwen district, merged in 2010
    assert ids.problem(retired, today=TODAY).code == "region"


def test_each_corrupted_digit_is_refused():
    for n in VALID[:3000]:
        position = RNG.randrange(18)
        wrong = RNG.choice([d for d in ASCII + "X" if d != n[position] and (position == 17 or d != "X")])
        corrupted = n[:position] + wrong + n[position + 1 :]
        assert not stdnum_valid(corrupted)
        assert ids.problem(corrupted, today=TODAY) is not None


def test_every_look_alike_digit_is_refused_and_hashes_as_its_ascii_digit(settings):
    assert len(FOREIGN_DIGITS) > 600  # every script's digits, not a hand-kept list
    n = VALID[0]
    for char in FOREIGN_DIGITS:
        value = unicodedata.decimal(char)
        positions = [i for i, d in enumerate(n) if d == str(value)]
        if not positions:
            continue
        position = positions[0]
        look_alike = n[:position] + char + n[position + 1 :]
        if char in FULL_WIDTH:
            assert ids.validate(look_alike, today=TODAY) == n
        else:
            found = ids.problem(look_alike, today=TODAY)
            assert (found.code, found.position) == ("foreign_digit", position + 1), hex(ord(char))
        assert ids.id_hash(look_alike) == ids.id_hash(n), hex(ord(char))


def test_a_whole_number_in_another_script_is_refused():
    n = VALID[1]
    zeros = {c for c in FOREIGN_DIGITS if unicodedata.decimal(c) == 0}
    assert len(zeros) > 60
    for zero in zeros:
        look_alike = "".join(chr(ord(zero) + int(d)) if d != "X" else d for d in n)
        assert [unicodedata.decimal(c) for c in look_alike[:17]] == [int(d) for d in n[:17]]
        if zero == "０":
            assert ids.validate(look_alike, today=TODAY) == n
        else:
            assert ids.problem(look_alike, today=TODAY).code == "foreign_digit"
        assert ids.id_hash(look_alike) == ids.id_hash(n)


def test_digits_that_are_not_decimal_are_refused():
    n = VALID[2]
    assert len(OTHER_DIGITS) > 100  # superscripts, circled digits, Kharosthi …
    for char in OTHER_DIGITS:
        found = ids.problem(n[:5] + char + n[6:], today=TODAY)
        assert (found.code, found.position) == ("foreign_digit", 6), hex(ord(char))


@pytest.mark.parametrize(
    "inserted", ["\u200b", "\ufeff", "\u202e", "\u0301", " ", "-", "x", "Ｘ", "\u3000", "\x00", "\ud800", "١"]
)
def test_any_other_character_inside_is_refused(inserted):
    n = VALID[3]
    found = ids.problem(n[:9] + inserted + n[9:], today=TODAY)
    assert found is not None and found.code in {"characters", "foreign_digit"}
    assert found.position == 10


def test_full_width_input_is_the_ascii_number():
    n = VALID[4][:17] + "X"
    full = "".join(chr(0xFF10 + int(d)) for d in n[:17]) + "ｘ"
    assert ids.canonical("\u3000" + full + " ") == n
    assert ids.id_hash(full) == ids.id_hash(n) == ids.id_hash(n.lower())


def impossible_dates() -> list[str]:
    dates = []
    for year in range(1900, TODAY.year + 1):
        dates += [f"{year}0231", f"{year}0230", f"{year}1301", f"{year}0001", f"{year}0100", f"{year}0432"]
        dates += [f"{year}{month:02d}31" for month in (4, 6, 9, 11)]
        leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
        if not leap:
            dates.append(f"{year}0229")
    return dates


def test_every_impossible_date_is_refused():
    dates = impossible_dates()
    assert "19000229" in dates and "20230229" in dates and "20000229" not in dates
    for birth in dates:
        n = number("510723", birth)
        assert not stdnum_valid(n)
        assert ids.problem(n, today=TODAY).code == "date", birth
    assert ids.problem(number("510723", "20000229"), today=TODAY) is None
    assert ids.problem(number("510723", "20240229"), today=TODAY) is None


def test_a_birth_date_in_the_future_or_before_1900_is_refused():
    assert ids.problem(number("510723", TODAY), today=TODAY) is None
    assert ids.problem(number("510723", TODAY + datetime.timedelta(days=1)), today=TODAY).code == "future"
    assert ids.problem(number("510723", "99991231"), today=TODAY).code == "future"
    assert ids.problem(number("110105", "18991231"), today=TODAY).code == "early"
    assert ids.problem(number("110105", "19000101"), today=TODAY) is None


def test_an_unknown_region_is_refused_even_where_stdnum_raises_key_error():
    n = number("119999", "19700101")  # Beijing is known; county 9999 is not
    with pytest.raises(KeyError):
        ric.get_birth_place(n)
    assert ids.problem(n, today=TODAY).code == "region"
    for region in ("000000", "999999", "990101", "710000"[:2] + "9999"):
        assert ids.problem(number(region, "19700101"), today=TODAY).code == "region"


def test_the_length_and_the_check_digit():
    n = VALID[5]
    assert ids.problem(n[:17], today=TODAY).code == "length"
    assert ids.problem(n + "1", today=TODAY).code == "length"
    assert ids.problem("", today=TODAY).code == "length"
    wrong = n[:17] + ("0" if n[17] != "0" else "1")
    assert ids.problem(wrong, today=TODAY).code == "check"
    assert ids.validate("11010519491231002x", today=TODAY) == "11010519491231002X"  # the standard's example


def test_each_problem_has_a_translated_message_that_never_holds_the_number():
    n = VALID[6]
    cases = {
        "length": n[:17],
        "foreign_digit": n[:3] + "٣" + n[4:],
        "characters": n[:3] + "a" + n[4:],
        "date": number("510723", "19700230"),
        "early": number("110105", "18991231"),
        "future": number("510723", "29991231"),
        "region": number("999999", "19700101"),
        "check": n[:17] + ("0" if n[17] != "0" else "1"),
    }
    assert set(cases) == set(ids.MESSAGES)
    for code, value in cases.items():
        with translation.override("en"):
            english = ids.problem(value, today=TODAY).message
        with translation.override("zh-hans"):
            chinese = ids.problem(value, today=TODAY).message
        assert ids.problem(value, today=TODAY).code == code
        assert english != chinese, code
        for text in (english, chinese):
            assert value[:6] not in text and value[6:14] not in text


def test_a_lone_surrogate_is_refused_and_hashes_without_an_error():
    n = VALID[7]
    assert ids.problem(n[:17] + "\ud800", today=TODAY).code == "characters"
    assert ids.id_hash(n[:17] + "\ud800") != ids.id_hash(n)


def test_validate_raises_the_problem():
    with pytest.raises(ids.IdProblem) as error:
        ids.validate(number("510723", "19700230"), today=TODAY)
    assert error.value.code == "date"
