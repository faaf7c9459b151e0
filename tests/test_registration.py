"""Finding 13 of issue 14: registering and inviting say nothing about which
accounts exist. Registration answers "check your e-mail" whatever was typed;
a new account is activated from the link; the owner of an address already
in use is told someone tried. A secretary's invitation reads the same
whether or not a donor has the login typed."""

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.messages import get_messages
from django.core import mail
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from donations.models import Donor, Pairing

from . import factories

pytestmark = pytest.mark.django_db

User = get_user_model()


def register(client, username, email):
    return client.post(
        reverse("donations:donor-register"),
        {
            "username": username,
            "email": email,
            "password1": "plum-river-lantern",
            "password2": "plum-river-lantern",
            "kind": "person",
            "name": "王先生",
            "phone": "13800000000",
        },
    )


def answer(response, email):
    """What the visitor sees, less the address they typed."""
    text = response.content.decode()
    sent = re.search(r'id="register-sent">(.*?)</p>', text, re.S)
    return (
        response.status_code,
        [t.name for t in response.templates][0],
        sent and sent.group(1).replace(email.lower(), "…"),
    )


@pytest.fixture
def existing(db):
    return factories.make_donor(username="chenxm", email="chen@example.org", name="陈晓梅")


def test_registering_a_taken_email_or_username_answers_as_a_new_one_does(existing, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        fresh = register(Client(), "newcomer", "new@example.org")
        taken_email = register(Client(), "someone", "Chen@Example.org")
        taken_name = register(Client(), "ChenXM", "other@example.org")

    assert answer(fresh, "new@example.org") == answer(taken_email, "Chen@Example.org")
    assert answer(fresh, "new@example.org") == answer(taken_name, "other@example.org")
    assert answer(fresh, "new@example.org")[0] == 200 and answer(fresh, "new@example.org")[2]
    # Only the new account exists (closed until its link is used); the owner
    # of the taken address is told; nobody is mailed about a taken username.
    assert set(User.objects.values_list("username", flat=True)) == {"chenxm", "newcomer"}
    assert not User.objects.get(username="newcomer").is_active
    assert sorted(m.to[0] for m in mail.outbox) == ["chen@example.org", "new@example.org"]
    warning = next(m for m in mail.outbox if m.to == ["chen@example.org"])
    assert "chenxm" in warning.body and "/accounts/password-reset/" in warning.body


def test_the_link_activates_the_account_once_and_only_by_post(db, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        register(Client(), "newcomer", "new@example.org")
    link = re.search(r"http://\S+/donors/register/confirm/\S+/", mail.outbox[0].body).group(0)
    path = link.split("8000", 1)[-1] if "8000" in link else "/" + link.split("/", 3)[3]
    client = Client()

    assert client.get(path).status_code == 200
    assert not User.objects.get(username="newcomer").is_active  # a GET changes nothing

    response = client.post(path)

    user = User.objects.get(username="newcomer")
    assert response.status_code == 302 and response["Location"] == reverse("donations:supermarket")
    assert user.is_active and Donor.objects.filter(user=user, name="王先生").exists()
    assert client.get(reverse("donations:my-pledges")).status_code == 200  # logged in
    again = Client().post(path)
    assert again["Location"] == reverse("donations:donor-register")


def test_a_registration_with_a_bad_password_still_says_what_is_wrong(db):
    response = Client().post(
        reverse("donations:donor-register"),
        {"username": "x", "email": "x@example.org", "password1": "a", "password2": "b", "kind": "person", "name": "x"},
    )

    assert response.status_code == 200 and response.context["form"].errors
    assert not User.objects.exists()


def test_inviting_says_the_same_whether_or_not_the_donor_exists(areas, secretary_a, existing, client_of):
    household = factories.HouseholdFactory(village=areas.village_a)
    terms = {"household": household.pk, "start_date": timezone.localdate().isoformat(), "commitment": "money"}
    terms["amount"] = "300.00"

    answers = []
    for login in ("nobody-at-all", "chen@example.org"):
        response = client_of(secretary_a).post(reverse("donations:pairing-invite"), {"donor": login, **terms})
        answers.append(
            (response.status_code, response["Location"], [str(m) for m in get_messages(response.wsgi_request)])
        )

    assert answers[0] == answers[1]
    assert Pairing.objects.get().donor.user == existing


@pytest.mark.parametrize("uidb64", ["%00", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "MA", "-"])
def test_a_wrong_link_answers_with_a_message_not_an_error(db, uidb64):
    path = f"/donors/register/confirm/{uidb64}/abc-def/"
    if uidb64 == "%00":  # a NUL byte in any path is refused first, with its message
        assert Client().get(path).status_code == Client().post(path).status_code == 400
        return

    assert Client().get(path).status_code == 200
    assert Client().post(path)["Location"] == reverse("donations:donor-register")
