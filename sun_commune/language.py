"""The site's languages: Simplified Chinese first, English second."""

from django.conf import settings
from django.utils import translation


def in_site_language(text) -> str:
    """Text the platform itself writes into the database (a default unit, a
    ledger entry's purpose, a consent's basis) is kept in the site's language,
    whichever language the person acting chose: the signed public ledger
    never changes afterwards."""
    with translation.override(settings.LANGUAGE_CODE):
        return str(text)
