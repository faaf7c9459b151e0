"""Login throttling: django-axes, counting failed logins in PostgreSQL.

Two independent limits within ``LOGIN_LOCKOUT_MINUTES``: so many wrong
passwords for one account (from any address), and more from one client
address (for any accounts; a village office or a carrier's NAT puts many
people behind one address). Reaching either refuses logging in for that
account, or from that address, until the window has passed, with the login
page saying so (status 429). Each lockout is written to the audit log once
and the site's staff are mailed (``services.record_lockout``).

Axes compares one count with one limit (``AXES_FAILURE_LIMIT``, the
account's); :meth:`LoginThrottle.get_failures` sets the address's count
against it, shifted by the difference of the two limits, so that the one
comparison answers "has either reached its own limit".
"""

from axes.handlers.database import AxesDatabaseHandler
from axes.helpers import get_client_username
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.db.models import Sum
from django.dispatch import receiver
from django.shortcuts import render
from django.utils import timezone


def failures(request, credentials=None) -> tuple[int, int]:
    """Failed logins in the window: (for this account, from this address)."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    recent = AccessAttempt.objects.filter(attempt_time__gte=since)

    def total(**match) -> int:
        return recent.filter(**match).aggregate(n=Sum("failures_since_start"))["n"] or 0

    username = get_client_username(request, credentials)
    address = getattr(request, "axes_ip_address", None)
    return (total(username=username) if username else 0, total(ip_address=address) if address else 0)


class LoginThrottle(AxesDatabaseHandler):
    def get_failures(self, request, credentials=None) -> int:
        by_account, by_address = failures(request, credentials)
        head_start = settings.LOGIN_FAILURES_PER_ADDRESS - settings.LOGIN_FAILURES_PER_ACCOUNT
        return max(by_account, by_address - head_start)


def lockout_response(request, original_response=None, credentials=None):
    """The login page again, saying why logging in is refused (429)."""
    username = get_client_username(request, credentials) or ""
    form = AuthenticationForm(request, initial={"username": username})
    return render(
        request,
        "registration/login.html",
        {"form": form, "locked_out": True, "lockout_minutes": settings.LOGIN_LOCKOUT_MINUTES},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )


@receiver(user_locked_out, dispatch_uid="sun-commune-lockout")
def _locked_out(sender, request, username=None, ip_address=None, **kwargs):
    from . import services  # noqa: PLC0415 -- leaf: services are imported after the apps are ready

    by_account, by_address = failures(request)
    services.record_lockout(
        username=username or "",
        client_ip=ip_address,
        account=by_account >= settings.LOGIN_FAILURES_PER_ACCOUNT,
        address=by_address >= settings.LOGIN_FAILURES_PER_ADDRESS,
    )
