from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class SunCommuneConfig(AppConfig):
    name = "sun_commune"
    verbose_name = _("Sun Commune")

    def ready(self):
        from . import pagecache

        # A row of a table that kept pages read is saved or deleted: what is
        # kept is made old once the transaction commits (pagecache.py).
        post_save.connect(pagecache.row_changed, dispatch_uid="pagecache-save")
        post_delete.connect(pagecache.row_changed, dispatch_uid="pagecache-delete")
