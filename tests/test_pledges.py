"""Pledges: over-pledging (rule 1), cancelling, arrival of goods and money."""

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.conf import settings
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import IntegrityError, transaction
from django.db.models import F
from django.urls import reverse
from PIL import Image

from donations.models import Need, Pledge
from donations.services import pledges
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from .factories import pledge


def counters(need):
    need.refresh_from_db()
    return (need.status, need.pledged_quantity, need.received_quantity, need.pledged_amount, need.received_amount)


# --- Rule 1: never over-pledged ------------------------------------------------


def test_it_refuses_more_than_remains(need_a, donor, other_donor):
    pledge(need_a, donor, 7)
    before = counters(need_a)
    pledges_before = Pledge.objects.count()

    with pytest.raises(ActionRefused) as refused:
        pledge(need_a, other_donor, 4)

    assert refused.value.field == "quantity"
    assert "3" in str(refused.value.message)
    assert counters(need_a) == before
    assert Pledge.objects.count() == pledges_before


def test_it_refuses_more_money_than_remains(money_need_a, donor):
    pledge(money_need_a, donor, Decimal("999.99"))
    before = counters(money_need_a)

    with pytest.raises(ActionRefused) as refused:
        pledge(money_need_a, donor, Decimal("0.02"))

    assert refused.value.field == "amount"
    assert counters(money_need_a) == before


def test_the_last_unit_makes_the_need_fully_pledged_and_closes_it(need_a, donor, other_donor):
    pledge(need_a, donor, 10)

    assert counters(need_a)[:2] == (Need.Status.FULLY_PLEDGED, 10)
    with pytest.raises(ActionRefused):
        pledge(need_a, other_donor, 1)


def test_the_database_refuses_an_over_pledged_quantity(need_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        Need.objects.filter(pk=need_a.pk).update(pledged_quantity=F("quantity") + 1)

    assert counters(need_a)[1] == 0


def test_the_database_refuses_an_over_pledged_amount(money_need_a):
    with pytest.raises(IntegrityError), transaction.atomic():
        Need.objects.filter(pk=money_need_a.pk).update(pledged_amount=F("target_amount") + Decimal("0.01"))


# --- Cancelling gives back ------------------------------------------------------


def test_cancelling_gives_the_quantity_back(need_a, donor):
    p = pledge(need_a, donor, 10)
    assert counters(need_a)[:2] == (Need.Status.FULLY_PLEDGED, 10)

    pledges.cancel_pledge(pledge_id=p.pk, by=donor)

    assert counters(need_a)[:2] == (Need.Status.PUBLISHED, 0)
    p.refresh_from_db()
    assert p.status == Pledge.Status.CANCELLED


def test_cancelling_twice_is_harmless(need_a, donor):
    p = pledge(need_a, donor, 4)
    pledge(need_a, donor, 3)
    pledges.cancel_pledge(pledge_id=p.pk, by=donor)
    audit_count = AuditEntry.objects.count()

    pledges.cancel_pledge(pledge_id=p.pk, by=donor)

    assert counters(need_a)[:2] == (Need.Status.PUBLISHED, 3)
    assert AuditEntry.objects.count() == audit_count


def test_cancelling_a_sent_pledge_gives_back(need_a, donor):
    p = pledge(need_a, donor, 4)
    pledges.mark_sent(pledge_id=p.pk, by=donor)

    pledges.cancel_pledge(pledge_id=p.pk, by=donor)

    assert counters(need_a)[1] == 0


def test_it_refuses_to_cancel_a_received_pledge(need_a, donor, secretary_a):
    p = pledge(need_a, donor, 4)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=4)
    before = counters(need_a)

    with pytest.raises(ActionRefused):
        pledges.cancel_pledge(pledge_id=p.pk, by=donor)

    assert counters(need_a) == before
    p.refresh_from_db()
    assert p.status == Pledge.Status.RECEIVED


def test_cancel_view_gives_back(need_a, donor, client_of):
    p = pledge(need_a, donor, 10)

    response = client_of(donor).post(reverse("donations:pledge-cancel", args=[p.pk]))

    assert response.status_code == 302
    assert counters(need_a)[:2] == (Need.Status.PUBLISHED, 0)


# --- Confirming that goods arrived -------------------------------------------


def test_pledging_from_the_need_page_reads_the_need_once(need_a, donor, client_of):
    """The page's own read of the need is the service's input check; the
    conditional UPDATE is what guards the counter (see the concurrency tests)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    client = client_of(donor)
    with CaptureQueriesContext(connection) as ctx:
        response = client.post(reverse("donations:pledge-create", args=[need_a.pk]), {"quantity": 2, "message": ""})
    assert response.status_code == 302
    reads = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith('SELECT "donations_need"')]
    assert len(reads) == 1
    need_a.refresh_from_db()
    assert need_a.pledged_quantity == 2 and need_a.pledges.get().quantity == 2


def test_a_partial_arrival_releases_the_shortfall(need_a, donor, secretary_a):
    p = pledge(need_a, donor, 10)

    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=6)

    status, pledged, received, *_ = counters(need_a)
    assert (status, pledged, received) == (Need.Status.PUBLISHED, 6, 6)
    p.refresh_from_db()
    assert (p.status, p.received_quantity, p.received_by) == (Pledge.Status.RECEIVED, 6, secretary_a)


def test_a_full_arrival_fulfils_the_need(need_a, donor, other_donor, secretary_a):
    first = pledge(need_a, donor, 4)
    second = pledge(need_a, other_donor, 6)
    pledges.confirm_receipt(pledge_id=first.pk, by=secretary_a, quantity=4)
    assert counters(need_a)[0] == Need.Status.FULLY_PLEDGED

    pledges.confirm_receipt(pledge_id=second.pk, by=secretary_a, quantity=6)

    assert counters(need_a)[:3] == (Need.Status.FULFILLED, 10, 10)
    need_a.refresh_from_db()
    assert need_a.fulfilled_at is not None


def test_confirming_twice_does_not_count_twice(need_a, donor, secretary_a):
    p = pledge(need_a, donor, 5)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=5)
    before = counters(need_a)
    audit_count = AuditEntry.objects.count()

    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=5)

    assert counters(need_a) == before
    assert AuditEntry.objects.count() == audit_count


def test_it_refuses_more_than_was_pledged(need_a, donor, secretary_a):
    p = pledge(need_a, donor, 5)

    with pytest.raises(ActionRefused) as refused:
        pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=6)

    assert refused.value.field == "quantity"
    assert counters(need_a)[1:3] == (5, 0)


def png_with_exif() -> bytes:
    image = Image.new("RGB", (64, 48), (200, 120, 40))
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x8825] = {1: "N", 2: (31.0, 13.0, 0.0), 3: "E", 4: (105.0, 23.0, 0.0)}  # GPS position
    out = io.BytesIO()
    image.save(out, format="PNG", exif=exif)
    return out.getvalue()


def test_it_refuses_an_upload_that_is_not_a_photo(need_a, donor, secretary_a, client_of):
    p = pledge(need_a, donor, 5)
    before = counters(need_a)
    audit_count = AuditEntry.objects.count()
    upload = SimpleUploadedFile("photo.jpg", b"%PDF-1.4 not an image at all", content_type="image/jpeg")

    response = client_of(secretary_a).post(
        reverse("donations:pledge-confirm", args=[p.pk]), {"quantity": "5", "photo": upload, "note": ""}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["photo"]
    assert 'id="error_1_id_photo"' in response.content.decode()  # shown under the field
    assert counters(need_a) == before
    assert AuditEntry.objects.count() == audit_count
    p.refresh_from_db()
    assert p.status == Pledge.Status.PLEDGED
    assert not p.photo


def test_it_stores_a_photo_as_jpeg_without_metadata_outside_the_code(need_a, donor, secretary_a, client_of):
    p = pledge(need_a, donor, 5)
    original = png_with_exif()
    with Image.open(io.BytesIO(original)) as image:
        assert image.getexif().get_ifd(0x8825)  # the upload does carry a GPS position
    upload = SimpleUploadedFile("arrival.png", original, content_type="image/png")

    response = client_of(secretary_a).post(
        reverse("donations:pledge-confirm", args=[p.pk]), {"quantity": "5", "photo": upload, "note": "到了"}
    )

    assert response.status_code == 302
    p.refresh_from_db()
    assert p.status == Pledge.Status.RECEIVED
    stored = Path(p.photo.path)
    assert stored.is_relative_to(Path(settings.MEDIA_ROOT))
    assert not stored.resolve().is_relative_to(Path(settings.BASE_DIR).resolve())
    data = stored.read_bytes()
    assert data.startswith(b"\xff\xd8")
    with Image.open(io.BytesIO(data)) as image:
        assert image.format == "JPEG"
        assert not image.getexif()
    # The donor may see it; the photo is served by a view that checks who asks.
    photo = client_of(donor).get(reverse("donations:pledge-photo", args=[p.pk]))
    assert photo.status_code == 200
    assert b"".join(photo.streaming_content).startswith(b"\xff\xd8")


# --- Money --------------------------------------------------------------------


def test_it_records_money_received_with_its_reference(money_need_a, donor, county_reviewer):
    p = pledge(money_need_a, donor, Decimal("300.00"))

    pledges.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300", reference="ICBC-0001")

    p.refresh_from_db()
    assert (p.status, p.received_amount, p.transfer_reference) == (
        Pledge.Status.RECEIVED,
        Decimal("300.00"),
        "ICBC-0001",
    )
    assert counters(money_need_a)[3:] == (Decimal("300.00"), Decimal("300.00"))


def test_the_same_reference_twice_is_a_no_op(money_need_a, donor, county_reviewer):
    p = pledge(money_need_a, donor, Decimal("300.00"))
    pledges.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300", reference="ICBC-0001")
    before = counters(money_need_a)
    audit_count = AuditEntry.objects.count()

    again = pledges.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300", reference="ICBC-0001")

    assert again.pk == p.pk
    assert counters(money_need_a) == before
    assert AuditEntry.objects.count() == audit_count


def test_it_refuses_a_reference_already_used_for_another_pledge(money_need_a, donor, other_donor, county_reviewer):
    first = pledge(money_need_a, donor, Decimal("300.00"))
    second = pledge(money_need_a, other_donor, Decimal("200.00"))
    pledges.record_money_received(pledge_id=first.pk, by=county_reviewer, amount="300", reference="ICBC-0001")
    before = counters(money_need_a)

    with pytest.raises(ActionRefused) as refused:
        pledges.record_money_received(pledge_id=second.pk, by=county_reviewer, amount="200", reference="ICBC-0001")

    assert refused.value.field == "reference"
    assert counters(money_need_a) == before
    second.refresh_from_db()
    assert (second.status, second.transfer_reference) == (Pledge.Status.PLEDGED, None)


def test_it_refuses_more_money_than_was_pledged(money_need_a, donor, county_reviewer):
    p = pledge(money_need_a, donor, Decimal("300.00"))

    with pytest.raises(ActionRefused) as refused:
        pledges.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="300.01", reference="ICBC-0002")

    assert refused.value.field == "amount"
    p.refresh_from_db()
    assert p.status == Pledge.Status.PLEDGED
    assert counters(money_need_a)[3:] == (Decimal("300.00"), Decimal("0.00"))


def test_the_money_form_shows_a_used_reference_next_to_the_field(
    money_need_a, donor, other_donor, county_reviewer, client_of
):
    first = pledge(money_need_a, donor, Decimal("300.00"))
    second = pledge(money_need_a, other_donor, Decimal("200.00"))
    pledges.record_money_received(pledge_id=first.pk, by=county_reviewer, amount="300", reference="ICBC-0001")

    response = client_of(county_reviewer).post(
        reverse("donations:money-record", args=[second.pk]), {"amount": "200", "reference": "ICBC-0001"}
    )

    assert response.status_code == 200
    assert response.context["form"].errors["reference"]
    second.refresh_from_db()
    assert second.status == Pledge.Status.PLEDGED


def test_all_the_money_arriving_fulfils_the_need(money_need_a, donor, county_reviewer):
    p = pledge(money_need_a, donor, Decimal("1000.00"))

    pledges.record_money_received(pledge_id=p.pk, by=county_reviewer, amount="1000.00", reference="ABC-1")

    assert counters(money_need_a)[0] == Need.Status.FULFILLED


def test_the_donor_sees_a_household_arrival_photo_only_while_the_household_consents(
    areas, donor, secretary_a, county_reviewer, client_of
):
    from households.services import create_household, record_consent

    from .factories import published_need

    household = create_household(
        by=secretary_a, village=areas.village_a, head_name="黄国基", photo_consent=True, consent_basis="signed form"
    )
    need = published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=household)
    p = pledge(need, donor, 1)
    upload = SimpleUploadedFile("arrival.png", png_with_exif(), content_type="image/png")
    client_of(secretary_a).post(reverse("donations:pledge-confirm", args=[p.pk]), {"quantity": "1", "photo": upload})
    url = reverse("donations:pledge-photo", args=[p.pk])
    assert client_of(donor).get(url).status_code == 200

    record_consent(by=secretary_a, household_id=household.pk, subject="photo", granted=False, basis="asked to stop")

    assert client_of(donor).get(url).status_code == 404
    assert client_of(secretary_a).get(url).status_code == 200  # the village still keeps its record
    assert url not in client_of(donor).get(reverse("donations:my-pledges")).content.decode()
