"""``{% kept name value… %}…{% endkept %}``: a part of a template kept in the
cache under the page version and the values given, which say what the
request asks (who is asking, the path): the rule is in sun_commune/pagecache.py.

Two things that differ from request to request are left as slots in the kept
copy and filled on the way out: the request's CSRF token (``{% csrf_token %}``
inside the part) and ``{{ kept_path }}``, the path of the page (the language
switch comes back to it). What the part reads is read only when it is
rendered: pass lazy values (a queryset, ``SimpleLazyObject``) to the page.
"""

from django import template
from django.utils.html import escape
from django.utils.safestring import mark_safe

from sun_commune import pagecache

register = template.Library()

_PATH = "\x00path\x00"


class KeptNode(template.Node):
    def __init__(self, nodelist, name, values):
        self.nodelist = nodelist
        self.name = name
        self.values = values

    def render(self, context):
        request = context.get("request")

        def render():
            with context.push(csrf_token=pagecache.CSRF_SLOT, kept_path=mark_safe(_PATH)):
                return self.nodelist.render(context)

        html = pagecache.keep(self.name, [v.resolve(context) for v in self.values], render, request=request)
        if request is not None:
            html = html.replace(_PATH, escape(pagecache.asked_path(request)))
        return mark_safe(html)


@register.tag
def kept(parser, token):
    bits = token.split_contents()
    if len(bits) < 2:
        raise template.TemplateSyntaxError("{% kept %} needs a name")
    nodelist = parser.parse(("endkept",))
    parser.delete_first_token()
    return KeptNode(nodelist, bits[1].strip("\"'"), [parser.compile_filter(bit) for bit in bits[2:]])
