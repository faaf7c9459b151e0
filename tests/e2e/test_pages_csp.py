"""Every page of each role under the Content-Security-Policy, on a phone.

The personas report anything the policy blocked (conftest.CSP_WATCH) and any
page without the header; each page is also taken as a 390-pixel-wide
screenshot (/tmp/sun-390-*.png) to look at, and the progress bars, which
take their width from classes now, are checked to have it.
"""

from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from households.models import ImportJob

from .. import factories
from .conftest import PASSWORD

pytestmark = pytest.mark.e2e

PHONE = 390


def log_in(page, username: str) -> None:
    page.goto(reverse("login"))
    form = page.locator("main form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page.locator("nav .navbar-text")).to_be_attached()


def walk(persona, name: str, paths: list[str], tmp_path: Path) -> None:
    for n, path in enumerate(paths):
        response = persona.page.goto(path)
        assert response.status == 200, path
        expect(persona.page.locator("main")).to_be_visible()
        shot = f"sun-390-{name}-{n}.png"
        persona.page.screenshot(path=str(tmp_path / shot), full_page=True)
        (Path("/tmp") / shot).write_bytes((tmp_path / shot).read_bytes())


def test_no_page_breaks_the_policy_on_a_phone(
    e2e_persona, e2e_places, e2e_secretary, e2e_reviewer, e2e_donor, tmp_path
):
    jinlu = e2e_places.jinlu
    household = factories.HouseholdFactory(village=jinlu, alias="黄家", alias_consent=True)
    need = factories.published_need(village=jinlu, by=e2e_secretary, reviewer=e2e_reviewer, household=household)
    pledge = factories.pledge(need, e2e_donor.user, 4)
    job = ImportJob.objects.create(area=e2e_places.yanting, filename="x.csv", created_by=e2e_reviewer)

    visitor = e2e_persona(width=PHONE)
    walk(
        visitor,
        "visitor",
        [
            reverse("home"),
            reverse("donations:supermarket"),
            reverse("donations:need-detail", args=[need.pk]),
            reverse("donations:ledger-list"),
            reverse("donations:ledger-about"),
            reverse("village-public", args=[jinlu.code]),
            reverse("cooperatives:cooperative-list"),
            reverse("donations:pairing-stats"),
            reverse("login"),
            reverse("donations:donor-register"),
        ],
        tmp_path,
    )
    visitor.page.goto(reverse("donations:need-detail", args=[need.pk]))
    bar = visitor.page.locator(".progress-stacked .progress").nth(1)
    assert bar.bounding_box()["width"] > 10  # 40% on the way: the class gives it its width

    donor = e2e_persona(width=PHONE)
    log_in(donor.page, e2e_donor.user.username)
    walk(
        donor,
        "donor",
        [
            reverse("donations:my-pledges"),
            reverse("donations:pledge-detail", args=[pledge.pk]),
            reverse("donations:my-pairings"),
            reverse("donations:pairing-request") + f"?household={household.public_id}",
        ],
        tmp_path,
    )

    secretary = e2e_persona(width=PHONE)
    log_in(secretary.page, e2e_secretary.username)
    walk(
        secretary,
        "secretary",
        [
            reverse("households:household-list"),
            reverse("households:household-detail", args=[household.pk]),
            reverse("households:household-history", args=[household.pk]),
            reverse("donations:village-needs"),
            reverse("donations:need-create"),
            reverse("donations:village-pairings"),
        ],
        tmp_path,
    )

    reviewer = e2e_persona(width=PHONE)
    log_in(reviewer.page, e2e_reviewer.username)
    walk(
        reviewer,
        "reviewer",
        [
            reverse("donations:review-list"),
            reverse("donations:money-list"),
            reverse("donations:ledger-audit"),
            reverse("households:report"),
            reverse("households:import-list"),
            reverse("households:import-detail", args=[job.pk]),
        ],
        tmp_path,
    )
    # The import page's script (a static file) polls the job's status.
    with reviewer.page.expect_response(lambda r: "/status.json" in r.url, timeout=10_000):
        pass
    # The collapsed menu opens (Bootstrap's script runs under the policy).
    reviewer.page.locator(".navbar-toggler").click()
    expect(reviewer.page.locator("#nav")).to_be_visible()

    for persona in (visitor, donor, secretary, reviewer):
        assert persona.problems == [], persona.problems
    assert len(visitor.pages) >= 10


def test_the_watch_reports_what_the_policy_blocks(e2e_persona, transactional_db):
    """The check above can fail: an inline style set on a page is reported."""
    visitor = e2e_persona(width=PHONE)
    visitor.page.goto(reverse("home"))
    visitor.page.evaluate("document.body.setAttribute('style', 'color: red')")
    visitor.page.wait_for_timeout(300)
    assert any("style-src" in problem for problem in visitor.problems), visitor.problems
