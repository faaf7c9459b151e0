"""The needs supermarket: Chinese text search, filters, and keyset pages."""

import base64
import datetime
import html
import json
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from donations.models import Need, Pledge
from donations.services import pledges
from sun_commune import search

from . import factories
from .factories import pledge

# --- Search -------------------------------------------------------------------


@pytest.fixture
def tv(areas, secretary_a, county_reviewer):
    return factories.published_need(
        village=areas.village_a,
        by=secretary_a,
        reviewer=county_reviewer,
        title="村里需要一台电视",
        item="Smart TV",
        description="活动室看新闻",
    )


@pytest.fixture
def computer(areas, secretary_a, county_reviewer):
    return factories.published_need(
        village=areas.village_a,
        by=secretary_a,
        reviewer=county_reviewer,
        title="学校的电脑",
        item="电脑",
        description="给孩子上网课",
    )


def found(query) -> set[str]:
    condition = search.search_filter(query)
    needs = Need.objects.all() if condition is None else Need.objects.filter(condition)
    return set(needs.values_list("title", flat=True))


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("电视", {"村里需要一台电视"}),  # a two-character word
        ("电", {"村里需要一台电视", "学校的电脑"}),  # one character
        ("需要 电视", {"村里需要一台电视"}),  # two words, both must match
        ("电脑", {"学校的电脑"}),
        ("电视 电脑", set()),
        ("视电", set()),  # the pair exists nowhere in that order
        ("ｓｍａｒｔ　ｔｖ", {"村里需要一台电视"}),  # full-width letters and space
        ("SMART", {"村里需要一台电视"}),
        ("网课", {"学校的电脑"}),  # the description is searched too
    ],
)
def test_it_finds_chinese_words_of_any_length(tv, computer, query, expected):
    assert found(query) == expected


def test_an_empty_query_filters_nothing():
    assert search.search_filter("   ") is None


def test_the_supermarket_searches(tv, computer, anonymous):
    def titles(q):
        response = anonymous.get(reverse("donations:supermarket"), {"q": q})
        assert response.status_code == 200
        return {n.title for n in response.context["page"].rows}

    assert titles("电视") == {"村里需要一台电视"}
    assert titles("电") == {"村里需要一台电视", "学校的电脑"}
    assert titles("需要 电视") == {"村里需要一台电视"}
    assert titles("电脑") == {"学校的电脑"}
    assert titles("冰箱") == set()


# --- Filters --------------------------------------------------------------------


@pytest.fixture
def spread(areas, secretary_a, secretary_b, county_reviewer, other_county_reviewer):
    """One published need in each village, of different categories and kinds,
    and a draft that no filter may show."""
    secretary_c = factories.make_secretary(areas.village_c, username="secretary_c")
    a = factories.published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer, title="A goods")
    b = factories.published_need(
        village=areas.village_b,
        by=secretary_b,
        reviewer=county_reviewer,
        title="B money",
        kind="money",
        category=Need.Category.EDUCATION,
    )
    c = factories.published_need(
        village=areas.village_c,
        by=secretary_c,
        reviewer=other_county_reviewer,
        title="C service",
        kind="service",
        category=Need.Category.TECHNOLOGY,
    )
    factories.make_need(village=areas.village_a, by=secretary_a, title="A draft")
    factories.make_need(village=areas.village_a, by=secretary_a, title="A submitted", submit=True)
    return a, b, c


def supermarket_titles(client, **params) -> set[str]:
    response = client.get(reverse("donations:supermarket"), params)
    assert response.status_code == 200
    return {n.title for n in response.context["page"].rows}


def test_it_shows_only_published_needs(spread, anonymous):
    assert supermarket_titles(anonymous) == {"A goods", "B money", "C service"}


def test_it_filters_by_area(spread, areas, anonymous):
    assert supermarket_titles(anonymous, county=areas.yanting.pk) == {"A goods", "B money"}
    assert supermarket_titles(anonymous, county=areas.zitong.pk) == {"C service"}
    assert supermarket_titles(anonymous, county=areas.yanting.pk, township=areas.qianfeng.pk) == {"B money"}
    assert supermarket_titles(
        anonymous, county=areas.yanting.pk, township=areas.huangxi.pk, village=areas.village_a.pk
    ) == {"A goods"}


def test_it_filters_by_category_and_kind(spread, anonymous):
    assert supermarket_titles(anonymous, category="education") == {"B money"}
    assert supermarket_titles(anonymous, kind="service") == {"C service"}
    assert supermarket_titles(anonymous, kind="goods", category="daily") == {"A goods"}
    assert supermarket_titles(anonymous, kind="money", category="daily") == set()


def test_it_shows_fully_pledged_and_fulfilled_apart(spread, donor, secretary_a, anonymous):
    a, b, _ = spread
    p = pledge(a, donor)
    pledge(b, donor)

    assert supermarket_titles(anonymous) == {"C service"}
    assert supermarket_titles(anonymous, show="fully_pledged") == {"A goods", "B money"}
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=a.quantity)
    assert supermarket_titles(anonymous, show="fulfilled") == {"A goods"}


def test_a_bad_filter_shows_the_open_needs(spread, anonymous):
    assert supermarket_titles(anonymous, county="nonsense", kind="nonsense") == {"A goods", "B money", "C service"}


# --- Keyset pages -----------------------------------------------------------------


@pytest.fixture
def many(areas, secretary_a, county_reviewer, donor):
    """45 published needs with deadlines and progress that tie, published
    within microseconds of each other."""
    today = timezone.localdate()
    needs = []
    for i in range(45):
        need = factories.published_need(
            village=areas.village_a,
            by=secretary_a,
            reviewer=county_reviewer,
            title=f"need {i:02d}",
            deadline=today + datetime.timedelta(days=5 + i % 4),
        )
        if i % 3:
            pledge(need, donor, i % 3 * 2)
        needs.append(need)
    return needs


EXPECTED_ORDER = {
    "newest": ("-published_at", "-id"),
    "deadline": ("deadline", "id"),
    "closest": ("-progress", "-id"),
}


def walk(client, params) -> list[int]:
    """Follow the "Next page" links from the first page; the ids shown, in order."""
    seen = []
    url = reverse("donations:supermarket") + "?" + "&".join(f"{k}={v}" for k, v in params.items())
    for _ in range(10):
        response = client.get(url)
        assert response.status_code == 200
        page = response.context["page"]
        seen += [n.pk for n in page.rows]
        link = re.search(r'<a [^>]*rel="next" href="([^"]+)"', response.content.decode())
        if page.next_cursor is None:
            assert link is None
            return seen
        assert link, "a next cursor but no link"
        url = reverse("donations:supermarket") + html.unescape(link.group(1))
        assert f"after={page.next_cursor}" in url
    raise AssertionError("more pages than there are needs")


@pytest.mark.parametrize("sort", EXPECTED_ORDER)
def test_the_pages_show_every_need_once_in_order(many, anonymous, sort):
    expected = list(
        Need.objects.filter(status=Need.Status.PUBLISHED).order_by(*EXPECTED_ORDER[sort]).values_list("pk", flat=True)
    )
    assert len(expected) == 45

    seen = walk(anonymous, {"sort": sort})

    assert seen == expected


def test_the_pages_keep_the_filters(many, areas, anonymous):
    seen = walk(anonymous, {"sort": "deadline", "county": areas.yanting.pk, "kind": "goods"})

    assert sorted(seen) == sorted(n.pk for n in many)


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage",
        "!!!",
        base64.urlsafe_b64encode(json.dumps(["not a date", "x"]).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps({"a": 1}).encode()).decode(),
        base64.urlsafe_b64encode(json.dumps([1]).encode()).decode(),
    ],
)
def test_a_bad_cursor_shows_the_first_page(many, anonymous, cursor):
    first = anonymous.get(reverse("donations:supermarket"), {"sort": "deadline"}).context["page"]

    response = anonymous.get(reverse("donations:supermarket"), {"sort": "deadline", "after": cursor})

    assert response.status_code == 200
    page = response.context["page"]
    assert page.is_first
    assert [n.pk for n in page.rows] == [n.pk for n in first.rows]


def test_my_pledges_pages_show_every_pledge_once(many, donor, client_of):
    expected = list(
        Pledge.objects.filter(donor__user=donor).order_by("-created_at", "-id").values_list("pk", flat=True)
    )
    client = client_of(donor)
    seen, url = [], reverse("donations:my-pledges")
    while url:
        page = client.get(url).context["page"]
        seen += [p.id for p in page.rows]
        url = page.next_cursor and reverse("donations:my-pledges") + f"?after={page.next_cursor}"

    assert len(expected) == 30
    assert seen == expected


def test_needs_published_within_one_millisecond_are_each_shown_once(many, anonymous):
    # A busy province publishes many needs a second; the cursor must keep the
    # timestamp's microseconds, or the rows of one millisecond are skipped.
    base = timezone.now().replace(microsecond=123000)
    for i, need in enumerate(many):
        Need.objects.filter(pk=need.pk).update(published_at=base + datetime.timedelta(microseconds=i * 7 % 45))
    expected = list(Need.objects.order_by("-published_at", "-id").values_list("pk", flat=True))

    assert walk(anonymous, {"sort": "newest"}) == expected


def test_review_pages_of_one_millisecond_show_each_need_once(areas, secretary_a, county_reviewer, client_of):
    base = timezone.now().replace(microsecond=500000)
    for i in range(25):
        need = factories.make_need(village=areas.village_a, by=secretary_a, submit=True, title=f"review {i}")
        Need.objects.filter(pk=need.pk).update(submitted_at=base + datetime.timedelta(microseconds=i))
    expected = list(Need.objects.order_by("submitted_at", "id").values_list("pk", flat=True))
    client = client_of(county_reviewer)
    seen, url = [], reverse("donations:review-list")
    for _ in range(5):
        page = client.get(url).context["page"]
        seen += [n.pk for n in page.rows]
        if not page.next_cursor:
            break
        url = reverse("donations:review-list") + f"?after={page.next_cursor}"

    assert seen == expected


@pytest.mark.parametrize("window", [1, 2000])
def test_a_search_of_several_terms_finds_the_same_in_the_window_or_beyond(tv, computer, anonymous, monkeypatch, window):
    """A search of several pairs looks first among the next needs of the list,
    then (too few there) in the whole index: the same page either way."""
    from donations import views

    monkeypatch.setattr(views, "SEARCH_WINDOW", window)

    def titles(q):
        response = anonymous.get(reverse("donations:supermarket"), {"q": q})
        assert response.status_code == 200
        return {n.title for n in response.context["page"].rows}

    assert titles("一台电视") == {"村里需要一台电视"}
    assert titles("需要 电视") == {"村里需要一台电视"}
    assert titles("上网课") == {"学校的电脑"}
    assert titles("电视 电脑") == set()
