"""Refusals that leave a trace: separation of duties (nobody confirms or
records their own gift) and the limits on what a donor holds open.

A refused action rolls back whole, its audit entry with it; the entry that
says it was refused is written after the action's transaction has rolled
back, in the caller's, so that the refusal is kept and nothing else is.
"""

from functools import wraps

from sun_commune import audit
from sun_commune.errors import ActionRefused


class AuditedRefusal(ActionRefused):
    """An ``ActionRefused`` that is written to the audit log as ``action``."""

    def __init__(self, message, *, actor, action: str, obj, changes: dict | None = None, field: str | None = None):
        super().__init__(message, field=field)
        self.actor, self.action, self.obj, self.changes = actor, action, obj, changes or {}


def audits_refusals(service):
    """Put outside ``transaction.atomic``: an ``AuditedRefusal`` raised by
    ``service`` is recorded once its transaction has rolled back, then
    raised on."""

    @wraps(service)
    def wrapped(*args, **kwargs):
        try:
            return service(*args, **kwargs)
        except AuditedRefusal as refusal:
            audit.record(actor=refusal.actor, action=refusal.action, obj=refusal.obj, changes=refusal.changes)
            raise

    return wrapped


def same_person(user, donor) -> bool:
    """Whether ``user`` is ``donor``: the same account, or another account
    with the same e-mail address (a second login is still the same person)."""
    if user is None or donor is None:
        return False
    if donor.user_id == user.pk:
        return True
    mine = (user.email or "").strip().lower()
    return bool(mine) and (donor.user.email or "").strip().lower() == mine
