"""The story of the project brief, in a real browser.

Huang Guoji (黄国基) is a sick old man in Jinlu village (金鹿村), Huangxi
township, Yanting county, Mianyang. The village's first secretary registers
his household and posts that he needs an electric blanket for the winter;
the Yanting county bureau vets and publishes the need; a donor finds it in
the needs supermarket and pledges it; the secretary confirms it arrived,
with a photo; and anyone can then see that the need was fulfilled — without
ever seeing the old man's name.

Pages are driven by URLs, ids and form field names, never by Chinese text
(the translations may change); where a test compares a visible label, it
computes the label with Django's own translation machinery.
"""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.translation import gettext
from playwright.sync_api import expect

from .conftest import PASSWORD

pytestmark = pytest.mark.e2e

HEAD_NAME = "黄国基"
HEALTH_NOTES = "慢性支气管炎，冬天怕冷"
ALIAS = "黄家"
TITLE = "黄家冬天需要一床电热毯"
DESCRIPTION = "黄大爷年老多病，独自生活，屋里冬天很冷，需要一床电热毯过冬。"


def zh(label) -> str:
    """A label as a Chinese visitor sees it (whatever is compiled right now)."""
    with translation.override("zh-hans"):
        return str(label)


def log_in(page, username: str) -> None:
    """Log in through the login page, as a person would."""
    page.goto(reverse("login"))
    form = page.locator("main form")
    form.locator("input[name=username]").fill(username)
    form.locator("input[name=password]").fill(PASSWORD)
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("home")) + "$"))
    expect(page.locator("nav .navbar-text")).to_have_text(username)


def expect_success(page) -> None:
    expect(page.locator("main .alert-success")).to_be_visible()


def test_electric_blanket_for_huang_guoji(
    e2e_persona, e2e_places, e2e_secretary, e2e_reviewer, e2e_donor, e2e_screenshot, tmp_path
):
    from PIL import Image

    from donations.models import Need, Pledge
    from households.models import Household

    deadline = timezone.localdate() + timedelta(days=30)

    # --- 1. The Jinlu first secretary registers Huang Guoji and posts his need.
    secretary = e2e_persona()
    page = secretary.page
    log_in(page, e2e_secretary.username)
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    # Bootstrap is served (from node_modules, through the static files).
    assert page.evaluate("getComputedStyle(document.querySelector('nav.navbar')).display") == "flex"

    page.locator(f'nav a[href="{reverse("households:household-list")}"]').click()
    page.locator(f'main a[href^="{reverse("households:household-create")}"]').click()
    form = page.locator("main form")
    form.locator("input[name=head_name]").fill(HEAD_NAME)
    form.locator("input[name=phone]").fill("13800001234")
    form.locator("input[name=address]").fill("金鹿村三组12号")
    form.locator("textarea[name=health_notes]").fill(HEALTH_NOTES)
    form.locator("input[name=size]").fill("1")
    form.locator("input[name=poverty_causes][value=illness]").check()
    form.locator("input[name=poverty_causes][value=labour]").check()
    form.locator("input[name=alias]").fill(ALIAS)
    form.locator("input[name=alias_consent]").check()
    # Consent is recorded with its basis (who agreed, how).
    form.locator("input[name=consent_basis]").fill("本人签字同意书，存村委会")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"/households/(\d+)/$"))
    expect_success(page)
    household_pk = int(re.search(r"/households/(\d+)/$", page.url).group(1))
    household = Household.objects.get(pk=household_pk)
    assert household.village == e2e_places.jinlu
    assert household.head_name == HEAD_NAME
    assert household.public_label == ALIAS

    page.locator(f'nav a[href="{reverse("donations:village-needs")}"]').click()
    expect(page).to_have_url(re.compile(re.escape(reverse("donations:village-needs")) + "$"))
    page.locator(f'main a[href^="{reverse("donations:need-create")}"]').click()
    form = page.locator("main form")
    form.locator("select[name=household]").select_option(value=str(household_pk))
    form.locator("input[name=title]").fill(TITLE)
    form.locator("textarea[name=description]").fill(DESCRIPTION)
    form.locator("select[name=category]").select_option(value=Need.Category.DAILY)
    form.locator("select[name=kind]").select_option(value=Need.Kind.GOODS)
    form.locator("input[name=item]").fill("电热毯")
    form.locator("input[name=quantity]").fill("1")
    form.locator("input[name=unit]").fill("床")
    form.locator("input[name=unit_price]").fill("159")
    form.locator("input[name=deadline]").fill(deadline.isoformat())
    form.locator("button[name=submit]").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("donations:village-needs")) + "$"))
    expect_success(page)
    expect(page.locator("main table")).to_contain_text(TITLE)

    need = Need.objects.get(title=TITLE)
    assert need.status == Need.Status.SUBMITTED
    assert (need.village, need.township, need.county) == (e2e_places.jinlu, e2e_places.huangxi, e2e_places.yanting)
    assert need.household_id == household_pk
    assert (need.item, need.quantity, need.unit, need.unit_price) == ("电热毯", 1, "床", Decimal("159.00"))
    assert need.deadline == deadline
    assert need.created_by == e2e_secretary

    # --- 2. The Yanting county bureau vets and publishes it.
    reviewer = e2e_persona()
    page = reviewer.page
    log_in(page, e2e_reviewer.username)
    page.locator(f'nav a[href="{reverse("donations:review-list")}"]').click()
    page.locator(f'main a[href="{reverse("donations:need-review", args=[need.pk])}"]').click()
    expect(page.locator("main h1")).to_have_text(TITLE)
    page.locator("button[name=decision][value=publish]").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("donations:review-list")) + "$"))
    expect_success(page)
    need.refresh_from_db()
    assert need.status == Need.Status.PUBLISHED
    assert need.reviewed_by == e2e_reviewer

    # --- 3. A donor finds it in the supermarket and pledges it.
    donor = e2e_persona()
    page = donor.page
    log_in(page, e2e_donor.user.username)
    page.locator(f'nav a[href="{reverse("donations:supermarket")}"]').click()
    search = page.locator("main form[role=search]")
    search.locator("input[name=q]").fill("电热毯")
    search.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(r"[?&]q=%E7%94%B5%E7%83%AD%E6%AF%AF"))
    result = page.locator(f'main a[href="{reverse("donations:need-detail", args=[need.pk])}"]')
    expect(result).to_have_text(TITLE)
    expect(page.locator("main .need-card")).to_have_count(1)
    result.click()
    expect(page).to_have_url(re.compile(re.escape(reverse("donations:need-detail", args=[need.pk])) + "$"))
    expect(page.locator("#need-status")).to_have_text(zh(Need.Status.PUBLISHED.label))
    pledge_form = page.locator(f'main form[action="{reverse("donations:pledge-create", args=[need.pk])}"]')
    pledge_form.locator("input[name=quantity]").fill("1")
    pledge_form.locator("input[name=message]").fill("祝黄大爷身体健康，冬天暖和！")
    pledge_form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("donations:my-pledges")) + "$"))
    expect_success(page)
    mine = page.locator("main .list-group-item", has_text=TITLE)
    expect(mine).to_have_count(1)
    expect(mine.locator(".pledge-status")).to_have_text(zh(Pledge.Status.PLEDGED.label))

    pledge = Pledge.objects.get(need=need)
    assert (pledge.donor, pledge.status, pledge.quantity) == (e2e_donor, Pledge.Status.PLEDGED, 1)
    assert pledge.declared_value == Decimal("159.00")
    need.refresh_from_db()
    assert need.status == Need.Status.FULLY_PLEDGED

    # --- 4. The blanket arrives; the secretary confirms it with a photo.
    photo = tmp_path / "blanket.png"
    Image.new("RGB", (64, 48), (200, 40, 40)).save(photo)
    page = secretary.page
    page.locator(f'nav a[href="{reverse("donations:village-needs")}"]').click()
    page.locator(f'main a[href="{reverse("donations:pledge-confirm", args=[pledge.pk])}"]').click()
    form = page.locator("main form[enctype='multipart/form-data']")
    form.locator("input[name=quantity]").fill("1")
    form.locator("input[name=photo]").set_input_files(str(photo))
    form.locator("input[name=note]").fill("电热毯已送到黄大爷家")
    form.locator("button[type=submit]").click()
    expect(page).to_have_url(re.compile(re.escape(reverse("donations:village-needs")) + "$"))
    expect_success(page)

    pledge.refresh_from_db()
    need.refresh_from_db()
    assert pledge.status == Pledge.Status.RECEIVED
    assert pledge.received_quantity == 1
    assert pledge.received_by == e2e_secretary
    assert pledge.photo and pledge.photo.name.endswith(".jpg")  # re-encoded, metadata stripped
    assert need.status == Need.Status.FULFILLED
    assert (need.pledged_quantity, need.received_quantity) == (1, 1)

    # The donor is told it arrived; the mail never names the old man.
    to_donor = [m for m in mail.outbox if e2e_donor.user.email in m.to]
    assert to_donor, [m.subject for m in mail.outbox]
    for message in to_donor:
        assert HEAD_NAME not in message.subject + message.body

    # --- 5. Anyone can see it was fulfilled, and not who he is.
    visitor = e2e_persona()
    page = visitor.page
    page.goto(reverse("donations:need-detail", args=[need.pk]))
    expect(page.locator("main h1")).to_have_text(TITLE)
    expect(page.locator("#fulfilled-note")).to_be_visible()
    expect(page.locator("#need-status")).to_have_text(zh(Need.Status.FULFILLED.label))
    expect(page.locator("main")).to_contain_text(ALIAS)
    html = page.content()
    for private in (HEAD_NAME, HEALTH_NOTES, "13800001234", "金鹿村三组12号"):
        assert private not in html, f"private data on the public page: {private}"
    e2e_screenshot(page)

    for persona in (secretary, reviewer, donor, visitor):
        assert persona.problems == []


def test_language_switch(e2e_persona, transactional_db):
    visitor = e2e_persona()
    page = visitor.page
    page.goto(reverse("home"))
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    supermarket_link = page.locator(f'nav a[href="{reverse("donations:supermarket")}"]')

    page.locator("nav button[name=language][value=en]").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(supermarket_link).to_have_text("Needs supermarket")
    expect(page.locator("nav button[name=language][value=zh-hans]")).to_have_text("简体中文")

    page.locator("nav button[name=language][value=zh-hans]").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-hans")
    with translation.override("zh-hans"):
        expect(supermarket_link).to_have_text(gettext("Needs supermarket"))
    expect(page.locator("nav button[name=language][value=en]")).to_have_text("English")

    assert visitor.problems == []
