"""Celery tasks of the register: they take ids, look the rows up, return
quietly when the rows are gone, and call the code that does the work."""

from celery import shared_task

from . import reports
from .models import Area


# It opens its own outermost transaction: the outbox runs it outside one.
@shared_task(acks_late=True, outbox_commits_itself=True)
def run_import(*, job_id: int) -> None:
    """Check and import an uploaded file (households.importing.run): a run
    that dies half-way rolls back whole, and a second run finds the job
    finished."""
    from . import importing  # noqa: PLC0415 -- deferred: importing imports tasks

    importing.run(job_id)


@shared_task
def refresh_register_figures(*, area_id: int | None = None) -> int:
    """The village figures of the reports, for one area, or (beat, nightly)
    for every tree of areas."""
    if area_id is None:
        areas = list(Area.objects.filter(parent__isnull=True))
    else:
        areas = list(Area.objects.filter(pk=area_id))
    return sum(reports.refresh_figures(area) for area in areas)
