"""Cooperatives for the tests, built through the services as the site does."""

from datetime import date
from decimal import Decimal

from cooperatives.models import Cooperative, Member
from cooperatives.services import coops, distributions, loans, purchases, register
from sun_commune.models import User

from . import factories

YEAR = 2023


def make_cooperative(*, area, staff, manager_username: str, name: str = "金鹿村养殖专业合作社", **rules) -> Cooperative:
    """A breeding cooperative in ``area`` registered by ``staff``, with a manager
    and rules (by default 60% by volume, 6% on loan and 5% on subsidy shares,
    1,000 yuan a mu, 100 yuan a day)."""
    coop = coops.create_cooperative(
        by=staff, name=name, kind=Cooperative.Kind.BREEDING, area=area, mode="企业+合作社+贫困户"
    )
    manager = factories.UserFactory(username=manager_username)
    coops.grant_manager(by=staff, cooperative_id=coop.pk, user=manager)
    values = {
        "volume_share_percent": Decimal("60"),
        "loan_fixed_rate_percent": Decimal("6"),
        "subsidy_fixed_rate_percent": Decimal("5"),
        "land_value_per_mu": Decimal("1000"),
        "labour_value_per_day": Decimal("100"),
    }
    values.update(rules)
    distributions.set_rules(by=manager, cooperative_id=coop.pk, **values)
    coop.manager = manager
    return coop


def add_poor_member(
    coop, household, *, loan=Decimal("10000"), subsidy=Decimal("2000"), joined=date(YEAR, 1, 5)
) -> Member:
    member = register.add_member(
        by=coop.manager,
        cooperative_id=coop.pk,
        kind=Member.Kind.HOUSEHOLD,
        household=household,
        joined_on=joined,
        subsidy_capital=subsidy,
        land_mu=Decimal("2.5"),
        labour_days=Decimal("20"),
        service_fees=Decimal("1600"),
    )
    member = confirm(member)
    if loan:
        loans.create_loan(
            by=coop.manager,
            member_id=member.pk,
            lender="信用社",
            principal=loan,
            annual_rate_percent=Decimal("4.35"),
            term_months=36,
            period_months=12,
            started_on=joined,
        )
    return member


def village_secretary(village):
    """The first secretary of ``village``: the one the test made, else a new one."""
    found = User.objects.filter(
        role_grants__role="secretary", role_grants__area=village, role_grants__active=True
    ).first()
    return found or factories.make_secretary(village, username=f"secretary_{village.code}")


def confirm(member, *, basis="签了入社申请书") -> Member:
    """The household's side: its village's first secretary confirms."""
    return register.confirm_membership(by=village_secretary(member.household.village), member_id=member.pk, basis=basis)


def add_farmer(coop, name="王建国", *, own=Decimal("20000"), joined=date(YEAR, 1, 5)) -> Member:
    return register.add_member(
        by=coop.manager, cooperative_id=coop.pk, kind=Member.Kind.FARMER, name=name, joined_on=joined, own_capital=own
    )


def contract(coop, member, *, agreed=Decimal("14.00"), guaranteed=Decimal("12.00")):
    return purchases.create_contract(
        by=coop.manager,
        member_id=member.pk,
        product="生猪",
        unit="kg",
        agreed_price=agreed,
        guaranteed_price=guaranteed,
        quantity=Decimal("1000"),
        season=f"{YEAR}年",
        year=YEAR,
        signed_on=date(YEAR, 1, 10),
    )


def deliver(coop, contract, *, kg="100", market="13.00", paid="14.00", day=date(YEAR, 6, 1)):
    return purchases.record_delivery(
        by=coop.manager,
        contract_id=contract.pk,
        delivered_on=day,
        quantity=Decimal(kg),
        grade="1",
        market_price=Decimal(market),
        price_paid=Decimal(paid),
    )


def populated(coop, household):
    """A poor household member who delivers and holds loan and subsidy shares,
    and a farmer who delivers more and holds own capital."""
    poor = add_poor_member(coop, household)
    farmer = add_farmer(coop)
    deliver(coop, contract(coop, poor), kg="100", market="13.00")
    c = contract(coop, farmer)
    deliver(coop, c, kg="300", market="13.50")
    deliver(coop, c, kg="200", market="14.00", day=date(YEAR, 9, 1))
    return poor, farmer
