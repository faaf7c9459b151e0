from celery import shared_task
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from .mail import send_to_user
from .models import AuditEntry


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def send_password_reset(*, user_id: int) -> None:
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None or not user.has_usable_password():
        return
    send_to_user(
        user,
        "emails/password_reset",
        {"uid": urlsafe_base64_encode(force_bytes(user.pk)), "token": default_token_generator.make_token(user)},
    )


@shared_task(autoretry_for=(OSError,), retry_backoff=True, max_retries=5)
def notify_lockout(*, entry_id: int) -> None:
    """Mail the site's staff (who can lift a lockout in the admin) that
    logging in was locked out for an account or an address."""
    entry = AuditEntry.objects.filter(pk=entry_id, action="login.locked_out").first()
    if entry is None:
        return
    staff = get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="")
    for user in staff:
        send_to_user(
            user, "emails/login_locked_out", {"entry": entry, "changes": entry.changes, "admin_url": settings.ADMIN_URL}
        )
