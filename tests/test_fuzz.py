"""A fuzz pass over the URL conf: no input makes a 500.

Every URL pattern of the site (the Django admin aside: it is Django's own)
is asked with each path parameter filled with an id of a small world and
with junk — a NUL byte, an overlong string, a word where a number goes, a
negative and a huge number — as an anonymous visitor, a first secretary,
county staff, a donor and a cooperative's manager, with the query
parameters the views read set to junk too. Then every form found on the
pages is posted with each of its fields set to each junk value. Any answer
is fine but a 500: a 4xx or a page or a redirect.
"""

from html.parser import HTMLParser
from urllib.parse import urlencode, urlsplit

import pytest
from django.test import Client

from . import url_support
from .url_support import fill, params, routes

url_world = url_support.url_world  # the fixture, for this module

NUL = "\x00"
JUNK = [NUL, f"1{NUL}", "x" * 5000, "abc", "-1", "99999999999999999999", "1.5", ""]
QUERY_JUNK = [NUL, "x" * 5000, "-1", "99999999999999999999"]
# Query parameters views read straight from request.GET (the rest are the
# fields of GET forms, found on the pages).
QUERY_NAMES = ["after", "area", "format", "household", "village", "q"]
# Posting these would end the client's session or leave the site.
SKIP_ACTIONS = ("/accounts/logout/",)


class _Forms(HTMLParser):
    """The forms of a page: method, action, enctype and field names."""

    def __init__(self):
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "form":
            self.forms.append(
                {
                    "method": (attrs.get("method") or "get").lower(),
                    "action": attrs.get("action") or "",
                    "multipart": attrs.get("enctype") == "multipart/form-data",
                    "fields": set(),
                }
            )
        elif tag in ("input", "select", "textarea", "button") and self.forms and attrs.get("name"):
            if attrs["name"] != "csrfmiddlewaretoken":
                self.forms[-1]["fields"].add(attrs["name"])


def _forms(response) -> list[dict]:
    if "text/html" not in response.get("Content-Type", ""):
        return []
    parser = _Forms()
    parser.feed(response.content.decode(response.charset or "utf-8", "replace"))
    return parser.forms


def _client(user) -> Client:
    client = Client(raise_request_exception=False)
    if user is not None:
        client.force_login(user)
    return client


def _check(failures, response, what):
    if response.status_code >= 500:
        failures.append(
            f"{response.status_code} {what}: {getattr(response, 'exc_info', None) and response.exc_info[1]!r}"
        )


def _urls(world: dict) -> tuple[list[str], list[str], list[str]]:
    """The URLs with valid values (the first of each route, and the others),
    and those with junk in one parameter."""
    valid, others, junk = [], [], []
    for route in routes():
        route_params = params(route)
        if not route_params:
            valid.append(fill(route, {}))
            continue
        good = {name: (world["ids"][0] if conv == "int" else world["codes"][0]) for conv, name in route_params}
        valid.append(fill(route, good))
        for conv, name in route_params:
            for value in world["ids"][1:] if conv == "int" else world["codes"][1:]:
                others.append(fill(route, {**good, name: value}))
            for value in JUNK:
                if conv == "int" and not value.isdigit():
                    continue  # the converter refuses it: a 404 from the resolver
                if value:
                    junk.append(fill(route, {**good, name: value.replace(NUL, "%00")}))
    return sorted(set(valid)), sorted(set(others) - set(valid)), sorted(set(junk))


@pytest.mark.django_db
def test_no_input_makes_a_500(url_world):
    world = url_world
    failures: list[str] = []
    valid, others, junk = _urls(world)
    asked = 0
    for who, user in world["users"].items():
        client = _client(user)
        forms = {}
        for url in valid + others:
            response = client.get(url)
            _check(failures, response, f"GET {url} as {who}")
            for form in _forms(response):
                action = form["action"] or url
                if urlsplit(action).netloc or action.startswith(SKIP_ACTIONS):
                    continue
                key = (form["method"], urlsplit(action).path, frozenset(form["fields"]))
                forms.setdefault(key, form | {"action": action})
            if url in others:
                continue
            for value in QUERY_JUNK:
                response = client.get(url, {name: value for name in QUERY_NAMES})
                _check(failures, response, f"GET {url}?…={value[:8]!r} as {who}")
        for url in junk:
            _check(failures, client.get(url), f"GET {url} as {who}")
        asked += len(valid) * (1 + len(QUERY_JUNK)) + len(others) + len(junk)
        for (method, path, fields), form in forms.items():
            for value in JUNK:
                data = {name: value for name in fields}
                if method == "get":
                    response = client.get(path, data)
                elif form["multipart"]:
                    response = client.post(path, data)
                else:
                    response = client.post(path, urlencode(data), content_type="application/x-www-form-urlencoded")
                _check(failures, response, f"{method.upper()} {path} {sorted(fields)}={value[:8]!r} as {who}")
                asked += 1
            if user is not None:
                client.force_login(user)  # in case a form ended the session
    print(f"fuzz: {len(valid) + len(others)} URLs, {len(junk)} with junk, {asked} requests")
    assert asked > 2000
    assert failures == [], "\n".join(failures[:40])
