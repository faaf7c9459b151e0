from django.apps import AppConfig


class PortalConfig(AppConfig):
    """The top app: the pages and tools that bring every app together (the
    home page and its statistics, a village's public page, the user loader,
    the navigation's roles, the demo loader, the URLs). It may import every
    app; no app imports it."""

    name = "portal"
