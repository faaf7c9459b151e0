"""Mail to users, rendered in their language from a subject and a body
template. Called from Celery tasks only, never inside a request."""

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string
from django.utils import translation


def send_to_user(user, template: str, context: dict) -> bool:
    """Render ``template``_subject.txt and ``template``.txt for ``user`` and send.
    Returns False when the user has no address."""
    if not user.email:
        return False
    with translation.override(user.language or settings.LANGUAGE_CODE):
        context = {"user": user, "site_url": settings.SITE_URL, **context}
        subject = " ".join(render_to_string(f"{template}_subject.txt", context).split())
        body = render_to_string(f"{template}.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [user.email])
    return True
