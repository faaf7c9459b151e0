"""``{% kept name value… %}…{% endkept %}``: a part of a template rendered
once for each set of values and language, then taken from the cache.

The layout's navigation is the same on every page a person opens (their
name, their roles, the language switch) but cost a fifth of a small page
to render: {% url %} ten times, two forms, the language list. Kept under
the values that decide it, it is rendered once per person and language.
The two things in it that differ from page to page are left as slots and
filled on the way out: the CSRF token of the request (``{% csrf_token %}``
inside the block), and ``{{ kept_path }}``, the path of the page (the
language switch comes back to it).

``{% kept name value… while_unchanged %}`` keeps a part that shows rows a
logged-in person sees like everyone else (a need's pledges and ledger
entries) under the page version as well: the same guarantee as a public
page kept whole (sun_commune/pagecache.py), and the same life, at most
``PAGE_CACHE_SECONDS``. What it reads is then not read at all while it is
kept."""

import hashlib

from django import template
from django.conf import settings
from django.utils.html import escape
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

from sun_commune import pagecache
from sun_commune.fragments import CSRF_SLOT, FRAGMENT_SECONDS, _template_version, kept_get, kept_set, with_token

register = template.Library()

_PATH = "\x00path\x00"


class KeptNode(template.Node):
    # Not searched for {% block %}s: Django looks for them in the whole base
    # layout on every render of a page that extends it, and the navigation
    # inside is most of its nodes (a block inside a kept part could not be
    # overridden anyway: the part is rendered once for every page).
    child_nodelists = ()

    def __init__(self, nodelist, name, values, template_name, while_unchanged=False):
        self.nodelist = nodelist
        self.name = name
        self.values = values
        self.template_name = template_name
        self.while_unchanged = while_unchanged

    def render(self, context):
        request = context.get("request")
        values = [v.resolve(context) for v in self.values]
        seconds = FRAGMENT_SECONDS
        if self.while_unchanged:
            seconds = settings.PAGE_CACHE_SECONDS
            if seconds <= 0:  # the page cache is off: rendered every time
                return self.nodelist.render(context)
            values.append(("page version", _page_version(request)))
        digest = hashlib.blake2b(repr(values).encode(), digest_size=16).hexdigest()
        version = _template_version(self.template_name) if self.template_name else ""
        key = f"fragment:kept:{self.name}:{version}:{get_language() or ''}:{digest}"
        html = kept_get(key, seconds, exact_life=self.while_unchanged)
        if html is None:
            with context.push(csrf_token=CSRF_SLOT, kept_path=mark_safe(_PATH)):
                html = self.nodelist.render(context)
            kept_set(key, html, seconds)
        if request is not None:
            html = with_token(html, request).replace(_PATH, escape(request.get_full_path()))
        return mark_safe(html)


def _page_version(request) -> int:
    """The page version, read once per request (every kept part of a page
    under the same one)."""
    if request is None:
        return pagecache.version()
    version = getattr(request, "_sun_page_version", None)
    if version is None:
        version = request._sun_page_version = pagecache.version()
    return version


@register.tag
def kept(parser, token):
    bits = token.split_contents()
    while_unchanged = bits[-1] == "while_unchanged"
    if while_unchanged:
        bits = bits[:-1]
    if len(bits) < 2:
        raise template.TemplateSyntaxError("{% kept %} needs a name")
    nodelist = parser.parse(("endkept",))
    parser.delete_first_token()
    origin = getattr(parser, "origin", None)
    return KeptNode(
        nodelist,
        bits[1].strip("\"'"),
        [parser.compile_filter(bit) for bit in bits[2:]],
        getattr(origin, "template_name", None),
        while_unchanged,
    )
