from django.apps import AppConfig, apps
from django.db.models.signals import post_delete, post_save
from django.utils.translation import gettext_lazy as _


class SunCommuneConfig(AppConfig):
    name = "sun_commune"
    verbose_name = _("Sun Commune")

    def ready(self):
        from . import pagecache, throttle  # noqa: F401 -- throttle connects the lockout receiver

        # A row of a table that kept pages read is saved or deleted: what is
        # kept is made old once the transaction commits (pagecache.py).
        # Connected per model: a receiver for every sender would also turn
        # off Django's fast delete (one DELETE ... WHERE) for every model.
        for model in apps.get_models():
            if model._meta.db_table in pagecache.PAGE_TABLES:
                uid = model._meta.label_lower
                post_save.connect(pagecache.row_changed, sender=model, dispatch_uid=f"pagecache-save-{uid}")
                post_delete.connect(pagecache.row_changed, sender=model, dispatch_uid=f"pagecache-delete-{uid}")
