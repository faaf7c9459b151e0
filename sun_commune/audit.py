"""Writing audit entries.

Services call :func:`record` inside their transaction. The client's address
comes from the request being served (set by :class:`AuditContextMiddleware`);
a Celery task or a management command has none and records ``None``.
"""

from contextvars import ContextVar
from decimal import Decimal

from django.conf import settings
from django.contrib.contenttypes.models import ContentType

from .models import AuditEntry

_client_ip: ContextVar[str | None] = ContextVar("audit_client_ip", default=None)


def client_ip(request) -> str | None:
    """The client's address; with TRUSTED_PROXY_COUNT proxies in front, the
    address the outermost trusted proxy saw."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        forwarded = [p.strip() for p in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if p.strip()]
        if len(forwarded) >= proxies:
            return forwarded[-proxies]
    return request.META.get("REMOTE_ADDR") or None


class AuditContextMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _client_ip.set(client_ip(request))
        try:
            return self.get_response(request)
        finally:
            _client_ip.reset(token)


def _plain(value):
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def record(*, actor, action: str, obj, changes: dict | None = None) -> AuditEntry:
    """Append one audit entry for ``obj``. Call it inside the transaction of
    the change it records, so both commit or neither does."""
    return AuditEntry.objects.create(
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        action=action,
        content_type=ContentType.objects.get_for_model(obj, for_concrete_model=True),
        object_id=str(obj.pk),
        ip_address=_client_ip.get(),
        changes=_plain(changes or {}),
    )
