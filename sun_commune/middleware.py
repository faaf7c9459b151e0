"""Two rules every response follows, whatever the view.

- A NUL byte anywhere in what the request asks — the path, the query string,
  a posted form's fields — is refused with a 400 and a translated page before
  a view reads it: PostgreSQL cannot hold one in a string, so it could only
  end in a 500, and no form of the site has a use for one.
- A page for a logged-in person, or one sent with a session, may show
  private data: unless the view chose its caching (a download's
  ``Cache-Control``), it is marked ``private, no-store`` so that no proxy or
  browser history keeps it.
"""

from django.conf import settings
from django.shortcuts import render
from django.utils.cache import patch_vary_headers

PRIVATE = "private, no-store"
# Only a plain form's body is read here: an upload (multipart) is left to
# the view and its limits, and its fields to the forms, whose text fields
# refuse a NUL themselves.
FORM_TYPE = "application/x-www-form-urlencoded"


def _has_nul(data) -> bool:
    return any("\x00" in key or any("\x00" in value for value in values) for key, values in data.lists())


class RejectNulMiddleware:
    """The path and query string are looked at first; a form's body only in
    ``process_view``, after the body's size was checked against the view's
    limit (sun_commune.limits, earlier in MIDDLEWARE), so that nothing here
    reads a body that is to be refused unread."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if "\x00" in request.path_info or _has_nul(request.GET):
            return _refuse(request)
        return self.get_response(request)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method == "POST" and request.content_type == FORM_TYPE and _has_nul(request.POST):
            return _refuse(request)
        return None


def _refuse(request):
    return render(request, "400.html", status=400)


def _private(request) -> bool:
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_authenticated) or settings.SESSION_COOKIE_NAME in request.COOKIES


class PrivatePagesMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if "Cache-Control" not in response and _private(request):
            response["Cache-Control"] = PRIVATE
            patch_vary_headers(response, ("Cookie",))
        return response
