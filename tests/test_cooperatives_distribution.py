"""The distribution arithmetic (cooperatives.distribution), property-tested
with hypothesis. No database.

Why "more of a share never means less money" holds exactly, fen included.
Take member i and raise one of their holdings, everything else unchanged.

- Transactions: the volume part V is fixed (ceil of the share of the
  surplus), i's quota ``V·v_i/Σv`` rises and every other quota falls. With
  the largest remainder, i's allocation is floor(q_i) or floor(q_i)+1. If
  i's floor rises, i cannot lose. If it stays, i's remainder rose, every
  member whose floor stayed has a remainder no larger than before, and the
  number of fen handed out by remainder grows by exactly the number of fen
  the others lost from their floors — at most that many members can newly
  rank ahead of i, so if i had an extra fen before, it keeps one. Ties go to
  the larger weight, and i's weight rose, so i also wins every tie it won.
- Own capital, land, labour: the same argument on the capital part.
- Loan or subsidy capital of a poor household: its fixed return F_i rises
  by δ fen and the capital part C falls by the same δ. The exact quota
  q'_i = (C−δ)·w'_i/W' satisfies q'_i + δ ≥ q_i (because w'_i/W' ≥ w_i/W and
  δ ≥ 0), so floor(q'_i) + δ ≥ floor(q_i); when they are equal, i's
  remainder did not fall and the fen-counting argument above applies again.

The tests below check all of it on random cooperatives, small enough that
1-fen ties are common.
"""

import random
from dataclasses import replace
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cooperatives import distribution as d
from cooperatives.distribution import DistributionRefused, MemberInput, Rules

EXAMPLES = settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow]
)


def yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(Decimal("0.01"))


def hundredths(n: int) -> Decimal:
    return (Decimal(n) / 100).quantize(Decimal("0.01"))


# Amounts in fen: often tiny (ties, 1-fen remainders), sometimes large.
fen = st.one_of(st.integers(0, 20), st.integers(0, 5_000), st.integers(0, 10_000_000))


@st.composite
def members(draw, min_size=1, max_size=8):
    n = draw(st.integers(min_size, max_size))
    ids = draw(st.lists(st.integers(1, 10_000), min_size=n, max_size=n, unique=True))
    out = []
    for member_id in ids:
        poor = draw(st.booleans())
        out.append(
            MemberInput(
                member_id=member_id,
                poor=poor,
                transactions=yuan(draw(fen)),
                own_capital=yuan(draw(fen)),
                loan_capital=yuan(draw(fen)) if poor else Decimal("0"),
                subsidy_capital=yuan(draw(fen)) if poor else Decimal("0"),
                land_mu=hundredths(draw(st.integers(0, 2_000))),
                labour_days=hundredths(draw(st.integers(0, 20_000))),
            )
        )
    return out


rules = st.builds(
    Rules,
    volume_share_percent=st.integers(6_000, 10_000).map(hundredths),
    loan_fixed_rate_percent=st.integers(0, 1_500).map(hundredths),
    subsidy_fixed_rate_percent=st.integers(0, 1_500).map(hundredths),
    land_value_per_mu=st.integers(0, 500_000).map(yuan),
    labour_value_per_day=st.integers(0, 30_000).map(yuan),
)
surplus = st.one_of(st.integers(0, 100), st.integers(0, 100_000), st.integers(0, 1_000_000_000)).map(yuan)


def compute_or_none(**kwargs):
    try:
        return d.compute(**kwargs)
    except DistributionRefused:
        return None


def totals(result) -> dict[int, int]:
    return {line.member_id: line.total for line in result.lines}


@EXAMPLES
@given(surplus=surplus, rules=rules, members=members())
def test_the_parts_add_up_to_the_surplus_exactly(surplus, rules, members):
    result = compute_or_none(surplus=surplus, rules=rules, members=members)
    assume(result is not None)
    assert sum(line.total for line in result.lines) == result.surplus == d.to_fen(surplus)
    assert result.volume_part + result.fixed_part + result.capital_part == result.surplus
    assert sum(line.volume.fen for line in result.lines) == result.volume_part
    assert sum(line.fixed for line in result.lines) == result.fixed_part
    assert sum(line.capital.fen for line in result.lines) == result.capital_part
    assert all(line.fixed >= 0 and line.volume.fen >= 0 and line.capital.fen >= 0 for line in result.lines)


@EXAMPLES
@given(surplus=surplus, rules=rules, members=members())
def test_no_member_gets_less_than_the_guaranteed_return(surplus, rules, members):
    result = compute_or_none(surplus=surplus, rules=rules, members=members)
    assume(result is not None)
    for m in members:
        line = result.line_for(m.member_id)
        exact = (
            Fraction(d.to_fen(m.loan_capital)) * Fraction(rules.loan_fixed_rate_percent) / 100
            + Fraction(d.to_fen(m.subsidy_capital)) * Fraction(rules.subsidy_fixed_rate_percent) / 100
        )
        guaranteed = int(exact + Fraction(1, 2)) if m.poor else 0  # half up, in fen
        assert line.fixed == guaranteed
        assert line.total >= guaranteed


@EXAMPLES
@given(surplus=surplus, rules=rules, members=members())
def test_the_volume_part_is_never_below_60_percent(surplus, rules, members):
    result = compute_or_none(surplus=surplus, rules=rules, members=members)
    assume(result is not None)
    returned = sum(line.volume.fen for line in result.lines)
    assert 100 * returned >= 60 * result.surplus
    assert Fraction(returned) >= Fraction(rules.volume_share_percent) / 100 * result.surplus


@EXAMPLES
@given(surplus=surplus, rules=rules, members=members())
def test_a_refusal_names_a_real_reason(surplus, rules, members):
    try:
        d.compute(surplus=surplus, rules=rules, members=members)
    except DistributionRefused as error:
        s = d.to_fen(surplus)
        volume = -(-s * int(rules.volume_share_percent * 100) // 10_000)
        if error.code == "fixed_returns_exceed_surplus":
            assert d.to_fen(error.params["fixed"]) > s - volume
        elif error.code == "no_transactions":
            assert volume > 0 and all(m.transactions == 0 for m in members)
        else:
            assert error.code == "no_capital"


HOLDINGS = ["transactions", "own_capital", "loan_capital", "subsidy_capital", "land_mu", "labour_days"]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(
    surplus=surplus,
    rules=rules,
    members=members(),
    which=st.integers(0, 7),
    holding=st.sampled_from(HOLDINGS),
    more=st.one_of(st.integers(1, 10), st.integers(1, 1_000_000)),
)
def test_more_of_a_share_never_means_less_money(surplus, rules, members, which, holding, more):
    m = members[which % len(members)]
    if holding in ("loan_capital", "subsidy_capital") and not m.poor:
        holding = "own_capital"
    step = yuan(more) if holding not in ("land_mu", "labour_days") else hundredths(more)
    bigger = replace(m, **{holding: getattr(m, holding) + step})
    before = compute_or_none(surplus=surplus, rules=rules, members=members)
    after = compute_or_none(surplus=surplus, rules=rules, members=[bigger if x is m else x for x in members])
    assume(before is not None and after is not None)
    assert after.line_for(m.member_id).total >= before.line_for(m.member_id).total


@EXAMPLES
@given(surplus=surplus, rules=rules, members=members(), seed=st.integers(0, 2**32))
def test_the_same_input_gives_the_same_output_in_any_order(surplus, rules, members, seed):
    first = compute_or_none(surplus=surplus, rules=rules, members=members)
    assume(first is not None)
    again = d.compute(surplus=surplus, rules=rules, members=list(members))
    shuffled = list(members)
    random.Random(seed).shuffle(shuffled)
    other_order = d.compute(surplus=surplus, rules=rules, members=shuffled)
    assert again == first
    assert totals(other_order) == totals(first)
    assert {x.member_id: (x.fixed, x.volume, x.capital) for x in other_order.lines} == {
        x.member_id: (x.fixed, x.volume, x.capital) for x in first.lines
    }


# --- Examples that pin the rules down ----------------------------------------------------


def test_the_tie_rule_larger_weight_first_then_lower_member_id():
    # 2 fen over weights 1 and 3: quotas 0.5 and 1.5, equal remainders; the larger weight wins.
    shares = d.largest_remainder(2, {7: 1, 9: 3})
    assert (shares[7].fen, shares[9].fen) == (0, 2)
    # 1 fen over two equal weights: the lower member id wins.
    shares = d.largest_remainder(1, {12: 5, 4: 5})
    assert (shares[4].fen, shares[12].fen) == (1, 0)
    # The largest remainder wins before any tie rule: 10 fen over 1:2:4 is 1.43, 2.86, 5.71.
    shares = d.largest_remainder(10, {1: 1, 2: 2, 3: 4})
    assert [shares[i].fen for i in (1, 2, 3)] == [1, 3, 6]
    assert "larger weight first, then lower member id" in d.TIE_RULE


def test_a_worked_example():
    rules = Rules(
        volume_share_percent=Decimal("60"),
        loan_fixed_rate_percent=Decimal("6"),
        land_value_per_mu=Decimal("2000"),
        labour_value_per_day=Decimal("100"),
    )
    members = [
        MemberInput(member_id=1, poor=True, loan_capital=Decimal("50000")),
        MemberInput(member_id=2, transactions=Decimal("30000"), own_capital=Decimal("40000"), land_mu=Decimal("5")),
        MemberInput(member_id=3, transactions=Decimal("10000"), labour_days=Decimal("100")),
    ]
    result = d.compute(surplus=Decimal("20000.01"), rules=rules, members=members)
    assert result.volume_part == 1_200_001  # ceil(60% of 2,000,001 fen)
    assert result.fixed_part == 300_000  # 6% of 50,000 yuan
    assert result.capital_part == 2_000_001 - 1_200_001 - 300_000
    song, big, small = (result.line_for(i) for i in (1, 2, 3))
    assert song.fixed == 300_000 and song.volume.fen == 0
    assert big.volume.fen + small.volume.fen == 1_200_001
    assert (big.volume.fen, small.volume.fen) == (900_001, 300_000)  # 900,000.75 and 300,000.25
    # Capital weights: 50,000; 40,000 + 5 mu × 2,000 = 50,000; 100 days × 100 = 10,000 (yuan).
    assert [line.basis["capital_weight"] for line in (song, big, small)] == ["50000.00", "50000.00", "10000.00"]
    assert song.capital.fen == big.capital.fen == 227_273 and small.capital.fen == 45_454
    assert sum(line.total for line in result.lines) == 2_000_001


@pytest.mark.parametrize(
    "kwargs, code, field",
    [
        ({"rules": Rules(volume_share_percent=Decimal("59.99"))}, "volume_share_too_low", "volume_share_percent"),
        ({"surplus": Decimal("10.001")}, "not_fen", "surplus"),
        ({"surplus": Decimal("-1")}, "negative_surplus", "surplus"),
        ({"members": [MemberInput(member_id=1, own_capital=Decimal("10"))]}, "no_transactions", "year"),
        (
            {
                "members": [
                    MemberInput(member_id=1, poor=True, transactions=Decimal("1"), loan_capital=Decimal("100000"))
                ],
                "rules": Rules(loan_fixed_rate_percent=Decimal("10")),
            },
            "fixed_returns_exceed_surplus",
            "surplus",
        ),
        ({"members": [MemberInput(member_id=1, transactions=Decimal("5"))]}, "no_capital", "volume_share_percent"),
    ],
)
def test_it_refuses_what_cannot_be_shared(kwargs, code, field):
    args = {
        "surplus": Decimal("1000.00"),
        "rules": Rules(),
        "members": [MemberInput(member_id=1, transactions=Decimal("1"), own_capital=Decimal("1"))],
    }
    args.update(kwargs)
    with pytest.raises(DistributionRefused) as error:
        d.compute(**args)
    assert (error.value.code, error.value.field) == (code, field)


def test_a_surplus_of_nothing_gives_nothing():
    result = d.compute(surplus=Decimal("0"), rules=Rules(), members=[MemberInput(member_id=1)])
    assert result.lines[0].total == 0


def test_inputs_round_trip_through_json():
    m = MemberInput(member_id=3, poor=True, transactions=Decimal("1.25"), land_mu=Decimal("2.50"))
    assert MemberInput.from_json(m.to_json()) == m
    r = Rules(volume_share_percent=Decimal("72.5"), land_value_per_mu=Decimal("800"))
    assert Rules.from_json(r.to_json()) == r
