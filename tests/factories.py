"""Factories and helpers for the backend and the browser tests.

Areas, users and households are plain model factories. Needs, pledges and
donors go through the services, so that counters, search terms, statuses and
audit entries are what the application itself would have written.
"""

import datetime
from decimal import Decimal

import factory
from django.utils import timezone

from donations.models import Donor, Need
from donations.services import donors, needs, pledges
from households.models import Area, Household
from sun_commune.models import RoleGrant, User

PASSWORD = "sun-commune-test-pw-4821"


class AreaFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Area
        django_get_or_create = ("code",)

    code = factory.Sequence(lambda n: f"99{n:06d}")
    name = factory.Sequence(lambda n: f"地区{n}")
    name_en = factory.Sequence(lambda n: f"Area {n}")
    level = Area.Level.VILLAGE
    parent = None
    is_poor_village = factory.LazyAttribute(lambda o: o.level == Area.Level.VILLAGE)


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda o: f"{o.username}@example.org")
    language = "en"
    password = factory.django.Password(PASSWORD)


class HouseholdFactory(factory.django.DjangoModelFactory):
    """A household written straight to the table (no audit entry); use
    households.services.create_household when the audit matters."""

    class Meta:
        model = Household

    village = None
    head_name = factory.Sequence(lambda n: f"户主{n}")
    size = 3
    poverty_causes = factory.LazyFunction(lambda: [Household.Cause.ILLNESS])


def grant(user: User, role: str, area: Area) -> RoleGrant:
    """Give ``user`` a role in ``area`` (and forget their cached grants)."""
    role_grant = RoleGrant.objects.create(user=user, role=role, area=area)
    user.forget_loaded()
    return role_grant


def make_secretary(village: Area, **user_fields) -> User:
    user = UserFactory(**user_fields)
    grant(user, RoleGrant.Role.SECRETARY, village)
    return user


def make_staff(area: Area, **user_fields) -> User:
    user = UserFactory(**user_fields)
    grant(user, RoleGrant.Role.STAFF, area)
    return user


def make_donor(
    *, name: str = "A donor", show_name: bool = False, phone: str = "", verified: bool = True, **user_fields
) -> User:
    """A user with a donor profile, registered the way the site does it.
    Their e-mail is verified (as if they had followed the mailed link, with
    no audit entry) unless ``verified=False``."""
    user = UserFactory(**user_fields)
    donors.register_donor(user=user, kind="person", name=name, show_name=show_name, phone=phone)
    if verified:
        verify(user)
    user.forget_loaded()
    return user


def verify(user: User) -> None:
    """Mark ``user``'s donor e-mail verified, straight in the table."""
    Donor.objects.filter(user=user).update(verified_email=user.email.lower(), verified_at=timezone.now())
    user.forget_loaded()


def need_fields(kind: str = Need.Kind.GOODS, **overrides) -> dict:
    """The fields of a valid need of ``kind``, due in 30 days."""
    fields = {
        "title": "过冬的电热毯",
        "description": "Electric blankets for the winter.",
        "category": Need.Category.DAILY,
        "kind": kind,
        "deadline": timezone.localdate() + datetime.timedelta(days=30),
        "household": None,
    }
    if kind == Need.Kind.MONEY:
        fields["target_amount"] = Decimal("1000.00")
    elif kind == Need.Kind.SERVICE:
        fields.update(quantity=10, unit="hours")
    else:
        fields.update(item="电热毯", quantity=10, unit="床", unit_price=Decimal("80.00"))
    fields.update(overrides)
    return fields


def make_need(*, village: Area, by: User, kind: str = Need.Kind.GOODS, submit: bool = False, **overrides) -> Need:
    """A need created through the service (a draft, or submitted)."""
    return needs.create_need(by=by, village=village, submit=submit, **need_fields(kind, **overrides))


def published_need(*, village: Area, by: User, reviewer: User, kind: str = Need.Kind.GOODS, **overrides) -> Need:
    """A need created, submitted and published through the services."""
    need = make_need(village=village, by=by, kind=kind, submit=True, **overrides)
    return needs.publish_need(need_id=need.pk, by=reviewer)


def pledge(need: Need, donor: User, size=None, **kwargs):
    """Pledge ``size`` units (or yuan, for a money need) as ``donor`` (a user)."""
    if need.is_money:
        kwargs.setdefault("amount", Decimal(size if size is not None else need.remaining))
    else:
        kwargs.setdefault("quantity", size if size is not None else need.remaining)
    return pledges.make_pledge(need_id=need.pk, donor=donor.donor_profile, **kwargs)
