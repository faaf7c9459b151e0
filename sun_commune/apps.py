from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class SunCommuneConfig(AppConfig):
    name = "sun_commune"
    verbose_name = _("Sun Commune")
