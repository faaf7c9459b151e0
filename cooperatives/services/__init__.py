"""Every action that changes a cooperative, its members, shares, loans,
purchases or distributions, one module per concept: ``coops`` (the
cooperative, its enterprises and managers), ``register`` (members and
shares), ``loans``, ``purchases`` and ``distributions``. Callers import the
module (``from cooperatives.services import loans``); nothing is re-exported
here.

Each function is one business action: atomic, locking what it changes,
writing its audit entry in the same transaction, and enqueueing mail only
after commit. Rows are locked in one order — the cooperative, then members
by id, then a loan before its installments, a distribution line before its
distribution — so that concurrent actions cannot deadlock.

Access (role and area) is checked by the views through ``access``; these
functions check the state of things, and the two that are a role's own act
(approving a distribution, granting the manager role) check the role too.
Audit entries carry ids and figures, never a member's or household's name.
"""
