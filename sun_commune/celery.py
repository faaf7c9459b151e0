import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sun_commune.settings")

app = Celery("sun_commune")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
