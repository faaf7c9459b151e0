"""A kept page's key holds only the query parameters the page reads
(issue 14, finding 12): ``?junk=N`` neither renders the page again nor
leaves a new entry in the cache."""

import pytest
from django.test import Client
from django.test.signals import template_rendered
from django.urls import reverse

from sun_commune import pagecache

from . import factories


@pytest.fixture
def kept_keys(monkeypatch):
    """The keys of everything kept in the cache from now on."""
    keys = []
    real = pagecache.cache.set

    def recording(key, *args, **kwargs):
        if key.startswith("kept:"):
            keys.append(key)
        return real(key, *args, **kwargs)

    monkeypatch.setattr(pagecache.cache, "set", recording)
    return keys


@pytest.fixture
def renders():
    """The names of the templates rendered from now on."""
    names = []

    def seen(sender, template, **kwargs):
        names.append(template.name)

    template_rendered.connect(seen)
    yield names
    template_rendered.disconnect(seen)


@pytest.fixture
def a_need(areas, secretary_a, county_reviewer):
    return factories.published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer)


@pytest.mark.parametrize(
    "page, template",
    [
        ("home", "home.html"),
        ("donations:supermarket", "donations/supermarket.html"),
        ("donations:ledger-list", "donations/ledger_list.html"),
    ],
)
def test_junk_parameters_make_no_new_kept_page(a_need, kept_keys, renders, page, template):
    client = Client()
    path = reverse(page)
    for n in range(100):
        assert client.get(path, {"junk": n}).status_code == 200
    assert renders.count(template) == 1
    pages = [k for k in kept_keys if ":page:" in k]
    assert len(pages) == 1
    assert len(kept_keys) == len(set(kept_keys))  # every kept part once
    client.get(path)  # without the junk: the same page
    assert renders.count(template) == 1


def test_the_parameters_a_page_reads_still_make_their_own_pages(a_need, kept_keys, renders):
    client = Client()
    path = reverse("donations:supermarket")
    other = factories.published_need(
        village=a_need.village, by=a_need.created_by, reviewer=factories.make_staff(a_need.county), title="果树苗"
    )
    assert other.title in client.get(path, {"q": "果树苗"}).content.decode()
    assert a_need.title not in client.get(path, {"q": "果树苗", "junk": "1"}).content.decode()
    assert a_need.title in client.get(path).content.decode()
    # The same filters in another order are the same page.
    client.get(path, {"kind": "goods", "q": "果树苗"})
    client.get(path + "?q=果树苗&kind=goods")
    assert renders.count("donations/supermarket.html") == 3


def test_junk_parameters_make_no_new_kept_register_list(areas, secretary_a, client_of, kept_keys):
    factories.HouseholdFactory(village=areas.village_a)
    client = client_of(secretary_a)
    for n in range(20):
        assert client.get(reverse("households:household-list"), {"junk": n}).status_code == 200
    lists = [k for k in kept_keys if ":household-list:" in k]
    assert len(lists) == 1


def test_the_language_switch_goes_back_to_the_page_without_the_junk(a_need):
    body = Client().get(reverse("donations:supermarket") + "?junk=1&q=x").content.decode()
    assert 'name="next" type="hidden" value="/needs/?q=x"' in body
