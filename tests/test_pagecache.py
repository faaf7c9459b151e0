"""The public pages kept whole for visitors (sun_commune/pagecache.py) are
never stale: any change to what they show makes a new page version, a
withdrawn consent is hidden at the very next request, the visitor's own CSRF
token is on every kept page, and nothing personal is kept."""

import re

import pytest
from django.conf import settings
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import resolve, reverse

from households import services as household_services
from sun_commune import pagecache

from . import factories
from .factories import pledge
from .test_register_privacy import public_pages

TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


@pytest.fixture
def world(areas, secretary_a, county_reviewer):
    household = factories.HouseholdFactory(village=areas.village_a, alias="黄家", alias_consent=True)
    need = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=household, title="老人过冬的电热毯"
    )
    donor = factories.make_donor(username="donor", name="A donor")
    return household, need, donor


def public_paths(areas, need) -> list[str]:
    """The public pages (of the privacy tests) that are kept."""
    paths = [p for p in public_pages(need, areas) if getattr(resolve(p.split("?")[0]).func, "kept_page", False)]
    assert len(paths) >= 7
    return paths


def triggered_tables() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT c.relname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid WHERE t.tgname = %s",
            [pagecache.SEQUENCE],
        )
        return {row[0] for row in cursor.fetchall()}


def test_every_table_a_kept_page_reads_makes_a_new_version(areas, world):
    """The rule the cache rests on: a page may be kept only if every table
    it reads advances the page version when it changes."""
    _household, need, _donor = world
    watched = triggered_tables()
    read = set()
    for path in public_paths(areas, need):
        pagecache.changed()
        with CaptureQueriesContext(connection) as ctx:
            assert Client().get(path).status_code == 200, path
        for query in ctx.captured_queries:
            read |= set(re.findall(r'(?:FROM|JOIN)\s+"?([a-z_]+)"?', query["sql"]))
    read.discard(pagecache.SEQUENCE)
    assert read, "no query was captured"
    assert read <= watched, f"kept pages read tables that do not advance the page version: {read - watched}"


def test_a_kept_page_costs_one_query_and_is_the_same_page(areas, world):
    _household, need, _donor = world
    for path in public_paths(areas, need):
        client = Client()
        first = client.get(path)
        with CaptureQueriesContext(connection) as ctx:
            second = client.get(path)
        assert len(ctx.captured_queries) == 1, (path, [q["sql"] for q in ctx.captured_queries])
        assert TOKEN.sub("", first.content.decode()) == TOKEN.sub("", second.content.decode())


def test_each_visitor_gets_a_working_csrf_token_of_their_own(areas, world):
    path = reverse("donations:supermarket")
    Client().get(path)  # kept
    visitor = Client(enforce_csrf_checks=True)
    page = visitor.get(path).content.decode()
    tokens = TOKEN.findall(page)
    assert tokens and "\x00" not in page
    secret = visitor.cookies[settings.CSRF_COOKIE_NAME].value
    other = Client(enforce_csrf_checks=True)
    assert TOKEN.findall(other.get(path).content.decode())[0] != tokens[0]
    assert other.cookies[settings.CSRF_COOKIE_NAME].value != secret
    response = visitor.post(reverse("set_language"), {"language": "en", "next": path, "csrfmiddlewaretoken": tokens[0]})
    assert response.status_code == 302


def test_a_withdrawn_consent_is_hidden_at_the_next_request(
    areas, world, secretary_a, django_capture_on_commit_callbacks
):
    household, need, _donor = world
    path = reverse("donations:need-detail", args=[need.pk])
    client = Client()
    assert "黄家" in client.get(path).content.decode()
    assert "黄家" in client.get(path).content.decode()  # kept
    with django_capture_on_commit_callbacks(execute=True):
        household_services.record_consent(
            by=secretary_a, household_id=household.pk, subject="alias", granted=False, basis="asked by phone"
        )
    assert "黄家" not in client.get(path).content.decode()
    assert "黄家" not in client.get(reverse("village-public", args=[areas.village_a.code])).content.decode()


def test_a_pledge_shows_at_once(areas, world):
    _household, need, donor = world
    path = reverse("donations:need-detail", args=[need.pk])
    client = Client()
    before = client.get(path).content.decode()
    assert "A donor" not in before
    pledge(need, donor, size=3, message="")
    need.refresh_from_db()
    after = client.get(path).content.decode()
    assert after != before
    assert f"{need.progress}%" in after or str(need.pledged_quantity) in after


def test_a_change_made_outside_the_services_makes_a_new_version_too(areas, world):
    """An administrator's UPDATE in psql is not an audited service call: the
    table's trigger still makes the kept page old."""
    _household, need, _donor = world
    path = reverse("donations:supermarket")
    client = Client()
    assert "老人过冬的电热毯" in client.get(path).content.decode()
    with connection.cursor() as cursor:
        cursor.execute("UPDATE donations_need SET title = %s WHERE id = %s", ["改过的标题", need.pk])
    page = client.get(path).content.decode()
    assert "改过的标题" in page and "老人过冬的电热毯" not in page


def test_pages_of_logged_in_users_and_flash_messages_are_not_kept(areas, world, client_of):
    _household, need, donor = world
    path = reverse("donations:need-detail", args=[need.pk])
    Client().get(path)  # kept for visitors
    page = client_of(donor).get(path).content.decode()
    assert "donor" in page and reverse("logout") in page
    visitor = Client()
    visitor.cookies["messages"] = "anything"
    with CaptureQueriesContext(connection) as ctx:
        visitor.get(path)
    assert len(ctx.captured_queries) > 1


def test_languages_are_kept_apart_and_missing_pages_are_not_kept(areas, world):
    _household, need, _donor = world
    path = reverse("donations:supermarket")
    chinese = Client().get(path).content.decode()
    english = Client(headers={"accept-language": "en"}).get(path).content.decode()
    assert 'lang="zh-hans"' in chinese and 'lang="en"' in english
    missing = reverse("donations:need-detail", args=[need.pk + 1000])
    assert Client().get(missing).status_code == 404
    with CaptureQueriesContext(connection) as ctx:
        assert Client().get(missing).status_code == 404
    assert len(ctx.captured_queries) > 1


def test_kept_pledge_rows_carry_the_donors_own_csrf_token(areas, world):
    """The rows of "My pledges" are kept as fragments with forms in them:
    the token in a row is the one of the request, even when the row was
    rendered for an earlier login."""
    _household, need, donor = world
    p = pledge(need, donor, size=2, message="")
    path = reverse("donations:my-pledges")
    first = Client(enforce_csrf_checks=True)
    first.force_login(donor)
    first.get(path)  # renders and keeps the row
    second = Client(enforce_csrf_checks=True)
    second.force_login(donor)
    page = second.get(path).content.decode()
    assert "\x00" not in page
    token = TOKEN.findall(page)[-1]
    response = second.post(reverse("donations:pledge-cancel", args=[p.pk]), {"csrfmiddlewaretoken": token})
    assert response.status_code == 302
    p.refresh_from_db()
    assert p.status == "cancelled"


def test_a_kept_pledge_form_and_layout_carry_the_donors_own_token(areas, world):
    """The empty pledge form and the layout's navigation are kept per need,
    person and language ({% kept %}); the token in them is the request's."""
    _household, need, donor = world
    path = reverse("donations:need-detail", args=[need.pk])
    first = Client(enforce_csrf_checks=True)
    first.force_login(donor)
    first.get(path)  # renders and keeps the form and the navigation
    second = Client(enforce_csrf_checks=True)
    second.force_login(donor)
    page = second.get(path).content.decode()
    assert "\x00" not in page and 'name="quantity"' in page
    tokens = TOKEN.findall(page)  # the navigation's forms and the pledge form's: each masked anew
    assert len(tokens) >= 2
    response = second.post(
        reverse("donations:pledge-create", args=[need.pk]),
        {"quantity": "2", "message": "", "csrfmiddlewaretoken": tokens[-1]},
    )
    assert response.status_code == 302
    assert need.pledges.count() == 1
    # A refused pledge shows the bound form with its error, not the kept one.
    response = second.post(
        reverse("donations:pledge-create", args=[need.pk]),
        {"quantity": "999", "message": "", "csrfmiddlewaretoken": TOKEN.findall(page)[0]},
    )
    assert response.status_code == 400 and 'value="999"' in response.content.decode()


def test_a_kept_navigation_costs_no_cache_round_trip_once_this_process_has_it(areas, world, monkeypatch):
    """Kept fragments are named by everything they show, so each process also
    holds the ones it used in memory: the second page of a logged-in donor
    asks the shared cache for nothing in the layout, and the page is the same."""
    from django.core.cache import cache

    _household, _need, donor = world
    client = Client()
    client.force_login(donor)
    path = reverse("donations:my-pledges")
    first = client.get(path).content.decode()
    asked = []
    for name in ("get", "get_many"):
        original = getattr(cache, name)
        monkeypatch.setattr(
            cache, name, lambda key, *a, _original=original, **k: asked.append(key) or _original(key, *a, **k)
        )
    second = client.get(path).content.decode()
    assert not [key for key in asked if "fragment:" in str(key)]
    assert TOKEN.sub("", first) == TOKEN.sub("", second)
    assert "\x00" not in second


def test_fragments_held_in_memory_are_bounded_and_expire(monkeypatch):
    later = pagecache.time.time() + 60
    local = pagecache._Local(max_bytes=800)
    for n in range(10):
        local.put(f"k{n}", "x" * 100, later)
    assert local.get("k0") is None and local.get("k1") is None  # the oldest went first
    assert local.get("k9") == "x" * 100
    local.get("k2")  # used: kept over k3
    local.put("k10", "y" * 100, later)
    assert local.get("k2") is not None and local.get("k3") is None
    local.put("big", "z" * 101, later)  # more than an eighth of the whole: not held
    assert local.get("big") is None
    now = pagecache.time.time()
    local.put("soon", "s", now + 5)
    monkeypatch.setattr(pagecache.time, "time", lambda: now + 6)
    assert local.get("soon") is None
    assert pagecache._Local(max_bytes=0).get("k") is None


def test_a_logged_in_donor_gets_a_needs_pledges_kept_while_nothing_changes(areas, world, client_of):
    """A need's pledges and ledger entries are the same for everyone: for a
    logged-in donor, that part of the page is kept under the page version,
    so it is not read again until something changes, and then it is."""
    _household, need, donor = world
    other = factories.make_donor(username="other", name="Another donor", show_name=True)
    pledge(need, other, size=1, message="")
    client = client_of(donor)
    path = reverse("donations:need-detail", args=[need.pk])
    first = client.get(path).content.decode()
    assert other.donor_profile.public_name in first
    with CaptureQueriesContext(connection) as ctx:
        second = client.get(path).content.decode()
    read = " ".join(q["sql"] for q in ctx.captured_queries)
    assert "donations_pledge" not in read and "donations_publishedentry" not in read
    assert TOKEN.sub("", first) == TOKEN.sub("", second)
    pledge(need, donor, size=2, message="")  # a change: a new page version
    third = client.get(path).content.decode()
    assert third.count("list-group-item d-flex") == 2


def test_a_kept_part_lives_at_most_the_page_cache_seconds_wherever_it_is_held(areas, world, client_of, settings):
    _household, need, donor = world
    client = client_of(donor)
    path = reverse("donations:need-detail", args=[need.pk])
    client.get(path)
    [(expires, _html)] = [v for k, v in pagecache.LOCAL._items.items() if "need-ledger-pledges" in k]
    assert expires - pagecache.time.time() <= settings.PAGE_CACHE_SECONDS
    pagecache.LOCAL.clear()  # another process: takes it from the cache, holds it no longer than the cache does
    client.get(path)
    [(again, _html)] = [v for k, v in pagecache.LOCAL._items.items() if "need-ledger-pledges" in k]
    assert again == expires
    settings.PAGE_CACHE_SECONDS = 0
    with CaptureQueriesContext(connection) as ctx:
        client.get(path)
    assert any("donations_pledge" in q["sql"] for q in ctx.captured_queries)  # not kept at all


def test_the_page_tables_are_the_tables_with_the_trigger(db):
    assert triggered_tables() == pagecache.PAGE_TABLES


@pytest.mark.django_db(transaction=True)
def test_a_write_that_commits_after_a_reader_kept_old_rows_makes_them_old(areas, world):
    """The trigger advances the version before the writer commits: a reader
    in between keeps the old rows under the new version. The version
    advanced again at the commit makes that copy unreachable."""
    from django.db import transaction

    household, need, _donor = world
    path = reverse("donations:need-detail", args=[need.pk])
    with transaction.atomic():
        Need = type(need)
        changed = Need.objects.get(pk=need.pk)
        changed.title = "新的标题"
        changed.save(update_fields=["title"])
        # A reader on another connection, before the commit: old rows, new version.
        import threading

        seen = {}

        def read():
            from django.db import connections

            seen["page"] = Client().get(path).content.decode()
            connections.close_all()

        reader = threading.Thread(target=read)
        reader.start()
        reader.join()
    assert "新的标题" not in seen["page"]
    assert "新的标题" in Client().get(path).content.decode()


def test_every_field_a_kept_card_shows_changes_the_kept_page(areas, world):
    """Keys come from the data, never from a list of fields: change any
    field of the need, its household or its village, and the kept page is
    rendered anew."""
    household, need, _donor = world
    path = reverse("donations:supermarket")
    Client().get(path)
    targets = [(type(need), need.pk), (type(household), household.pk), (type(areas.village_a), areas.village_a.pk)]
    for model, pk in targets:
        for field in model._meta.concrete_fields:
            if field.primary_key or getattr(field, "generated", False):
                continue  # a generated column changes with the fields it is made of
            before = pagecache.version()
            # The same value written again: a write, whatever the field, makes a new version.
            model.objects.filter(pk=pk).update(**{field.attname: getattr(model.objects.get(pk=pk), field.attname)})
            assert pagecache.version() > before, f"{model.__name__}.{field.name}"
    renamed = "改过的标题"
    type(need).objects.filter(pk=need.pk).update(title=renamed)
    assert renamed in Client().get(path).content.decode()


def test_a_refused_pledge_shows_the_same_pledges_as_the_page(areas, world, client_of):
    _household, need, donor = world
    delivered = pledge(need, donor, size=1, message="")
    delivered.status = "received"
    delivered.save(update_fields=["status"])
    client = client_of(donor)
    page = client.get(reverse("donations:need-detail", args=[need.pk])).content.decode()
    refused = client.post(
        reverse("donations:pledge-create", args=[need.pk]), {"quantity": "999", "message": ""}
    ).content.decode()
    assert page.count("list-group-item d-flex") == refused.count("list-group-item d-flex") == 1


def test_a_logged_in_donor_gets_the_supermarkets_list_kept_while_nothing_changes(
    areas, world, client_of, secretary_a, county_reviewer
):
    _household, need, donor = world
    client = client_of(donor)
    path = reverse("donations:supermarket") + "?category=" + need.category
    first = client.get(path).content.decode()
    assert need.title in first
    with CaptureQueriesContext(connection) as ctx:
        second = client.get(path).content.decode()
    assert not any("donations_need" in q["sql"] for q in ctx.captured_queries)
    assert TOKEN.sub("", first) == TOKEN.sub("", second)
    other = factories.published_need(
        village=areas.village_a,
        by=secretary_a,
        reviewer=county_reviewer,
        title="村里的果树苗",
        item="果树苗",
        category=need.category,
    )
    assert other.title in client.get(path).content.decode()  # a change: a new page version
    assert "村里的果树苗" not in client.get(reverse("donations:supermarket") + "?q=电热毯").content.decode()


@pytest.mark.django_db(transaction=True)
def test_a_direct_advance_inside_a_transaction_does_not_cancel_the_one_its_commit_owes(db):
    from django.db import transaction

    with transaction.atomic():
        pagecache.changed_after_commit()
        pagecache.changed()
        before_commit = pagecache.version()
    assert pagecache.version() > before_commit


def test_models_outside_the_page_tables_keep_djangos_fast_delete(db):
    from django.db.models.signals import post_delete, post_save

    from households.models import Household
    from sun_commune.models import AuditEntry

    assert not post_delete.has_listeners(AuditEntry)
    assert not post_save.has_listeners(AuditEntry)
    assert post_save.has_listeners(Household)
