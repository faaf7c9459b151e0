"""A need's life: draft → submitted → published or rejected (→ edited and
submitted again) → pledged → fulfilled; or expired past its deadline."""

import datetime

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone

from donations import tasks
from donations.models import Need, Pledge
from donations.services import needs, pledges
from sun_commune.errors import ActionRefused
from sun_commune.models import AuditEntry

from . import factories
from .factories import pledge


def test_a_draft_is_submitted_and_published(areas, secretary_a, county_reviewer, django_capture_on_commit_callbacks):
    need = factories.make_need(village=areas.village_a, by=secretary_a)
    assert need.status == Need.Status.DRAFT

    needs.submit_need(need_id=need.pk, by=secretary_a)
    with django_capture_on_commit_callbacks(execute=True):
        needs.publish_need(need_id=need.pk, by=county_reviewer)

    need.refresh_from_db()
    assert (need.status, need.reviewed_by) == (Need.Status.PUBLISHED, county_reviewer)
    assert need.published_at is not None
    [message] = mail.outbox
    assert message.to == [secretary_a.email]
    assert need.title in message.subject
    assert reverse("donations:need-detail", args=[need.pk]) in message.body


def test_the_secretary_submits_and_the_reviewer_publishes_through_the_pages(
    secretary_a, county_reviewer, client_of, django_capture_on_commit_callbacks
):
    deadline = (timezone.localdate() + datetime.timedelta(days=10)).isoformat()
    client_of(secretary_a).post(
        reverse("donations:need-create"),
        {
            "title": "电视",
            "description": "活动室",
            "category": "daily",
            "kind": "goods",
            "item": "电视",
            "quantity": "1",
            "deadline": deadline,
            "submit": "1",
        },
    )
    need = Need.objects.get()
    assert need.status == Need.Status.SUBMITTED

    reviewer = client_of(county_reviewer)
    assert need.title in reviewer.get(reverse("donations:review-list")).content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = reviewer.post(reverse("donations:need-review", args=[need.pk]), {"decision": "publish"})

    assert response.status_code == 302
    need.refresh_from_db()
    assert need.status == Need.Status.PUBLISHED
    assert len(mail.outbox) == 1


def test_a_rejected_need_is_edited_and_submitted_again(
    areas, secretary_a, county_reviewer, client_of, django_capture_on_commit_callbacks
):
    need = factories.make_need(village=areas.village_a, by=secretary_a, submit=True)
    with django_capture_on_commit_callbacks(execute=True):
        needs.reject_need(need_id=need.pk, by=county_reviewer, reason="写清楚是哪几户")
    need.refresh_from_db()
    assert (need.status, need.rejection_reason) == (Need.Status.REJECTED, "写清楚是哪几户")
    [message] = mail.outbox
    assert "写清楚是哪几户" in message.body
    assert reverse("donations:need-edit", args=[need.pk]) in message.body

    deadline = (timezone.localdate() + datetime.timedelta(days=10)).isoformat()
    response = client_of(secretary_a).post(
        reverse("donations:need-edit", args=[need.pk]),
        {
            "title": "三户的电热毯",
            "description": "三户",
            "category": "daily",
            "kind": "goods",
            "item": "电热毯",
            "quantity": "3",
            "unit": "床",
            "deadline": deadline,
            "submit": "1",
        },
    )

    assert response.status_code == 302
    need.refresh_from_db()
    assert (need.status, need.title, need.quantity, need.rejection_reason) == (
        Need.Status.SUBMITTED,
        "三户的电热毯",
        3,
        "",
    )
    assert {"三户", "电热"} <= set(need.search_terms)
    needs.publish_need(need_id=need.pk, by=county_reviewer)
    need.refresh_from_db()
    assert need.status == Need.Status.PUBLISHED


def test_a_published_need_cannot_be_edited(need_a, secretary_a, client_of):
    with pytest.raises(ActionRefused):
        needs.update_need(need_id=need_a.pk, by=secretary_a, submit=False, title="changed")

    response = client_of(secretary_a).post(reverse("donations:need-edit", args=[need_a.pk]), {"title": "changed"})

    assert response.status_code == 302
    need_a.refresh_from_db()
    assert need_a.title != "changed"


@pytest.mark.parametrize("action", ["publish", "reject"])
def test_only_a_submitted_need_is_reviewed(areas, secretary_a, county_reviewer, action):
    draft = factories.make_need(village=areas.village_a, by=secretary_a)

    with pytest.raises(ActionRefused):
        if action == "publish":
            needs.publish_need(need_id=draft.pk, by=county_reviewer)
        else:
            needs.reject_need(need_id=draft.pk, by=county_reviewer, reason="no")

    draft.refresh_from_db()
    assert draft.status == Need.Status.DRAFT


def test_a_need_past_its_deadline_is_not_published(areas, secretary_a, county_reviewer):
    need = factories.make_need(village=areas.village_a, by=secretary_a, submit=True)
    Need.objects.filter(pk=need.pk).update(deadline=timezone.localdate() - datetime.timedelta(days=1))

    with pytest.raises(ActionRefused):
        needs.publish_need(need_id=need.pk, by=county_reviewer)


def test_a_pledge_mails_the_secretary(need_a, donor, secretary_a, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        pledge(need_a, donor, 2, message="下周寄到")

    [message] = mail.outbox
    assert message.to == [secretary_a.email]
    assert "下周寄到" in message.body


def test_a_need_past_its_deadline_expires_and_releases_its_pledges(need_a, donor, other_donor, secretary_a):
    open_pledge = pledge(need_a, donor, 3)
    sent = pledge(need_a, other_donor, 2)
    pledges.mark_sent(pledge_id=sent.pk, by=other_donor)
    arrived = pledge(need_a, donor, 4)
    pledges.confirm_receipt(pledge_id=arrived.pk, by=secretary_a, quantity=4)
    cancelled = pledge(need_a, other_donor, 1)
    pledges.cancel_pledge(pledge_id=cancelled.pk, by=other_donor)
    Need.objects.filter(pk=need_a.pk).update(deadline=timezone.localdate() - datetime.timedelta(days=1))

    assert tasks.expire_overdue_needs() == 1

    need_a.refresh_from_db()
    assert (need_a.status, need_a.pledged_quantity, need_a.received_quantity) == (Need.Status.EXPIRED, 4, 4)
    statuses = dict(Pledge.objects.filter(need=need_a).values_list("pk", "status"))
    assert statuses == {
        open_pledge.pk: Pledge.Status.EXPIRED,
        sent.pk: Pledge.Status.EXPIRED,
        arrived.pk: Pledge.Status.RECEIVED,
        cancelled.pk: Pledge.Status.CANCELLED,
    }
    with pytest.raises(ActionRefused):
        pledge(need_a, donor, 1)

    audit_count = AuditEntry.objects.count()
    assert tasks.expire_overdue_needs() == 0
    needs.expire_need(need_id=need_a.pk)  # a retried task
    need_a.refresh_from_db()
    assert (need_a.status, need_a.pledged_quantity) == (Need.Status.EXPIRED, 4)
    assert AuditEntry.objects.count() == audit_count


def test_a_fully_pledged_need_expires_too(money_need_a, donor):
    pledge(money_need_a, donor, "1000")
    Need.objects.filter(pk=money_need_a.pk).update(deadline=timezone.localdate() - datetime.timedelta(days=3))

    tasks.expire_overdue_needs()

    money_need_a.refresh_from_db()
    assert (money_need_a.status, money_need_a.pledged_amount) == (Need.Status.EXPIRED, 0)


def test_a_need_due_today_does_not_expire(need_a):
    Need.objects.filter(pk=need_a.pk).update(deadline=timezone.localdate())

    assert tasks.expire_overdue_needs() == 0
    need_a.refresh_from_db()
    assert need_a.status == Need.Status.PUBLISHED


def test_a_fulfilled_need_is_closed_and_stays_public(need_a, donor, secretary_a, anonymous):
    p = pledge(need_a, donor, 10)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=10)

    needs.close_need(need_id=need_a.pk, by=secretary_a)
    needs.close_need(need_id=need_a.pk, by=secretary_a)

    need_a.refresh_from_db()
    assert need_a.status == Need.Status.CLOSED
    assert anonymous.get(reverse("donations:need-detail", args=[need_a.pk])).status_code == 200


def test_an_open_need_cannot_be_closed(need_a, secretary_a):
    with pytest.raises(ActionRefused):
        needs.close_need(need_id=need_a.pk, by=secretary_a)
