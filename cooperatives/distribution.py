"""The year's distribution of a cooperative's distributable surplus: pure
arithmetic, no database.

The surplus is shared in three parts, in this order:

1. **By transaction volume** (the "second rebate"): ``ceil(volume share ×
   surplus)`` fen, shared over the members' transactions with the cooperative
   in the year (the yuan it paid them for their deliveries). China's Law on
   Farmers' Professional Cooperatives requires at least 60% of the
   distributable surplus to be returned this way, so rules below 60% are
   refused, and rounding up keeps the part at or above the share.
2. **Fixed returns** guaranteed to poor households: ``loan rate × loan
   capital + subsidy rate × subsidy capital`` for each poor-household member,
   rounded half up to the fen. They come out of what the volume part leaves;
   a surplus too small to pay them is refused, never shared short.
3. **By capital**: what is left, shared over each member's capital weight =
   own money + loan capital + subsidy capital (yuan) + land (mu × the rules'
   value per mu) + labour (days × the rules' value per day).

Every part is shared to the fen with the largest-remainder method on exact
integer quotas: each member first gets the whole fen of ``part × weight /
total weight``; the fen left over go one each to the largest remainders.
**Tie rule:** of equal remainders, the larger weight comes first, then the
lower member id. So the parts add up to the surplus exactly, and the same
input always gives the same output, in whatever order the members come.

More of a share never means less money for its holder: raising one member's
volume, capital, land or labour (everything else unchanged) never lowers
their total. The exact quota of the part it feeds rises while every other
member's falls, and with the tie rule above a member whose quota rises never
loses a rounded-up fen to one whose quota fell (the proof is in the tests'
module docstring; hypothesis checks it). Loan and subsidy capital also raise
the holder's fixed return, which shrinks the capital part for everyone; the
holder gains on the fixed return at least what their capital quota loses.

Amounts come in as ``Decimal`` yuan (two places at most), land and labour as
``Decimal`` mu and days, rates as ``Decimal`` percentages; everything is
computed in integer fen (weights in hundredths of a fen, so that 0.01 mu ×
a value per mu stays a whole number).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction

ALGORITHM = "largest-remainder/v1"
MINIMUM_VOLUME_SHARE = Decimal("60")  # percent, the law's floor
TIE_RULE = "equal remainders: larger weight first, then lower member id"

FEN = Decimal("0.01")


class DistributionRefused(Exception):
    """The inputs cannot be shared under the rules. ``code`` says why (the
    service turns it into a translated message), ``field`` which input to fix,
    ``params`` the figures for the message."""

    def __init__(self, code: str, *, field: str | None = None, **params):
        super().__init__(code)
        self.code = code
        self.field = field
        self.params = params


@dataclass(frozen=True)
class Rules:
    """A cooperative's distribution rules, as percentages and yuan."""

    volume_share_percent: Decimal = Decimal("60")
    loan_fixed_rate_percent: Decimal = Decimal("0")
    subsidy_fixed_rate_percent: Decimal = Decimal("0")
    land_value_per_mu: Decimal = Decimal("0")  # yuan of capital per mu put in
    labour_value_per_day: Decimal = Decimal("0")  # yuan of capital per day of labour

    def to_json(self) -> dict:
        return {k: str(v) for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> Rules:
        return cls(**{k: Decimal(v) for k, v in data.items()})


@dataclass(frozen=True)
class MemberInput:
    """One member's year: what they hold at the year's end and what they
    traded with the cooperative during it."""

    member_id: int
    poor: bool = False  # a registered poor household: fixed returns apply
    transactions: Decimal = Decimal("0")  # yuan the cooperative paid for the member's deliveries
    own_capital: Decimal = Decimal("0")
    loan_capital: Decimal = Decimal("0")
    subsidy_capital: Decimal = Decimal("0")
    land_mu: Decimal = Decimal("0")
    labour_days: Decimal = Decimal("0")

    def to_json(self) -> dict:
        return {k: (v if isinstance(v, (bool, int)) else str(v)) for k, v in vars(self).items()}

    @classmethod
    def from_json(cls, data: dict) -> MemberInput:
        return cls(
            member_id=int(data["member_id"]),
            poor=bool(data["poor"]),
            **{k: Decimal(v) for k, v in data.items() if k not in ("member_id", "poor")},
        )


@dataclass(frozen=True)
class Share:
    """One member's share of one part: the exact quota and the fen it became."""

    weight: int
    quota: Fraction
    fen: int

    @property
    def extra_fen(self) -> int:
        """1 if the largest remainder gave this member a fen above the floor."""
        return self.fen - self.quota.numerator // self.quota.denominator


@dataclass(frozen=True)
class Line:
    member_id: int
    fixed: int  # fen
    volume: Share
    capital: Share
    basis: dict = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.fixed + self.volume.fen + self.capital.fen

    def yuan(self, name: str) -> Decimal:
        fen = {"fixed": self.fixed, "volume": self.volume.fen, "capital": self.capital.fen, "total": self.total}[name]
        return fen_to_yuan(fen)


@dataclass(frozen=True)
class Result:
    surplus: int  # fen
    volume_part: int
    fixed_part: int
    capital_part: int
    volume_weight_total: int  # fen of transactions
    capital_weight_total: int  # hundredths of a fen
    lines: list[Line]

    def line_for(self, member_id: int) -> Line:
        return next(line for line in self.lines if line.member_id == member_id)


# --- Integer helpers ----------------------------------------------------------


def to_fen(amount: Decimal, *, field: str = "surplus") -> int:
    """Yuan → fen, exactly; more than two places is refused, not rounded."""
    value = Decimal(amount)
    fen = value * 100
    if fen != fen.to_integral_value():
        raise DistributionRefused("not_fen", field=field, amount=str(value))
    return int(fen)


def fen_to_yuan(fen: int) -> Decimal:
    return (Decimal(fen) / 100).quantize(FEN)


def _hundredths(value: Decimal, *, field: str) -> int:
    """A quantity with at most two places (mu, days, percent) × 100, exactly."""
    scaled = Decimal(value) * 100
    if scaled != scaled.to_integral_value():
        raise DistributionRefused("too_precise", field=field, value=str(value))
    return int(scaled)


def _round_half_up(value: Fraction) -> int:
    """A non-negative fraction to the nearest integer, halves up."""
    return (2 * value.numerator + value.denominator) // (2 * value.denominator)


def largest_remainder(total: int, weights: dict[int, int]) -> dict[int, Share]:
    """Share ``total`` fen over ``weights`` (member id → non-negative integer
    weight) to the fen; the shares add up to ``total`` exactly.

    Each member's quota is ``total × weight / sum of weights``; they get its
    floor, and the fen left over go one each in order of the largest
    remainder, ties broken by the larger weight, then the lower member id.
    """
    weight_sum = sum(weights.values())
    if total == 0 or weight_sum == 0:
        if total:
            raise ValueError("cannot share a positive total over zero weight")
        return {mid: Share(weight=w, quota=Fraction(0), fen=0) for mid, w in weights.items()}
    floors: dict[int, int] = {}
    remainders: list[tuple[int, int, int]] = []
    for mid, w in weights.items():
        q, r = divmod(total * w, weight_sum)
        floors[mid] = q
        if r:
            remainders.append((-r, -w, mid))
    left = total - sum(floors.values())
    remainders.sort()
    for _r, _w, mid in remainders[:left]:
        floors[mid] += 1
    return {mid: Share(weight=w, quota=Fraction(total * w, weight_sum), fen=floors[mid]) for mid, w in weights.items()}


# --- The distribution -----------------------------------------------------------


def compute(*, surplus: Decimal, rules: Rules, members: list[MemberInput]) -> Result:
    """Share ``surplus`` (yuan) over ``members`` under ``rules``. Raises
    :class:`DistributionRefused` when it cannot be done as the rules say."""
    surplus_fen = to_fen(surplus, field="surplus")
    if surplus_fen < 0:
        raise DistributionRefused("negative_surplus", field="surplus")
    share = _hundredths(rules.volume_share_percent, field="volume_share_percent")  # in 1/10,000
    if share < _hundredths(MINIMUM_VOLUME_SHARE, field="volume_share_percent"):
        raise DistributionRefused("volume_share_too_low", field="volume_share_percent")
    if share > 10_000:
        raise DistributionRefused("volume_share_too_high", field="volume_share_percent")
    loan_rate = _hundredths(rules.loan_fixed_rate_percent, field="loan_fixed_rate_percent")
    subsidy_rate = _hundredths(rules.subsidy_fixed_rate_percent, field="subsidy_fixed_rate_percent")
    land_value = to_fen(rules.land_value_per_mu, field="land_value_per_mu")
    labour_value = to_fen(rules.labour_value_per_day, field="labour_value_per_day")
    if min(loan_rate, subsidy_rate, land_value, labour_value) < 0:
        raise DistributionRefused("negative_rule", field="loan_fixed_rate_percent")

    seen: set[int] = set()
    volume_weights: dict[int, int] = {}
    capital_weights: dict[int, int] = {}
    fixed: dict[int, int] = {}
    parts: dict[int, dict] = {}
    for m in members:
        if m.member_id in seen:
            raise DistributionRefused("duplicate_member", member=m.member_id)
        seen.add(m.member_id)
        volume = to_fen(m.transactions, field="transactions")
        own = to_fen(m.own_capital, field="own_capital")
        loan = to_fen(m.loan_capital, field="loan_capital")
        subsidy = to_fen(m.subsidy_capital, field="subsidy_capital")
        land = _hundredths(m.land_mu, field="land_mu")
        labour = _hundredths(m.labour_days, field="labour_days")
        if min(volume, own, loan, subsidy, land, labour) < 0:
            raise DistributionRefused("negative_holding", member=m.member_id)
        volume_weights[m.member_id] = volume
        # Hundredths of a fen: capital in fen × 100; land in 0.01 mu × fen per mu.
        capital_weights[m.member_id] = 100 * (own + loan + subsidy) + land * land_value + labour * labour_value
        # Rates are in 1/10,000 (percent × 100): fen × rate / 10,000, half up.
        fixed[m.member_id] = (
            _round_half_up(Fraction(loan * loan_rate + subsidy * subsidy_rate, 10_000)) if m.poor else 0
        )
        parts[m.member_id] = {
            "own": own,
            "loan": loan,
            "subsidy": subsidy,
            "land_value": Fraction(land * land_value, 100),
            "labour_value": Fraction(labour * labour_value, 100),
        }

    volume_part = -(-surplus_fen * share // 10_000)  # ceil: never below the share
    fixed_part = sum(fixed.values())
    capital_part = surplus_fen - volume_part - fixed_part
    if capital_part < 0:
        raise DistributionRefused(
            "fixed_returns_exceed_surplus",
            field="surplus",
            fixed=fen_to_yuan(fixed_part),
            volume=fen_to_yuan(volume_part),
        )
    if volume_part and not sum(volume_weights.values()):
        raise DistributionRefused("no_transactions", field="year")
    if capital_part and not sum(capital_weights.values()):
        raise DistributionRefused("no_capital", field="volume_share_percent", left=fen_to_yuan(capital_part))

    volume_shares = largest_remainder(volume_part, volume_weights)
    capital_shares = largest_remainder(capital_part, capital_weights)
    lines = []
    for m in members:
        mid = m.member_id
        p = parts[mid]
        lines.append(
            Line(
                member_id=mid,
                fixed=fixed[mid],
                volume=volume_shares[mid],
                capital=capital_shares[mid],
                basis={
                    "poor": m.poor,
                    "fixed_loan": str(fen_to_yuan(p["loan"])) if m.poor else "0.00",
                    "fixed_subsidy": str(fen_to_yuan(p["subsidy"])) if m.poor else "0.00",
                    "own": str(fen_to_yuan(p["own"])),
                    "loan": str(fen_to_yuan(p["loan"])),
                    "subsidy": str(fen_to_yuan(p["subsidy"])),
                    "land_mu": str(m.land_mu),
                    "land_value": _decimal_text(p["land_value"] / 100),
                    "labour_days": str(m.labour_days),
                    "labour_value": _decimal_text(p["labour_value"] / 100),
                    "transactions": str(fen_to_yuan(volume_weights[mid])),
                    "capital_weight": _decimal_text(Fraction(capital_weights[mid], 10_000)),
                    "volume_quota": _decimal_text(volume_shares[mid].quota / 100, places=6),
                    "volume_extra_fen": volume_shares[mid].extra_fen,
                    "capital_quota": _decimal_text(capital_shares[mid].quota / 100, places=6),
                    "capital_extra_fen": capital_shares[mid].extra_fen,
                },
            )
        )
    return Result(
        surplus=surplus_fen,
        volume_part=volume_part,
        fixed_part=fixed_part,
        capital_part=capital_part,
        volume_weight_total=sum(volume_weights.values()),
        capital_weight_total=sum(capital_weights.values()),
        lines=lines,
    )


def _decimal_text(value: Fraction, places: int = 2) -> str:
    """An exact fraction shown to ``places`` (half up), for the statement."""
    exact = (
        Decimal(value.numerator) / Decimal(value.denominator) if value.denominator != 1 else Decimal(value.numerator)
    )
    return str(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))
