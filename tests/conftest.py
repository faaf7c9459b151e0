"""Personas: who uses the site, in which area.

绵阳 Mianyang (city)
├── 盐亭县 Yanting (county)        county_reviewer
│   ├── 黄溪乡 Huangxi (township)
│   │   └── 金鹿村 Jinlu = village A   secretary_a
│   └── 前锋镇 Qianfeng (township)
│       └── 杨武沟村 Yangwugou = village B   secretary_b
└── 梓潼县 Zitong (county)         other_county_reviewer
    └── 许州镇 Xuzhou (township)
        └── 烂干村 Langan = village C
"""

import os
from types import SimpleNamespace

import pytest
from django.conf import settings
from django.test import Client
from django.utils import translation

from households.models import Area

from . import factories


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """TEST_DB_SUFFIX=x makes the test database test_<name>_x, so that two
    suites (say the backend tests and the browser journeys) can run on one
    PostgreSQL at the same time."""
    from django.conf import settings

    suffix = os.environ.get("TEST_DB_SUFFIX")
    if suffix:
        for db in settings.DATABASES.values():
            db.setdefault("TEST", {})
            db["TEST"]["NAME"] = f"test_{db['NAME']}_{suffix}"


@pytest.fixture(autouse=True)
def _default_language():
    """Each test starts in the site's default language: a request served in
    English (or a task run in a user's language) leaves its language active
    in this thread, which the next test would inherit."""
    translation.activate(settings.LANGUAGE_CODE)
    yield
    translation.activate(settings.LANGUAGE_CODE)


@pytest.fixture(autouse=True)
def _fresh_page_version(request):
    """Each test that uses the database starts with no kept public page: a
    test's rows are rolled back at its end without a trigger firing, so a
    page kept by one test could otherwise be served to the next
    (sun_commune/pagecache.py)."""
    uses_db = request.node.get_closest_marker("django_db") or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db:
        return
    from sun_commune import pagecache

    pagecache.LOCAL.clear()  # as if each test were its own process
    request.getfixturevalue("django_db_setup")
    with request.getfixturevalue("django_db_blocker").unblock():
        pagecache.changed()


@pytest.fixture
def areas(db):
    def area(code, name, name_en, level, parent=None):
        return factories.AreaFactory(code=code, name=name, name_en=name_en, level=level, parent=parent)

    city = area("510700", "绵阳市", "Mianyang", Area.Level.CITY)
    yanting = area("510723", "盐亭县", "Yanting", Area.Level.COUNTY, city)
    zitong = area("510725", "梓潼县", "Zitong", Area.Level.COUNTY, city)
    huangxi = area("510723101", "黄溪乡", "Huangxi", Area.Level.TOWNSHIP, yanting)
    qianfeng = area("510723102", "前锋镇", "Qianfeng", Area.Level.TOWNSHIP, yanting)
    xuzhou = area("510725101", "许州镇", "Xuzhou", Area.Level.TOWNSHIP, zitong)
    return SimpleNamespace(
        city=city,
        yanting=yanting,
        zitong=zitong,
        huangxi=huangxi,
        qianfeng=qianfeng,
        xuzhou=xuzhou,
        village_a=area("510723101201", "金鹿村", "Jinlu", Area.Level.VILLAGE, huangxi),
        village_b=area("510723102201", "杨武沟村", "Yangwugou", Area.Level.VILLAGE, qianfeng),
        village_c=area("510725101201", "烂干村", "Langan", Area.Level.VILLAGE, xuzhou),
    )


@pytest.fixture
def secretary_a(areas):
    return factories.make_secretary(areas.village_a, username="secretary_a")


@pytest.fixture
def secretary_b(areas):
    return factories.make_secretary(areas.village_b, username="secretary_b")


@pytest.fixture
def county_reviewer(areas):
    return factories.make_staff(areas.yanting, username="county_reviewer")


@pytest.fixture
def other_county_reviewer(areas):
    return factories.make_staff(areas.zitong, username="other_county_reviewer")


@pytest.fixture
def donor(db):
    return factories.make_donor(username="donor", name="Donor Li")


@pytest.fixture
def other_donor(db):
    return factories.make_donor(username="other_donor", name="Donor Wang")


@pytest.fixture
def anonymous():
    return Client()


@pytest.fixture
def client_of():
    """``client_of(user)``: a test client logged in as ``user``."""

    def make(user):
        client = Client()
        client.force_login(user)
        return client

    return make


@pytest.fixture
def english():
    """Messages in English (the site's default is zh-Hans); pair it with
    ``en_client_of`` and ``en_anonymous`` for pages."""
    with translation.override("en"):
        yield


@pytest.fixture
def en_anonymous():
    return Client(HTTP_ACCEPT_LANGUAGE="en")


@pytest.fixture
def en_client_of():
    """``en_client_of(user)``: a test client logged in as ``user``, asking for English."""

    def make(user):
        client = Client(HTTP_ACCEPT_LANGUAGE="en")
        client.force_login(user)
        return client

    return make


@pytest.fixture
def need_a(areas, secretary_a, county_reviewer):
    """A published goods need of village A: 10 electric blankets."""
    return factories.published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer)


@pytest.fixture
def money_need_a(areas, secretary_a, county_reviewer):
    """A published money need of village A: 1,000.00 yuan."""
    return factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, kind="money", title="修路的钱"
    )
