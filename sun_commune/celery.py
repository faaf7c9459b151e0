import os

from celery import Celery
from celery.signals import worker_ready

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sun_commune.settings")

app = Celery("sun_commune")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@worker_ready.connect
def drain_outbox_on_start(sender, **kwargs):
    """A worker that starts sends again what waited in the outbox (tasks
    enqueued while the broker was down, or lost with it), without waiting
    for beat. Sent as a task, so it runs in a pool's process."""
    sender.app.send_task("sun_commune.outbox.drain_outbox")
