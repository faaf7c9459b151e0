"""The site's URL conf walked pattern by pattern, and a small world whose
ids fill the patterns' parameters (the fuzz pass and the header checks)."""

import re
from datetime import date

import pytest
from django.urls import URLResolver, get_resolver

from donations.services import pairings

from . import factories
from .coop_factories import make_cooperative


def routes(patterns=None, prefix=""):
    for pattern in patterns if patterns is not None else get_resolver().url_patterns:
        if isinstance(pattern, URLResolver):
            if getattr(pattern, "app_name", None) == "admin":
                continue
            yield from routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern)


def params(route: str) -> list[tuple[str, str]]:
    """(converter, name) of each path parameter of ``route``."""
    return [(m.group(1) or "str", m.group(2)) for m in re.finditer(r"<(?:(\w+):)?(\w+)>", route)]


def fill(route: str, values: dict) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", lambda m: values[m.group(1)], route)


@pytest.fixture
def url_world(areas, secretary_a, county_reviewer, donor, need_a, money_need_a):
    household = factories.HouseholdFactory(village=areas.village_a)
    need = need_a
    draft = factories.make_need(village=areas.village_a, by=secretary_a)
    submitted = factories.make_need(village=areas.village_a, by=secretary_a, submit=True, title="待审核的需求")
    pledge = factories.pledge(money_need_a, donor, 100)
    pairing = pairings.request_pairing(
        donor=donor.donor_profile, commitment="money", start_date=date.today(), household=household, amount=100
    )
    coop = make_cooperative(area=areas.yanting, staff=county_reviewer, manager_username="coop_manager")
    ids = {o.pk for o in (household, need, draft, submitted, pledge, pairing, coop, areas.village_a, money_need_a)}
    return {
        "ids": sorted(str(i) for i in ids),
        "codes": [areas.village_a.code],
        "users": {
            "anonymous": None,
            "secretary": secretary_a,
            "staff": county_reviewer,
            "donor": donor,
            "manager": coop.manager,
        },
    }
