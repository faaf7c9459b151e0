"""Every action that changes a donor, a need, a pledge, the ledger or a
pairing, one module per concept: ``donors``, ``needs``, ``pledges``,
``money`` (the ledger outside a pledge) and ``pairings``. Callers import the
module (``from donations.services import pledges``); nothing is re-exported
here.

Each function is one business action: atomic, locking what it changes,
writing its audit entry in the same transaction, and enqueueing mail only
after commit.

Access (role and area) is checked by the views through the access helpers
before they call in here; these functions check the state of things.
"""
