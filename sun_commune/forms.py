from django.contrib import messages
from django.contrib.auth.forms import PasswordResetForm
from django.db import transaction
from django.shortcuts import redirect

from . import audit, services, tasks
from .errors import ActionRefused
from .models import MailRequest


class QueuedPasswordResetForm(PasswordResetForm):
    """Sends the reset mail from Celery. The task gets the user's id and makes
    the link itself, so the token never sits in the queue. At most so many
    mails an hour go to one address or are asked for from one client
    (services.allow_typed_address_mail); the page after says the same
    whether a mail went, was capped, or the address is nobody's."""

    def save(self, request=None, **kwargs):
        email = self.cleaned_data["email"]
        client = audit.client_ip(request) if request is not None else None
        if not services.allow_typed_address_mail(kind=MailRequest.Kind.PASSWORD_RESET, email=email, client_ip=client):
            return
        for user in self.get_users(email):
            user_id = user.pk
            transaction.on_commit(lambda user_id=user_id: tasks.send_password_reset.delay(user_id=user_id))


# --- Forms that run an action -------------------------------------------------------
#
# The one way a view turns a posted form or button into a business action:
# the action raises ActionRefused before anything changes, and the person
# sees why, next to the field or as a message.


def act_on_form(request, form, act, *, success, next_url):
    """On a valid POST call ``act(form.cleaned_data)``. A refusal is shown next
    to its field and changes nothing; otherwise ``success`` is said and the
    answer redirects to ``next_url`` (a URL or URL name, or a callable given
    what ``act`` returned). Returns None when the form page is to be shown
    (again)."""
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        result = act(form.cleaned_data)
    except ActionRefused as refusal:
        refusal.add_to(form)
        return None
    messages.success(request, success)
    return redirect(next_url(result) if callable(next_url) else next_url)


def act_on_button(request, act, *, success) -> bool:
    """Call ``act()`` for a button that posts no fields: a refusal becomes an
    error message, otherwise ``success`` is said. True when it was done."""
    try:
        act()
    except ActionRefused as refusal:
        messages.error(request, refusal.message)
        return False
    messages.success(request, success)
    return True
