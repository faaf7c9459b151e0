"""Who is asking is loaded in one query (portal/backends.py), and is
never a stale answer: a withdrawn role or a new donor profile counts at the
very next request."""

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from portal.backends import load_user
from sun_commune import services

from . import factories


def test_the_user_comes_with_roles_donor_profile_and_cooperatives_in_one_query(areas, county_reviewer):
    donor = factories.make_donor(username="giver", name="Giver", phone="13900001111")
    factories.grant(donor, "secretary", areas.village_a)
    with CaptureQueriesContext(connection) as ctx:
        user = load_user(donor.pk)
        assert [g.area.code for g in user.grants] == [areas.village_a.code]
        assert user.is_secretary and not user.is_bureau_staff
        assert user.donor_profile.name == "Giver"
        assert user.donor_profile.phone == "13900001111"  # decrypted like any read
        assert user.donor_profile.user is user
        assert user.grants[0].area.path == areas.village_a.path
    assert len(ctx.captured_queries) == 1
    reviewer = load_user(county_reviewer.pk)
    assert reviewer.donor_profile is None and reviewer.staff_areas == [areas.yanting]
    # The areas under the reviewer's county come with it (the list's links).
    assert [a.code for a in reviewer.staff_areas[0].loaded_children] == [areas.huangxi.code, areas.qianfeng.code]
    assert reviewer.staff_areas[0].loaded_children[0].label == areas.huangxi.name
    assert load_user(10**9) is None and load_user("not a number") is None


def test_a_withdrawn_role_counts_at_the_next_request(areas, county_reviewer, client_of):
    client = client_of(county_reviewer)
    assert client.get(reverse("households:household-list")).status_code == 200
    grant = county_reviewer.grants[0]
    services.withdraw_role(by=None, grant_id=grant.pk)
    assert client.get(reverse("households:household-list")).status_code in (403, 404)


def test_a_logged_in_page_spends_one_query_on_who_is_asking(areas, county_reviewer, client_of):
    client = client_of(county_reviewer)
    client.get(reverse("donations:my-pledges"))
    with CaptureQueriesContext(connection) as ctx:
        client.get(reverse("households:household-list"))
    identity = [
        q
        for q in ctx.captured_queries
        if any(t in q["sql"] for t in ("sun_commune_user", "load_user", "django_session"))
    ]
    assert len(identity) == 1, [q["sql"][:80] for q in ctx.captured_queries]
