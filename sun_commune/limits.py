"""How large a request body each view accepts.

A 50 MB anonymous POST to the login page used to be read in full (and
parsed) before anything looked at it. Most forms here are a few fields of
text: every view accepts ``REQUEST_BODY_MAX_BYTES`` (kilobytes) unless it is
marked :func:`accepts_files`, and the admin ``ADMIN_BODY_MAX_BYTES``. A
larger ``Content-Length`` is answered 413 in ``process_view``, before the
CSRF check (the first thing that would read the body) and before the view.
A body without ``Content-Length`` is read by Django as empty, so it cannot
slip past.
"""

from django.conf import settings
from django.http import HttpResponse
from django.template.loader import render_to_string
from django.utils.translation import gettext as _


def accepts_files(max_bytes: int | None = None):
    """Mark a view that takes an upload: its body may hold ``max_bytes``
    (default: the largest photo, ``MAX_UPLOAD_BYTES``, plus the form around it)."""

    def mark(view):
        view.max_body_bytes = max_bytes if max_bytes is not None else settings.MAX_UPLOAD_BYTES + 256 * 1024
        return view

    return mark


def body_limit(request, view_func) -> int:
    limit = getattr(view_func, "max_body_bytes", None)
    if limit is not None:
        return limit
    match = getattr(request, "resolver_match", None)
    if match is not None and "admin" in match.namespaces:
        return settings.ADMIN_BODY_MAX_BYTES
    return settings.REQUEST_BODY_MAX_BYTES


class RequestBodyLimitMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0  # Django reads an unreadable length as an empty body
        limit = body_limit(request, view_func)
        if length <= limit:
            return None
        message = _("What you sent is too large (%(kb)s KB); this page accepts at most %(limit)s KB.") % {
            "kb": (length + 1023) // 1024,
            "limit": limit // 1024,
        }
        response = HttpResponse(
            render_to_string("413.html", {"message": message}, request=None), status=413, content_type="text/html"
        )
        # The body was never read: the connection cannot carry another request.
        response["Connection"] = "close"
        return response
