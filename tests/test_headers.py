"""Headers every page sends (issue 14, finding 11) and the 500s that bad
input made (finding 9).

- A strict Content-Security-Policy on every page: scripts and styles only
  from the site's own files, no inline script or style anywhere (so no
  template may carry one).
- ``Cache-Control: private, no-store`` on every page for a logged-in person
  (a household, its history, the register, my pledges, pairings, staff
  pages): walked over the whole URL conf.
- A NUL byte in the path, the query or a form is a 400 with a translated
  message and changes nothing; publishing a need that is no longer awaiting
  review says so.
"""

import re
from pathlib import Path
from urllib.parse import urlencode

import pytest
from django.conf import settings
from django.test import Client
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext

from donations.models import Need
from donations.services import needs

from . import factories, url_support
from .url_support import fill, params, routes

url_world = url_support.url_world  # the fixture, for this module

TEMPLATES = Path(settings.BASE_DIR) / "templates"
NUL_MESSAGE = "The address or the form holds a character that is not allowed (a NUL byte). Nothing was changed."


def _policy(response) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}


def _pages(world) -> list[str]:
    """Each route of the URL conf with the world's first ids."""
    pages = []
    for route in routes():
        values = {name: world["ids"][0] if conv == "int" else world["codes"][0] for conv, name in params(route)}
        pages.append(fill(route, values))
    return pages


def test_no_template_has_inline_script_or_style():
    """A nonce would be kept with the page in the cache and served to
    everyone: so there is no inline script or style at all."""
    found = []
    for path in TEMPLATES.rglob("*.html"):
        if path.parts[len(TEMPLATES.parts)] == "emails":
            continue  # mails are not pages
        text = path.read_text()
        if re.search(r"<script(?![^>]*\bsrc=)[^>]*>", text) or re.search(r"\sstyle=", text):
            found.append(str(path.relative_to(TEMPLATES)))
        if re.search(r"\son[a-z]+=", text) or "javascript:" in text:
            found.append(f"{path.relative_to(TEMPLATES)} (an event handler attribute)")
    assert found == []


@pytest.mark.django_db
def test_every_page_sends_a_strict_content_security_policy(url_world, client_of):
    seen = 0
    for who, user in url_world["users"].items():
        client = client_of(user) if user is not None else Client()
        for path in _pages(url_world):
            response = client.get(path)
            if response.status_code != 200 or "text/html" not in response.get("Content-Type", ""):
                continue
            seen += 1
            policy = _policy(response)
            assert policy["default-src"] == ["'self'"], (path, who)
            assert policy["script-src"] == ["'self'"], (path, who)
            assert policy["style-src"] == ["'self'"], (path, who)
            assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
    assert seen > 40


@pytest.mark.django_db
def test_every_page_for_a_logged_in_person_is_private_and_not_stored(url_world, client_of):
    """The household pages, history, register lists, my pledges, pairings,
    staff pages — every answer to a logged-in person."""
    private = []
    for who in ("secretary", "staff", "donor", "manager"):
        client = client_of(url_world["users"][who])
        for path in _pages(url_world):
            response = client.get(path)
            if response.status_code >= 400:
                continue
            private.append(path)
            cache_control = response.get("Cache-Control", "")
            if path.startswith("/ledger/") and "public" in cache_control:
                continue  # the published ledger's downloads are the same for everyone
            assert {"private", "no-store"} <= set(re.split(r",\s*", cache_control)), (path, who, cache_control)
    must = {"/households/", "/my/pledges/", "/village/needs/", "/bureau/review/"}
    assert must <= {p for p in private}, must - set(private)
    assert len(private) > 60


@pytest.mark.django_db
def test_public_pages_for_visitors_stay_cacheable(url_world):
    response = Client().get(reverse("donations:supermarket"))
    assert response.status_code == 200
    assert "no-store" not in response.get("Cache-Control", "")


@pytest.mark.django_db
def test_a_household_page_is_not_stored(areas, secretary_a, client_of):
    household = factories.HouseholdFactory(village=areas.village_a)
    client = client_of(secretary_a)
    for path in (
        reverse("households:household-detail", args=[household.pk]),
        reverse("households:household-history", args=[household.pk]),
        reverse("households:household-list") + "?q=户主",
    ):
        response = client.get(path)
        assert response.status_code == 200, path
        assert response["Cache-Control"] == "private, no-store", path


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/households/villages/%00/",
        "/pairings/request/?household=%00",
        "/?q=%00",
        "/needs/?q=a%00b",
    ],
)
@pytest.mark.parametrize("language", ["en", "zh-hans"])
def test_a_nul_byte_in_the_address_is_a_400_with_a_message(areas, donor, client_of, path, language):
    client = client_of(donor)
    response = client.get(path, headers={"accept-language": language})
    assert response.status_code == 400
    with translation.override(language):
        assert gettext(NUL_MESSAGE) in response.content.decode()


@pytest.mark.django_db
def test_a_nul_byte_in_a_posted_form_is_a_400_and_changes_nothing(need_a, donor, client_of):
    client = client_of(donor)
    before = need_a.pledges.count()
    response = client.post(
        reverse("donations:pledge-create", args=[need_a.pk]),
        urlencode({"quantity": "1", "message": "a\x00b"}),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400
    assert NUL_MESSAGE in response.content.decode() or gettext(NUL_MESSAGE) in response.content.decode()
    assert need_a.pledges.count() == before


@pytest.mark.django_db
def test_publishing_a_need_no_longer_awaiting_review_says_so(areas, secretary_a, county_reviewer, client_of):
    """A colleague sent the need back in another tab: the publish button
    answers with the refusal, not a 500, and the need stays as it was."""
    need = factories.make_need(village=areas.village_a, by=secretary_a, submit=True)
    needs.reject_need(need_id=need.pk, by=county_reviewer, reason="Too vague")
    need.refresh_from_db()
    status = need.status
    client = client_of(county_reviewer)
    url = reverse("donations:need-review", args=[need.pk])
    response = client.post(url, {"decision": "publish"}, follow=True)
    assert response.status_code == 200
    assert [str(m) for m in response.context["messages"]] == [gettext("Only a need awaiting review can be published.")]
    need.refresh_from_db()
    assert need.status == status


@pytest.mark.django_db
def test_rejecting_a_need_no_longer_awaiting_review_says_so_on_the_form(need_a, county_reviewer, client_of):
    client = client_of(county_reviewer)
    url = reverse("donations:need-review", args=[need_a.pk])
    response = client.post(url, {"decision": "reject", "reason": "Not needed"})
    assert response.status_code == 200
    assert response.context["form"].errors
    need_a.refresh_from_db()
    assert need_a.status == Need.Status.PUBLISHED


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/accounts/login/", f"/{settings.ADMIN_URL}login/"])
def test_an_overlong_username_is_refused_with_a_message(path):
    """Found by the fuzz pass: the login throttle kept the typed name in 255
    characters, and a longer one was a 500."""
    response = Client().post(
        path,
        urlencode({"username": "x" * 5000, "password": "x"}),
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 200
    assert response.context["form"].errors["username"]
