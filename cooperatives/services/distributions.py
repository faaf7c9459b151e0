"""The year's distribution of the surplus: the rules the law allows, the
preview computed from the register and the deliveries, its approval by
bureau staff (a role's own act, checked here), and the payment of its
lines into the households' income. A distribution line is locked before its
distribution.
"""

from datetime import date
from decimal import Decimal

from django.db import transaction
from django.db.models import F, Sum
from django.utils import timezone
from django.utils.translation import gettext as _

from households import services as household_services
from households.models import IncomeRecord
from sun_commune import audit
from sun_commune.errors import ActionRefused
from sun_commune.money import quantize_yuan

from .. import distribution
from ..access import staff_over
from ..models import (
    Cooperative,
    Delivery,
    Distribution,
    DistributionLine,
    DistributionRules,
    Member,
    ShareEvent,
)
from .register import ZERO, _exact_yuan


def law_message() -> str:
    return _(
        "The Law on Farmers' Professional Cooperatives requires at least %(share)s%% of the distributable "
        "surplus to be returned by transaction volume."
    ) % {"share": distribution.MINIMUM_VOLUME_SHARE}


RULE_FIELDS = (
    "volume_share_percent",
    "loan_fixed_rate_percent",
    "subsidy_fixed_rate_percent",
    "land_value_per_mu",
    "labour_value_per_day",
)


def check_rules(values: dict) -> None:
    """Refuse rules the law or arithmetic does not allow, naming the field."""
    share = Decimal(values["volume_share_percent"])
    if share < distribution.MINIMUM_VOLUME_SHARE:
        raise ActionRefused(law_message(), field="volume_share_percent")
    if share > 100:
        raise ActionRefused(_("A share cannot be more than 100%."), field="volume_share_percent")
    for name in ("loan_fixed_rate_percent", "subsidy_fixed_rate_percent"):
        if not 0 <= Decimal(values[name]) <= 100:
            raise ActionRefused(_("Enter a rate between 0% and 100%."), field=name)
    for name in ("land_value_per_mu", "labour_value_per_day"):
        if Decimal(values[name]) < 0:
            raise ActionRefused(_("Enter an amount of zero or more."), field=name)
        _exact_yuan(values[name], field=name)


@transaction.atomic
def set_rules(*, by, cooperative_id: int, **values) -> DistributionRules:
    """Change the cooperative's distribution rules; the audit entry keeps the
    old and new value of each rule. Distributions already computed keep the
    rules they were computed with."""
    values = {k: Decimal(v) for k, v in values.items() if k in RULE_FIELDS}
    current = DistributionRules.objects.select_for_update().filter(cooperative_id=cooperative_id).first()
    if current is None:
        current = DistributionRules.objects.create(cooperative_id=cooperative_id)
    check_rules({**{k: getattr(current, k) for k in RULE_FIELDS}, **values})
    changes = {}
    for key, value in values.items():
        if getattr(current, key) != value:
            changes[key] = [getattr(current, key), value]
            setattr(current, key, value)
    if not changes:
        return current
    current.updated_by = by
    current.save()
    audit.record(actor=by, action="cooperative.rules_changed", obj=current, changes=changes)
    return current


def rules_of(coop: Cooperative) -> distribution.Rules:
    rules = DistributionRules.objects.filter(cooperative=coop).first() or DistributionRules(cooperative=coop)
    return distribution.Rules(**{name: getattr(rules, name) for name in RULE_FIELDS})


def distribution_inputs(coop: Cooperative, year: int) -> tuple[list[distribution.MemberInput], dict[int, Decimal]]:
    """Each member of the year: holdings at the year's end, transactions
    during it; and what each was paid above the market price. Three grouped
    queries, whatever the number of members.

    Members are identified by id. Within a cooperative, ids and member
    numbers rise together (both are given in order under the cooperative's
    row lock), so the tie rule's "lower member id" is the statements' "lower
    member number"."""
    year_end = date(year, 12, 31)
    members = list(
        Member.objects.confirmed()
        .filter(cooperative=coop, joined_on__lte=year_end)
        .exclude(exited_on__lt=date(year, 1, 1))
        .order_by("id")
        .values_list("id", "household_id")
    )
    held: dict[int, dict[str, Decimal]] = {}
    for member_id, holding, total in (
        ShareEvent.objects.filter(cooperative=coop, occurred_on__lte=year_end)
        .values_list("member_id", "holding")
        .annotate(total=Sum("quantity"))
        .order_by()
    ):
        held.setdefault(member_id, {})[holding] = total
    traded = {
        member_id: (amount, extra)
        for member_id, amount, extra in Delivery.objects.filter(cooperative=coop, year=year)
        .values_list("member_id")
        .annotate(amount=Sum("amount"), extra=Sum("extra_above_market"))
        .order_by()
    }
    inputs = []
    for member_id, household_id in members:
        h = held.get(member_id, {})
        inputs.append(
            distribution.MemberInput(
                member_id=member_id,
                poor=household_id is not None,
                transactions=traded.get(member_id, (ZERO, ZERO))[0],
                own_capital=h.get("own", ZERO),
                loan_capital=h.get("loan", ZERO),
                subsidy_capital=h.get("subsidy", ZERO),
                land_mu=h.get("land", ZERO),
                labour_days=h.get("labour", ZERO),
            )
        )
    return inputs, {member_id: extra for member_id, (_amount, extra) in traded.items()}


def refusal_message(error: distribution.DistributionRefused) -> str:
    """The translated message for a refusal of the distribution arithmetic."""
    p = error.params
    code = error.code
    if code == "volume_share_too_low":
        return law_message()
    if code == "volume_share_too_high":
        return _("A share cannot be more than 100%.")
    if code == "negative_surplus":
        return _("Enter a surplus of zero or more.")
    if code == "not_fen":
        return _("Enter an amount in yuan with at most two decimal places.")
    if code == "fixed_returns_exceed_surplus":
        return _(
            "The surplus cannot pay the fixed returns guaranteed to poor households (%(fixed)s yuan) after "
            "the part returned by transaction volume (%(volume)s yuan). Enter the full distributable surplus, "
            "or change the rules."
        ) % {"fixed": p["fixed"], "volume": p["volume"]}
    if code == "no_transactions":
        return _(
            "No delivery is recorded for this year, so nothing can be returned by transaction volume. "
            "Record the year's deliveries first."
        )
    if code == "no_capital":
        return _(
            "No member holds capital, land or labour, so %(left)s yuan cannot be shared by capital. "
            "Return 100%% by transaction volume, or record the members' shares."
        ) % {"left": p["left"]}
    return _("The distribution cannot be computed with these figures.")


def _lines_from(result: distribution.Result, distribution: Distribution, poor: dict[int, bool], extras: dict) -> list:
    return [
        DistributionLine(
            distribution=distribution,
            member_id=line.member_id,
            is_poor=poor[line.member_id],
            transactions=Decimal(line.basis["transactions"]),
            capital_weight=Decimal(line.capital.weight) / 10_000,
            fixed_return=line.yuan("fixed"),
            volume_return=line.yuan("volume"),
            capital_return=line.yuan("capital"),
            total=line.yuan("total"),
            extra_above_market=quantize_yuan(extras.get(line.member_id, ZERO)),
            basis=line.basis,
            payment_reference=f"COOP-{distribution.pk}-{line.member_id}",
        )
        for line in result.lines
    ]


@transaction.atomic
def compute_distribution(*, by, cooperative_id: int, year: int, surplus) -> Distribution:
    """Compute (or compute again) the preview of a year's distribution from
    the cooperative's current rules, the register at the year's end and the
    year's deliveries. The rules and inputs are kept on the row as JSON, so
    the result can be reproduced. An approved distribution is never
    recomputed."""
    coop = Cooperative.objects.select_for_update().get(pk=cooperative_id)
    if not 2000 <= year <= timezone.localdate().year:
        raise ActionRefused(_("Choose a year that has begun."), field="year")
    surplus = _exact_yuan(surplus, field="surplus")
    if surplus < 0:
        raise ActionRefused(_("Enter a surplus of zero or more."), field="surplus")
    existing = Distribution.objects.select_for_update().filter(cooperative=coop, year=year).first()
    if existing and existing.status != Distribution.Status.PREVIEW:
        raise ActionRefused(_("The distribution of this year is already approved."), field="year")
    rules = rules_of(coop)
    inputs, extras = distribution_inputs(coop, year)
    try:
        result = distribution.compute(surplus=surplus, rules=rules, members=inputs)
    except distribution.DistributionRefused as error:
        raise ActionRefused(refusal_message(error), field=error.field) from None
    poor = {m.member_id: m.poor for m in inputs}
    fields = {
        "surplus": surplus,
        "status": Distribution.Status.PREVIEW,
        "algorithm": distribution.ALGORITHM,
        "rules": rules.to_json(),
        "inputs": [m.to_json() for m in inputs],
        "volume_total": distribution.fen_to_yuan(result.volume_part),
        "fixed_total": distribution.fen_to_yuan(result.fixed_part),
        "capital_total": distribution.fen_to_yuan(result.capital_part),
        "transactions_total": distribution.fen_to_yuan(result.volume_weight_total),
        "capital_weight_total": Decimal(result.capital_weight_total) / 10_000,
        "member_count": len(inputs),
        "poor_member_count": sum(1 for m in inputs if m.poor),
        "poor_received_total": distribution.fen_to_yuan(
            sum(line.total for line in result.lines if poor[line.member_id])
        ),
        "unpaid_count": sum(1 for line in result.lines if line.total > 0),
        "computed_at": timezone.now(),
        "computed_by": by if getattr(by, "pk", None) else None,
    }
    if existing:
        existing.lines.all().delete()
        for key, value in fields.items():
            setattr(existing, key, value)
        existing.save()
        dist = existing
    else:
        dist = Distribution.objects.create(cooperative=coop, year=year, **fields)
    DistributionLine.objects.bulk_create(_lines_from(result, dist, poor, extras), batch_size=2000)
    audit.record(
        actor=by,
        action="cooperative.distribution_computed",
        obj=dist,
        changes={
            "year": year,
            "surplus": surplus,
            "volume": dist.volume_total,
            "fixed": dist.fixed_total,
            "capital": dist.capital_total,
            "members": dist.member_count,
            "rules": dist.rules,
        },
    )
    return dist


def recompute(dist: Distribution) -> distribution.Result:
    """The stored inputs computed again (to check a distribution)."""
    return distribution.compute(
        surplus=dist.surplus,
        rules=distribution.Rules.from_json(dist.rules),
        members=[distribution.MemberInput.from_json(m) for m in dist.inputs],
    )


@transaction.atomic
def approve_distribution(*, by, distribution_id: int) -> Distribution:
    """Bureau staff over the cooperative's area approve a preview; from now on
    it is fixed and its lines can be paid. Approving twice changes nothing."""
    dist = Distribution.objects.select_for_update().select_related("cooperative__area").get(pk=distribution_id)
    if not staff_over(by, dist.cooperative.area):
        raise ActionRefused(_("Only bureau staff over the cooperative's area can approve its distribution."))
    if dist.status != Distribution.Status.PREVIEW:
        return dist
    dist.status = Distribution.Status.APPROVED
    dist.approved_at = timezone.now()
    dist.approved_by = by
    fields = ["status", "approved_at", "approved_by"]
    if dist.unpaid_count == 0:
        dist.status = Distribution.Status.PAID
        dist.paid_at = dist.approved_at
        fields.append("paid_at")
    dist.save(update_fields=fields)
    audit.record(
        actor=by, action="cooperative.distribution_approved", obj=dist, changes={"status": ["preview", dist.status]}
    )
    return dist


@transaction.atomic
def record_payment(*, by, line_id: int, note: str = "") -> DistributionLine:
    """Record that a member was paid their line of an approved distribution,
    and add it to the household's income for the year: the fixed return and
    the dividend on capital as a dividend, the volume return as a rebate.

    The line is locked and checked first: recording it twice (a double click,
    a task run twice) returns the line as it is. The income records carry
    origin keys built from the line's unique payment reference, so they are
    written once too. Locks the line, then its distribution.
    """
    line = (
        DistributionLine.objects.select_for_update()
        .select_related("member", "distribution__cooperative")
        .defer("distribution__inputs")
        .get(pk=line_id)
    )
    dist = line.distribution
    if line.paid_at:
        return line
    if dist.status == Distribution.Status.PREVIEW:
        raise ActionRefused(_("The distribution must be approved by the bureau before anything is paid."))
    if line.total <= 0:
        raise ActionRefused(_("Nothing is due on this line."))
    line.paid_at = timezone.now()
    line.paid_by = by if getattr(by, "pk", None) else None
    line.payment_note = (note or "").strip()[:64]
    line.save(update_fields=["paid_at", "paid_by", "payment_note"])
    if line.member.household_id:
        label = f"{dist.cooperative.name} · {dist.year}"
        for source, amount, suffix in (
            (IncomeRecord.Source.DIVIDEND, line.dividend, "dividend"),
            (IncomeRecord.Source.REBATE, line.volume_return, "rebate"),
        ):
            if amount > 0:
                household_services.record_income(
                    by=by,
                    household_id=line.member.household_id,
                    year=dist.year,
                    source=source,
                    amount=amount,
                    note=label,
                    origin=f"{line.payment_reference}-{suffix}".lower(),
                )
    audit.record(
        actor=by,
        action="cooperative.dividend_paid",
        obj=line,
        changes={"reference": line.payment_reference, "total": line.total, "note": line.payment_note},
    )
    Distribution.objects.filter(pk=dist.pk).update(unpaid_count=F("unpaid_count") - 1)
    dist = Distribution.objects.select_for_update().get(pk=dist.pk)
    if dist.unpaid_count == 0 and dist.status == Distribution.Status.APPROVED:
        dist.status = Distribution.Status.PAID
        dist.paid_at = timezone.now()
        dist.save(update_fields=["status", "paid_at"])
        audit.record(
            actor=by, action="cooperative.distribution_paid", obj=dist, changes={"status": ["approved", "paid"]}
        )
    return line


def record_all_payments(*, by, distribution_id: int, note: str = "") -> int:
    """Record every unpaid line of an approved distribution, each in its own
    transaction (a run that dies half-way is finished by the next; lines
    already paid are skipped). Returns how many were recorded now."""
    dist = Distribution.objects.get(pk=distribution_id)
    if dist.status == Distribution.Status.PREVIEW:
        raise ActionRefused(_("The distribution must be approved by the bureau before anything is paid."))
    count = 0
    unpaid = DistributionLine.objects.filter(distribution_id=distribution_id, paid_at__isnull=True, total__gt=0)
    for line_id in list(unpaid.order_by("id").values_list("id", flat=True)):
        record_payment(by=by, line_id=line_id, note=note)
        count += 1
    return count
