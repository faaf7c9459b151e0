"""Fixtures for the browser journeys: Debian's chromium driven by Playwright
against pytest-django's ``live_server`` (the app in a thread, on the test
database, with real commits).

Everything here is prefixed ``e2e_`` so that it never collides with the
fixtures of ``tests/conftest.py``.
"""

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

# Playwright's sync API runs an asyncio event loop in this thread; without
# this Django refuses ORM calls from the test body ("SynchronousOnlyOperation").
# The usual workaround for Playwright with pytest-django.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "Yangguang-gongshe-2017"
TIMEOUT_MS = 10_000
SCREENSHOT_COPY = Path("/tmp/sun-journey.png")


@pytest.fixture(scope="session")
def e2e_browser():
    """One headless chromium for the whole session; each persona gets its own
    context (its own cookies, so its own login)."""
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is missing: install Debian's chromium to run the browser journeys")
    from playwright.sync_api import expect, sync_playwright

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


# Every page reports what its Content-Security-Policy blocked to the console,
# where the persona collects it (the browser's own "Refused to …" messages
# are collected too).
CSP_WATCH = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + (e.blockedURI || "inline")
    + " at " + e.documentURI + (e.sample ? " (" + e.sample + ")" : ""));
});
"""


class Persona:
    """A browser context and its one page, watching for server errors,
    JavaScript errors, pages without a Content-Security-Policy and anything
    the policy blocked, so that a test can assert none happened."""

    def __init__(self, browser, base_url: str, locale: str, width: int = 1280):
        self.context = browser.new_context(base_url=base_url, locale=locale, viewport={"width": width, "height": 900})
        self.context.set_default_timeout(TIMEOUT_MS)
        self.context.add_init_script(CSP_WATCH)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        self.pages: list[str] = []
        self.page.on("response", self._on_response)
        self.page.on("pageerror", lambda error: self.problems.append(f"JavaScript error: {error}"))
        self.page.on("console", self._on_console)

    def _on_response(self, response):
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            self.problems.append(f"{response.status} {response.request.method} {response.url}")
        if response.request.resource_type == "document" and response.status == 200:
            self.pages.append(response.url)
            if "content-security-policy" not in response.headers:
                self.problems.append(f"no Content-Security-Policy on {response.url}")

    def _on_console(self, message):
        text = message.text
        if text.startswith("CSP violation") or "Content Security Policy" in text:
            self.problems.append(text)

    def close(self):
        self.context.close()


@pytest.fixture
def e2e_persona(e2e_browser, live_server):
    """A factory of personas: ``e2e_persona()`` opens a new browser context on
    the live server (Chinese by default, as the site's users are)."""
    opened: list[Persona] = []

    def open_persona(locale: str = "zh-CN", width: int = 1280) -> Persona:
        persona = Persona(e2e_browser, live_server.url, locale, width)
        opened.append(persona)
        return persona

    yield open_persona
    for persona in opened:
        persona.close()


@dataclass
class Places:
    sichuan: object
    mianyang: object
    yanting: object
    huangxi: object
    jinlu: object


@pytest.fixture
def e2e_places(transactional_db):
    """Sichuan → Mianyang 绵阳市 → Yanting 盐亭县 → Huangxi 黄溪乡 → Jinlu 金鹿村."""
    from households.models import Area

    sichuan = Area.objects.create(code="510000", name="四川省", name_en="Sichuan", level=Area.Level.PROVINCE)
    mianyang = Area.objects.create(
        code="510700", name="绵阳市", name_en="Mianyang", level=Area.Level.CITY, parent=sichuan
    )
    yanting = Area.objects.create(
        code="510723", name="盐亭县", name_en="Yanting", level=Area.Level.COUNTY, parent=mianyang
    )
    huangxi = Area.objects.create(
        code="510723108", name="黄溪乡", name_en="Huangxi", level=Area.Level.TOWNSHIP, parent=yanting
    )
    jinlu = Area.objects.create(
        code="510723108201",
        name="金鹿村",
        name_en="Jinlu",
        level=Area.Level.VILLAGE,
        parent=huangxi,
        is_poor_village=True,
    )
    return Places(sichuan, mianyang, yanting, huangxi, jinlu)


def _user(username: str, email: str):
    from sun_commune.models import User

    user = User(username=username, email=email)
    user.set_password(PASSWORD)
    user.save()
    return user


@pytest.fixture
def e2e_secretary(e2e_places):
    """The first secretary of Jinlu village."""
    from sun_commune.models import RoleGrant

    user = _user("jinlu_shuji", "jinlu@example.org")
    RoleGrant.objects.create(user=user, role=RoleGrant.Role.SECRETARY, area=e2e_places.jinlu)
    return user


@pytest.fixture
def e2e_reviewer(e2e_places):
    """Staff of the Yanting county poverty-alleviation bureau."""
    from sun_commune.models import RoleGrant

    user = _user("yanting_fupinban", "fupinban@yanting.example.org")
    RoleGrant.objects.create(user=user, role=RoleGrant.Role.STAFF, area=e2e_places.yanting)
    return user


@pytest.fixture
def e2e_donor(transactional_db):
    """A donor from the city who chose to show her name, with her e-mail
    verified."""
    from donations.models import Donor
    from donations.services import donors

    from ..factories import verify

    user = _user("li_donor", "li.donor@example.org")
    donor = donors.register_donor(user=user, kind=Donor.Kind.PERSON, name="李女士", show_name=True)
    verify(user)
    donor.refresh_from_db()
    return donor


@pytest.fixture
def e2e_screenshot(tmp_path):
    """Take a full-page screenshot into tmp_path and keep a copy at
    /tmp/sun-journey.png for people to look at."""

    def take(page, name: str = "sun-journey.png") -> Path:
        path = tmp_path / name
        page.screenshot(path=str(path), full_page=True)
        shutil.copyfile(path, SCREENSHOT_COPY)
        return path

    return take
