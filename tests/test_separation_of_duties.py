"""DESIGN.md rule 9, nobody approves, confirms or records their own act
(issue 14, finding 3: self-dealing). A first secretary with a donor profile
pledged goods to their own village and confirmed the receipt themselves;
county staff pledged ¥100 and recorded it paid as ``SELF-NO-TRANSFER-1``;
staff recorded a ¥1,000,000 gift naming a registered donor who knew nothing
of it. Every refusal is audited and changes nothing else."""

import datetime
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone

from donations.models import GiftClaim, LedgerTransaction, Pledge
from donations.services import donors, money, pledges
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .factories import pledge

pytestmark = pytest.mark.usefixtures("english")  # messages read in English


def as_donor(user, name="Self dealer"):
    """Give ``user`` (a secretary or staff) a verified donor profile."""
    donors.register_donor(user=user, kind="person", name=name, show_name=False)
    factories.verify(user)
    return user


def state(p: Pledge):
    p.refresh_from_db()
    p.need.refresh_from_db()
    return (p.status, p.received_quantity, p.received_amount, p.need.received_quantity, p.need.received_amount)


def test_nobody_pledges_to_a_need_they_posted_themselves(need_a, secretary_a):
    as_donor(secretary_a)

    with pytest.raises(ActionRefused) as refused:
        pledge(need_a, secretary_a, 10)

    assert "posted this need yourself" in str(refused.value.message)
    need_a.refresh_from_db()
    assert need_a.pledged_quantity == 0 and not Pledge.objects.exists()
    [entry] = AuditEntry.objects.filter(action="pledge.refused_own_need")
    assert entry.actor == secretary_a and entry.object_id == str(need_a.pk)


def test_a_secretary_cannot_confirm_the_receipt_of_their_own_pledge(areas, secretary_a, county_reviewer, en_client_of):
    """The issue's secretary: a donor profile, goods pledged to a need of
    their own village (posted by the village's other secretary), the receipt
    confirmed by themselves. No ledger entry is written."""
    colleague = factories.make_secretary(areas.village_a, username="colleague")
    need = factories.published_need(
        village=areas.village_a, by=colleague, reviewer=county_reviewer, unit_price=Decimal("10000.00")
    )
    as_donor(secretary_a)
    p = pledge(need, secretary_a, 10)  # ¥100,000 of goods
    before = state(p)

    with pytest.raises(ActionRefused) as refused:
        pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=10)
    assert "your own pledge" in str(refused.value.message)
    response = en_client_of(secretary_a).post(reverse("donations:pledge-confirm", args=[p.pk]), {"quantity": 10})
    assert response.status_code == 200
    assert "your own pledge" in response.content.decode()

    assert state(p) == before
    assert not LedgerTransaction.objects.filter(pledge=p).exists()
    entries = AuditEntry.objects.filter(action="pledge.refused_own_receipt", object_id=str(p.pk))
    assert entries.count() == 2 and {e.actor for e in entries} == {secretary_a}

    # Someone else may confirm it.
    pledges.confirm_receipt(pledge_id=p.pk, by=colleague, quantity=10)
    assert state(p)[0] == Pledge.Status.RECEIVED


def test_staff_cannot_record_the_transfer_of_their_own_pledge(money_need_a, county_reviewer, areas, en_client_of):
    """The issue's ¥100 recorded as paid with reference SELF-NO-TRANSFER-1."""
    as_donor(county_reviewer)
    p = pledge(money_need_a, county_reviewer, Decimal("100"))
    before = state(p)

    with pytest.raises(ActionRefused) as refused:
        pledges.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="100", reference="SELF-NO-TRANSFER-1")
    assert "your own pledge" in str(refused.value.message)
    response = en_client_of(county_reviewer).post(
        reverse("donations:money-record", args=[p.pk]), {"amount": "100", "reference": "SELF-NO-TRANSFER-1"}
    )
    assert response.status_code == 200 and "your own pledge" in response.content.decode()

    assert state(p) == before
    assert not LedgerTransaction.objects.filter(reference="SELF-NO-TRANSFER-1").exists()
    assert AuditEntry.objects.filter(action="pledge.refused_own_money", actor=county_reviewer).count() == 2

    other_staff = factories.make_staff(areas.yanting, username="other_staff")
    pledges.record_money_received(pledge_id=p.pk, by=other_staff, amount="100", reference="ICBC-REAL-1")
    assert state(p)[0] == Pledge.Status.RECEIVED


def test_a_second_account_with_the_same_email_is_the_same_person(money_need_a, areas):
    staff = factories.make_staff(areas.yanting, username="staff_one", email="same.person@example.org")
    second = factories.make_donor(username="staff_one_donor", email="Same.Person@example.org")
    p = pledge(money_need_a, second, Decimal("100"))

    with pytest.raises(ActionRefused):
        pledges.record_money_received(pledge_id=p.pk, by=staff, amount="100", reference="SELF-NO-TRANSFER-2")
    assert state(p)[0] == Pledge.Status.PLEDGED


def test_a_refusal_inside_the_callers_transaction_keeps_only_its_audit_entry(
    need_a, donor, secretary_a, areas, county_reviewer
):
    colleague = factories.make_secretary(areas.village_a, username="colleague")
    need = factories.published_need(village=areas.village_a, by=colleague, reviewer=county_reviewer)
    as_donor(secretary_a)
    p = pledge(need, secretary_a, 2)
    entries = AuditEntry.objects.count()

    with pytest.raises(ActionRefused):
        pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2, note="arrived")

    assert AuditEntry.objects.count() == entries + 1
    p.refresh_from_db()
    assert p.receipt_note == "" and p.received_by is None


# --- Gifts in a registered donor's name need the donor's word -------------------------


def test_a_gift_staff_record_in_a_donors_name_is_recorded_by_staff_until_the_donor_confirms(
    areas, county_reviewer, donor, other_donor, en_client_of, django_capture_on_commit_callbacks
):
    """The issue's ¥1,000,000 gift naming a donor who knew nothing of it."""
    from django.core import mail

    with django_capture_on_commit_callbacks(execute=True):
        gift = money.record_gift(
            by=county_reviewer,
            area=areas.yanting,
            amount="1000000",
            reference="CCB-GIFT-1",
            occurred_on=timezone.localdate(),
            donor=donor.donor_profile,
        )

    assert gift.donor_id is None  # the ledger names nobody on staff's word
    claim = GiftClaim.objects.get(transaction=gift)
    assert (claim.donor, claim.status, claim.recorded_by) == (
        donor.donor_profile,
        GiftClaim.Status.PENDING,
        county_reviewer,
    )
    assert [m for m in mail.outbox if m.to == [donor.email]]
    audit_page = en_client_of(county_reviewer).get(reverse("donations:ledger-audit")).content.decode()
    assert "Recorded by staff, awaiting the donor" in audit_page

    mine = en_client_of(donor).get(reverse("donations:my-pledges")).content.decode()
    confirm_url = reverse("donations:gift-claim-decide", args=[claim.pk, "confirm"])
    assert confirm_url in mine

    # Nobody else can answer for the donor: not another donor, not staff.
    assert en_client_of(other_donor).post(confirm_url).status_code == 404
    with pytest.raises(ActionRefused):
        money.decide_gift_claim(claim_id=claim.pk, by=county_reviewer, confirm=True)
    assert AuditEntry.objects.filter(action="gift.refused_decision", actor=county_reviewer).count() == 1
    claim.refresh_from_db()
    assert claim.status == GiftClaim.Status.PENDING

    assert en_client_of(donor).post(confirm_url).status_code == 302
    claim.refresh_from_db()
    assert claim.status == GiftClaim.Status.CONFIRMED and claim.decided_at is not None
    assert AuditEntry.objects.filter(action="gift.confirmed", actor=donor).count() == 1
    # The kept "My pledges" shows the answer at once (the claims advance the page version).
    assert confirm_url not in en_client_of(donor).get(reverse("donations:my-pledges")).content.decode()
    assert (
        "Confirmed by the donor"
        in en_client_of(county_reviewer).get(reverse("donations:ledger-audit")).content.decode()
    )
    # Once answered, the other answer is refused.
    with pytest.raises(ActionRefused):
        money.decide_gift_claim(claim_id=claim.pk, by=donor, confirm=False)


def test_a_donor_disputes_a_gift_they_did_not_give(areas, county_reviewer, donor, en_client_of):
    gift = money.record_gift(
        by=county_reviewer,
        area=areas.yanting,
        amount="500",
        reference="CCB-GIFT-2",
        occurred_on=timezone.localdate() - datetime.timedelta(days=1),
        donor=donor.donor_profile,
    )
    claim = gift.claim

    en_client_of(donor).post(reverse("donations:gift-claim-decide", args=[claim.pk, "dispute"]))

    claim.refresh_from_db()
    assert claim.status == GiftClaim.Status.DISPUTED
    assert en_client_of(donor).post(reverse("donations:gift-claim-decide", args=[claim.pk, "other"])).status_code == 404


def test_staff_cannot_record_a_gift_in_their_own_name(areas, county_reviewer):
    as_donor(county_reviewer)

    with pytest.raises(ActionRefused) as refused:
        money.record_gift(
            by=county_reviewer,
            area=areas.yanting,
            amount="100",
            reference="SELF-GIFT-1",
            occurred_on=timezone.localdate(),
            donor=county_reviewer.donor_profile,
        )

    assert refused.value.field == "donor"
    assert not LedgerTransaction.objects.filter(reference="SELF-GIFT-1").exists()
    assert AuditEntry.objects.filter(action="ledger.refused_own_gift", actor=county_reviewer).count() == 1


def test_a_gift_without_a_named_donor_needs_no_confirmation(areas, county_reviewer):
    gift = money.record_gift(
        by=county_reviewer, area=areas.yanting, amount="100", reference="CASH-1", occurred_on=timezone.localdate()
    )
    assert not GiftClaim.objects.filter(transaction=gift).exists()
