"""Access logs without the query string.

The household register's searches are GET forms (``?id_number=…``,
``?q=<a name>``), and so are other staff lists (``?household=…``): a
request line or a Referer with its query string would write ID numbers and
names into every access log line, and from there into log shipping and
backups. The logs keep the method, the path, the status and the timing —
what operations need — and never a query string, on any path: a list of
"private" paths would have to be kept in step with every new form, and the
Referer carries the previous page's query to every request that follows it.

``AccessLogger`` is gunicorn's logger (``ops/gunicorn.conf.py``);
``DropQueryString`` is a logging filter for Django's own server log
(``django.server``, the development server's request lines).
"""

import logging
from urllib.parse import urlsplit, urlunsplit

from gunicorn.glogging import Logger

# The atoms of gunicorn's access log that can hold a URL with its query.
_URL_ATOMS = ("f", "{referer}i", "{http_referer}e", "{location}o", "{raw_uri}e", "{request_uri}e")
_QUERY_ATOMS = ("q", "{query_string}e")


def without_query(url: str) -> str:
    """``url`` (absolute or a path) without its query string or fragment."""
    if not url or ("?" not in url and "#" not in url):
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url.split("?", 1)[0].split("#", 1)[0]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def request_line(line: str) -> str:
    """``GET /path?query HTTP/1.1`` → ``GET /path HTTP/1.1``."""
    parts = line.split(" ")
    if len(parts) >= 2:
        parts[1] = without_query(parts[1])
    return " ".join(parts)


class AccessLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        atoms["r"] = request_line(atoms.get("r") or "")
        for name in _URL_ATOMS:
            if atoms.get(name):
                atoms[name] = without_query(atoms[name])
        for name in _QUERY_ATOMS:
            if name in atoms:
                atoms[name] = ""
        return atoms


class DropQueryString(logging.Filter):
    """For ``django.server``: its message's first argument is the request line."""

    def filter(self, record):
        if record.args and isinstance(record.args, tuple) and isinstance(record.args[0], str):
            record.args = (request_line(record.args[0]), *record.args[1:])
        return True
