"""Donors, needs (the supermarket) and pledges.

A need counts what was pledged and what arrived in columns of its own, kept
by the services in the same transaction as each pledge change. CHECK
constraints make over-pledging impossible in PostgreSQL itself, whatever the
Python code does.
"""

import calendar
import datetime
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import Case, F, Q, When
from django.db.models.functions import Cast, Floor
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from households.models import Area

MONEY = {"max_digits": 14, "decimal_places": 2}


class Donor(models.Model):
    class Kind(models.TextChoices):
        PERSON = "person", _("Person")
        ENTERPRISE = "enterprise", _("Enterprise")
        ORGANISATION = "organisation", _("Social organisation")

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="donor")
    kind = models.CharField(_("donor type"), max_length=16, choices=Kind, default=Kind.PERSON)
    name = models.CharField(_("name"), max_length=100)
    show_name = models.BooleanField(
        _("show my name publicly"),
        default=False,
        help_text=_('Otherwise the public sees "anonymous donor".'),
    )
    phone = models.CharField(_("phone"), max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The address the donor proved they read (by the signed link mailed to
    # it); a change of the account's e-mail makes them unverified again.
    verified_email = models.CharField(max_length=254, blank=True, default="", db_default="", editable=False)
    verified_at = models.DateTimeField(null=True, blank=True, editable=False)
    verification_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("donor")
        verbose_name_plural = _("donors")

    def __str__(self):
        return self.name

    @property
    def public_name(self) -> str:
        return self.name if self.show_name else str(_("Anonymous donor"))

    @property
    def email_verified(self) -> bool:
        """True while the account's current e-mail is the one verified."""
        email = (self.user.email or "").strip().lower()
        return bool(email) and self.verified_email.lower() == email


def area_q(area: Area) -> Q:
    """Needs in ``area`` or below, on the denormalised columns (one index each)."""
    column = {
        Area.Level.VILLAGE: "village_id",
        Area.Level.TOWNSHIP: "township_id",
        Area.Level.COUNTY: "county_id",
    }.get(area.level)
    if column:
        return Q(**{column: area.pk})
    return Q(village__path__startswith=area.path)


class NeedQuerySet(models.QuerySet):
    def public(self):
        return self.filter(status__in=Need.PUBLIC_STATUSES)

    def within(self, area: Area):
        return self.filter(area_q(area))

    def within_any(self, areas):
        if not areas:
            return self.none()
        q = Q()
        for area in areas:
            q |= area_q(area)
        return self.filter(q)


class Need(models.Model):
    class Category(models.TextChoices):
        INDUSTRY = "industry", _("Industrial project")
        INFRASTRUCTURE = "infrastructure", _("Infrastructure")
        TECHNOLOGY = "technology", _("Production technology")
        DAILY = "daily", _("Daily necessities")
        EDUCATION = "education", _("Education")
        MEDICAL = "medical", _("Medical")
        OTHER = "other", _("Other")

    class Kind(models.TextChoices):
        GOODS = "goods", _("Goods")
        MONEY = "money", _("Money")
        SERVICE = "service", _("Service")

    class Status(models.TextChoices):
        DRAFT = "draft", _("Draft")
        SUBMITTED = "submitted", _("Awaiting review")
        REJECTED = "rejected", _("Rejected")
        PUBLISHED = "published", _("Open for pledges")
        FULLY_PLEDGED = "fully_pledged", _("Fully pledged")
        FULFILLED = "fulfilled", _("Fulfilled")
        EXPIRED = "expired", _("Expired")
        CLOSED = "closed", _("Closed")

    PUBLIC_STATUSES = (Status.PUBLISHED, Status.FULLY_PLEDGED, Status.FULFILLED, Status.EXPIRED, Status.CLOSED)
    EDITABLE_STATUSES = (Status.DRAFT, Status.REJECTED)

    village = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="needs", verbose_name=_("village"))
    township = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="+", editable=False)
    county = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="+", editable=False)
    household = models.ForeignKey(
        "households.Household",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="needs",
        verbose_name=_("household"),
        help_text=_("Leave empty for a need of the whole village."),
    )
    title = models.CharField(_("title"), max_length=80)
    description = models.TextField(_("description"), max_length=4000)
    category = models.CharField(_("category"), max_length=16, choices=Category)
    kind = models.CharField(_("kind"), max_length=8, choices=Kind)
    # Goods and service: so many units (items, or hours of service).
    item = models.CharField(_("item"), max_length=80, blank=True)
    unit = models.CharField(_("unit"), max_length=16, blank=True)
    quantity = models.PositiveIntegerField(_("quantity"), null=True, blank=True)
    unit_price = models.DecimalField(_("estimated unit price (yuan)"), null=True, blank=True, **MONEY)
    pledged_quantity = models.PositiveIntegerField(default=0, editable=False)
    received_quantity = models.PositiveIntegerField(default=0, editable=False)
    # Money: a target in yuan.
    target_amount = models.DecimalField(_("target amount (yuan)"), null=True, blank=True, **MONEY)
    pledged_amount = models.DecimalField(default=Decimal("0.00"), editable=False, **MONEY)
    received_amount = models.DecimalField(default=Decimal("0.00"), editable=False, **MONEY)
    # Progress in thousandths of what is needed, for "closest to complete".
    progress = models.GeneratedField(
        expression=Case(
            When(
                kind="money", then=Cast(Floor(F("pledged_amount") * 1000 / F("target_amount")), models.IntegerField())
            ),
            default=F("pledged_quantity") * 1000 / F("quantity"),
            output_field=models.IntegerField(),
        ),
        output_field=models.IntegerField(),
        db_persist=True,
    )

    deadline = models.DateField(_("needed by"))
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.DRAFT)
    rejection_reason = models.TextField(_("reason for rejection"), blank=True)
    # Character unigrams and bigrams of the text: finds any Chinese word of one
    # or more characters through a GIN index (see sun_commune.search).
    search_terms = ArrayField(models.CharField(max_length=8), default=list, editable=False)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    published_at = models.DateTimeField(null=True, blank=True)
    fulfilled_at = models.DateTimeField(null=True, blank=True)

    objects = NeedQuerySet.as_manager()

    class Meta:
        verbose_name = _("need")
        verbose_name_plural = _("needs")
        indexes = [
            # The supermarket: each sort order over the public statuses, and the filters.
            models.Index(fields=["status", "-published_at", "-id"], name="need_newest_idx"),
            models.Index(fields=["status", "deadline", "id"], name="need_deadline_idx"),
            models.Index(fields=["status", "-progress", "-id"], name="need_progress_idx"),
            models.Index(fields=["county", "status", "-published_at", "-id"], name="need_county_idx"),
            models.Index(fields=["township", "status", "-published_at", "-id"], name="need_township_idx"),
            models.Index(fields=["village", "status", "-published_at", "-id"], name="need_village_idx"),
            models.Index(fields=["category", "status", "-published_at", "-id"], name="need_category_idx"),
            # The home page's "recently fulfilled" (without it, a sort of every fulfilled need).
            models.Index(fields=["status", "-fulfilled_at", "-id"], name="need_fulfilled_idx"),
            GinIndex(fields=["search_terms"], name="need_search_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(kind="money", target_amount__gt=0, quantity__isnull=True)
                    | Q(kind__in=["goods", "service"], quantity__gt=0, target_amount__isnull=True)
                ),
                name="need_kind_has_its_target",
            ),
            models.CheckConstraint(
                condition=Q(quantity__isnull=True) | Q(pledged_quantity__lte=F("quantity")),
                name="need_not_over_pledged_quantity",
            ),
            models.CheckConstraint(
                condition=Q(target_amount__isnull=True) | Q(pledged_amount__lte=F("target_amount")),
                name="need_not_over_pledged_amount",
            ),
            models.CheckConstraint(
                condition=Q(received_quantity__lte=F("pledged_quantity")) & Q(received_amount__lte=F("pledged_amount")),
                name="need_received_within_pledged",
            ),
            models.CheckConstraint(
                condition=Q(pledged_amount__gte=0) & Q(received_amount__gte=0), name="need_amounts_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__isnull=True) | Q(unit_price__gte=0), name="need_unit_price_not_negative"
            ),
        ]

    def __str__(self):
        return self.title

    # --- Figures ------------------------------------------------------------

    @property
    def is_money(self) -> bool:
        return self.kind == self.Kind.MONEY

    @property
    def target(self):
        return self.target_amount if self.is_money else self.quantity

    @property
    def pledged(self):
        return self.pledged_amount if self.is_money else self.pledged_quantity

    @property
    def received(self):
        return self.received_amount if self.is_money else self.received_quantity

    @property
    def remaining(self):
        return self.target - self.pledged

    @property
    def pledged_percent(self) -> int:
        return min(100, int(self.pledged * 100 / self.target)) if self.target else 0

    @property
    def received_percent(self) -> int:
        return min(100, int(self.received * 100 / self.target)) if self.target else 0

    @property
    def in_transit_percent(self) -> int:
        return max(0, self.pledged_percent - self.received_percent)

    @property
    def estimated_value(self) -> Decimal | None:
        """What the whole need is worth in yuan (goods at estimated price)."""
        if self.is_money:
            return self.target_amount
        if self.unit_price is not None and self.quantity:
            return self.unit_price * self.quantity
        return None

    @property
    def is_open_for_pledges(self) -> bool:
        return self.status == self.Status.PUBLISHED and self.deadline >= timezone.localdate()

    @property
    def is_public(self) -> bool:
        return self.status in self.PUBLIC_STATUSES

    @property
    def for_label(self) -> str:
        """Who the need is for, as anyone may see it."""
        if self.household_id:
            return self.household.public_label
        return str(_("The whole village"))


class PledgeQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=Pledge.OPEN_STATUSES)


class Pledge(models.Model):
    class Status(models.TextChoices):
        PLEDGED = "pledged", _("Pledged")
        SENT = "sent", _("Sent")
        RECEIVED = "received", _("Received")
        DONE = "done", _("Done")
        THANKED = "thanked", _("Thanked")
        CANCELLED = "cancelled", _("Cancelled")
        EXPIRED = "expired", _("Expired")
        RELEASED = "released", _("Released")

    OPEN_STATUSES = (Status.PLEDGED, Status.SENT)
    # Closed without anything arriving: the need got back what they held.
    GIVEN_BACK_STATUSES = (Status.CANCELLED, Status.EXPIRED, Status.RELEASED)
    HONOURED_STATUSES = (Status.RECEIVED, Status.DONE, Status.THANKED)

    need = models.ForeignKey(Need, on_delete=models.PROTECT, related_name="pledges")
    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, related_name="pledges")
    quantity = models.PositiveIntegerField(_("quantity"), null=True, blank=True)
    amount = models.DecimalField(_("amount (yuan)"), null=True, blank=True, **MONEY)
    # Goods at their declared value (quantity × the need's estimated unit price
    # when pledged), so gifts in kind can be counted in yuan.
    declared_value = models.DecimalField(_("declared value (yuan)"), default=Decimal("0.00"), **MONEY)
    message = models.CharField(_("message to the village"), max_length=500, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PLEDGED)

    received_quantity = models.PositiveIntegerField(_("quantity received"), null=True, blank=True)
    received_amount = models.DecimalField(_("amount received (yuan)"), null=True, blank=True, **MONEY)
    transfer_reference = models.CharField(_("transfer reference"), max_length=64, null=True, blank=True, unique=True)
    photo = models.ImageField(_("photo"), upload_to="receipts/%Y/%m/", blank=True)
    receipt_note = models.CharField(_("note on arrival"), max_length=500, blank=True)
    thanks = models.TextField(_("thank-you message"), blank=True, max_length=2000)

    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(null=True, blank=True)
    closed_at = models.DateTimeField(null=True, blank=True)
    received_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    # Released by staff or the village (or the schedule, with no one) because
    # it was not being honoured; the donor is told the reason.
    released_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    release_reason = models.CharField(_("reason for release"), max_length=500, blank=True, default="", db_default="")

    objects = PledgeQuerySet.as_manager()

    class Meta:
        verbose_name = _("pledge")
        verbose_name_plural = _("pledges")
        indexes = [
            models.Index(fields=["donor", "-created_at", "-id"], name="pledge_donor_idx"),
            models.Index(fields=["need", "status"], name="pledge_need_status_idx"),
            # What a donor holds open (the limits), and the unpaid money
            # pledges the schedule releases: small parts of a large table.
            models.Index(fields=["donor"], condition=Q(status__in=["pledged", "sent"]), name="pledge_donor_open_idx"),
            models.Index(
                fields=["created_at"],
                condition=Q(status__in=["pledged", "sent"], amount__isnull=False),
                name="pledge_money_open_idx",
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(quantity__gt=0, amount__isnull=True) | Q(quantity__isnull=True, amount__gt=0)),
                name="pledge_quantity_or_amount",
            ),
            models.CheckConstraint(
                condition=Q(received_quantity__isnull=True) | Q(received_quantity__lte=F("quantity")),
                name="pledge_received_within_quantity",
            ),
            models.CheckConstraint(
                condition=Q(received_amount__isnull=True) | Q(received_amount__lte=F("amount")),
                name="pledge_received_within_amount",
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.need}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_money(self) -> bool:
        return self.amount is not None

    @property
    def size(self):
        return self.amount if self.is_money else self.quantity

    @property
    def counted(self):
        """What this pledge holds of its need: all of it while open, what
        arrived once received, nothing once cancelled or expired."""
        if self.is_open:
            return self.size
        if self.status in self.GIVEN_BACK_STATUSES:
            return 0
        return self.received_amount if self.is_money else self.received_quantity


# --- The fund-usage ledger ----------------------------------------------------


class LedgerAccount(models.Model):
    """An account of the double-entry ledger. ``balance`` is the sum of the
    account's legs, kept by the posting code under a row lock; for funds and
    pools the database refuses a negative balance."""

    class Kind(models.TextChoices):
        INCOME_MONEY = "income_money", _("Money donated")
        INCOME_GOODS = "income_goods", _("Goods donated (declared value)")
        POOL = "pool", _("Undirected pool")
        NEED_FUND = "need_fund", _("Fund of a need")
        GOODS_DELIVERED = "goods_delivered", _("Goods delivered")
        EXPENSE = "expense", _("Money spent")

    FUNDS = (Kind.POOL, Kind.NEED_FUND)

    code = models.CharField(max_length=40, unique=True)
    kind = models.CharField(max_length=16, choices=Kind)
    need = models.OneToOneField(Need, on_delete=models.PROTECT, null=True, blank=True, related_name="fund")
    area = models.ForeignKey(Area, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    category = models.CharField(max_length=16, blank=True)
    balance = models.DecimalField(default=Decimal("0.00"), **MONEY)

    class Meta:
        verbose_name = _("ledger account")
        verbose_name_plural = _("ledger accounts")
        constraints = [
            models.CheckConstraint(
                condition=~Q(kind__in=["pool", "need_fund"]) | Q(balance__gte=0), name="ledger_fund_not_negative"
            ),
            models.UniqueConstraint(fields=["area"], condition=Q(kind="pool"), name="ledger_one_pool_per_area"),
        ]

    def __str__(self):
        return self.code


class LedgerTransaction(models.Model):
    """One movement of money or goods: its legs add up to zero. Append-only:
    the database refuses UPDATE and DELETE; a mistake is corrected by a
    reversing transaction that points at the original."""

    class Kind(models.TextChoices):
        MONEY_IN = "money_in", _("Money received for a need")
        GIFT_IN = "gift_in", _("Undirected gift received")
        GOODS_IN = "goods_in", _("Goods received (declared value)")
        ALLOCATION = "allocation", _("Allocation from the pool")
        SPEND = "spend", _("Money spent")
        RETURN = "return", _("Left-over returned to the pool")
        REVERSAL = "reversal", _("Reversal")

    class Category(models.TextChoices):
        PURCHASE = "purchase", _("Purchase of goods")
        TRANSFER = "transfer", _("Transfer to a household")
        WORKS = "works", _("Construction works")
        SERVICE = "service", _("Training and services")
        REFUND = "refund", _("Refund to the donor")
        FEES = "fees", _("Bank fees")
        OTHER = "other", _("Other")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind)
    amount = models.DecimalField(_("amount (yuan)"), **MONEY)
    occurred_on = models.DateField(_("date"))
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    need = models.ForeignKey(Need, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_transactions")
    pledge = models.ForeignKey(
        Pledge, on_delete=models.PROTECT, null=True, blank=True, related_name="ledger_transactions"
    )
    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, null=True, blank=True, related_name="+")
    # Where the money belongs: the need's village, or the pool's area.
    area = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="+")
    reference = models.CharField(_("transfer reference"), max_length=64, null=True, blank=True, unique=True)
    purpose = models.CharField(_("purpose"), max_length=200, blank=True)
    category = models.CharField(_("category"), max_length=16, choices=Category, blank=True)
    payee = models.CharField(_("payee"), max_length=100, blank=True)
    payee_household = models.ForeignKey(
        "households.Household", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # The receipt's scan is stored at vouchers/<id>-<hash prefix>, for
    # auditors only; the public sees that it exists and its SHA-256.
    voucher_sha256 = models.CharField(max_length=64, blank=True)
    reverses = models.OneToOneField("self", on_delete=models.PROTECT, null=True, blank=True, related_name="reversed_by")

    class Meta:
        verbose_name = _("ledger transaction")
        verbose_name_plural = _("ledger transactions")
        indexes = [models.Index(fields=["need", "id"], name="ledger_txn_need_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="ledger_txn_amount_positive"),
            models.UniqueConstraint(
                fields=["pledge", "kind"], condition=Q(kind__in=["money_in", "goods_in"]), name="ledger_pledge_once"
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.get_kind_display()} {self.amount}"


class LedgerLeg(models.Model):
    """A debit (positive) or credit (negative) of one account."""

    transaction = models.ForeignKey(LedgerTransaction, on_delete=models.PROTECT, related_name="legs")
    account = models.ForeignKey(LedgerAccount, on_delete=models.PROTECT, related_name="legs")
    amount = models.DecimalField(**MONEY)

    class Meta:
        verbose_name = _("ledger leg")
        verbose_name_plural = _("ledger legs")
        constraints = [models.CheckConstraint(condition=~Q(amount=0), name="ledger_leg_not_zero")]
        indexes = [models.Index(fields=["account", "transaction"], name="ledger_leg_account_idx")]

    def __str__(self):
        return f"{self.account_id} {self.amount}"


class LedgerOutbox(models.Model):
    """Transactions not yet published, written in the same database transaction
    as the ledger transaction itself. The publisher takes them in id order and
    deletes them in its own transaction, so one that commits late is still
    found, and each is published exactly once."""

    transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, primary_key=True)

    def __str__(self):
        return f"pending {self.transaction_id}"


class GiftClaim(models.Model):
    """Staff say a gift they recorded came from a registered donor. The
    ledger entry itself names no donor ("recorded by staff"); the gift is
    the donor's only once the donor confirms it, and a donor may dispute it.
    Nobody can attribute money to a person without that person's word."""

    class Status(models.TextChoices):
        PENDING = "pending", _("Recorded by staff, awaiting the donor")
        CONFIRMED = "confirmed", _("Confirmed by the donor")
        DISPUTED = "disputed", _("Disputed by the donor")

    transaction = models.OneToOneField(LedgerTransaction, on_delete=models.PROTECT, related_name="claim")
    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, related_name="gift_claims")
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PENDING)
    recorded_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("gift claim")
        verbose_name_plural = _("gift claims")
        indexes = [models.Index(fields=["donor", "-created_at", "-id"], name="gift_claim_donor_idx")]

    def __str__(self):
        return f"claim {self.transaction_id} → {self.donor_id} ({self.status})"


class LedgerBatch(models.Model):
    """A numbered publication: the entries ``first_index`` … ``tree_size − 1``
    and the signed checkpoint of the whole tree after them. Never changes."""

    number = models.PositiveIntegerField(primary_key=True)
    first_index = models.BigIntegerField()
    tree_size = models.BigIntegerField()
    root_hash = models.CharField(max_length=64)
    timestamp = models.CharField(max_length=32)
    public_key = models.CharField(max_length=64)
    signature = models.CharField(max_length=128)
    frontier = models.JSONField(default=list)
    # The C2SP signed note of the checkpoint, as written at publication (empty
    # for batches published before notes were; publication.note_of signs those).
    note = models.TextField(blank=True, default="")
    published_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("ledger batch")
        verbose_name_plural = _("ledger batches")
        constraints = [models.UniqueConstraint(fields=["tree_size"], name="ledger_batch_size_unique")]

    def __str__(self):
        return f"batch {self.number} ({self.tree_size})"

    def entries(self):
        """Its entries: the index range [first_index, tree_size). Entries hold
        no key to their batch: the range says it, and a key would be checked
        for each of a batch's entries at its commit."""
        return PublishedEntry.objects.filter(index__gte=self.first_index, index__lt=self.tree_size)

    def checkpoint(self) -> dict:
        return {
            "format": "sun-commune-checkpoint/v1",
            "batch": self.number,
            "tree_size": self.tree_size,
            "root_hash": self.root_hash,
            "timestamp": self.timestamp,
            "public_key": self.public_key,
            "signature": self.signature,
        }


class PublishedEntry(models.Model):
    """One leaf of the public ledger: the canonical JSON line exactly as the
    downloads serve it, and the columns the public pages filter on."""

    index = models.BigIntegerField(primary_key=True)
    # The entry's transaction and need, and its kind, amount, date and area
    # path, are checked against the transaction once per statement that
    # writes entries (migration 0009), not by foreign keys: those looked up
    # and locked each referenced row, one entry at a time — slowing the
    # publisher's writing to guard rows the database never lets anyone
    # delete (ledger transactions are append-only; a need with a ledger
    # transaction is held by the transaction's own key).
    transaction = models.OneToOneField(
        LedgerTransaction, on_delete=models.PROTECT, related_name="published", db_constraint=False
    )
    line = models.TextField()
    leaf_hash = models.CharField(max_length=64)
    kind = models.CharField(max_length=16, choices=LedgerTransaction.Kind)
    amount = models.DecimalField(**MONEY)
    occurred_on = models.DateField()
    # Found through ledger_pub_need_idx (need, index), which also orders them.
    need = models.ForeignKey(
        Need, on_delete=models.PROTECT, null=True, related_name="+", db_index=False, db_constraint=False
    )
    area_path = models.CharField(max_length=255)

    class Meta:
        verbose_name = _("published ledger entry")
        verbose_name_plural = _("published ledger entries")
        indexes = [
            models.Index(
                fields=["area_path", "index"], name="ledger_pub_area_idx", opclasses=["varchar_pattern_ops", "int8_ops"]
            ),
            models.Index(fields=["need", "index"], name="ledger_pub_need_idx"),
            models.Index(fields=["kind", "index"], name="ledger_pub_kind_idx"),
            models.Index(fields=["occurred_on", "index"], name="ledger_pub_date_idx"),
        ]

    def __str__(self):
        return f"entry {self.index}"


class MerkleNode(models.Model):
    """A perfect subtree of the published tree (heights 4 and up; lower ones
    are recomputed from at most 16 leaves), for O(log n) inclusion proofs."""

    height = models.PositiveSmallIntegerField()
    position = models.BigIntegerField()
    hash = models.CharField(max_length=64)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["height", "position"], name="merkle_node_unique")]

    def __str__(self):
        return f"node {self.height}/{self.position}"


class AreaLedgerTotal(models.Model):
    """Published totals per area (each entry counted in its area and every
    area above), updated by the publisher: the public totals never sum a
    large table per request."""

    area = models.OneToOneField(Area, on_delete=models.PROTECT, primary_key=True, related_name="ledger_total")
    money_in = models.DecimalField(default=Decimal("0.00"), **MONEY)
    goods_in = models.DecimalField(default=Decimal("0.00"), **MONEY)
    money_out = models.DecimalField(default=Decimal("0.00"), **MONEY)
    entries = models.BigIntegerField(default=0)

    def __str__(self):
        return f"totals of {self.area_id}"

    @property
    def total_in(self) -> Decimal:
        return self.money_in + self.goods_in


class LedgerCheck(models.Model):
    """The result of one run of the ledger check (nightly, or by hand)."""

    ran_at = models.DateTimeField(auto_now_add=True)
    ok = models.BooleanField()
    problems = models.JSONField(default=list)
    tree_size = models.BigIntegerField(default=0)
    seconds = models.FloatField(default=0)

    class Meta:
        ordering = ["-ran_at"]

    def __str__(self):
        return f"check {self.ran_at:%Y-%m-%d %H:%M} {'ok' if self.ok else 'failed'}"


# --- Pairing: a donor's long-term support of a household or a village ----------


def period_of(day, commitment: str) -> str:
    """The period an installment belongs to: "2026-12" for a monthly money
    commitment, "2026-Q4" for a seasonal goods one (calendar quarters)."""
    if commitment == Pairing.Commitment.GOODS:
        return f"{day.year}-Q{(day.month - 1) // 3 + 1}"
    return f"{day.year}-{day.month:02d}"


def period_end(day, commitment: str):
    """The last day of the period that ``day`` falls in."""
    last_month = (day.month - 1) // 3 * 3 + 3 if commitment == Pairing.Commitment.GOODS else day.month
    return datetime.date(day.year, last_month, calendar.monthrange(day.year, last_month)[1])


class PairingQuerySet(models.QuerySet):
    def open(self):
        return self.filter(status__in=Pairing.OPEN_STATUSES)

    def active(self):
        return self.filter(status=Pairing.Status.ACTIVE)


class Pairing(models.Model):
    """A donor's standing commitment to one household (or a whole village):
    so much money each month, or so many goods each season. While active, a
    beat job turns each period's commitment into a published need of the
    household and a pledge of the donor (a ``PairingInstallment``), which then
    follows the ordinary pledge flow."""

    class Status(models.TextChoices):
        REQUESTED = "requested", _("Requested by the donor")
        INVITED = "invited", _("Invited by the village")
        ACTIVE = "active", _("Active")
        DECLINED = "declined", _("Declined")
        ENDED = "ended", _("Ended")

    class Commitment(models.TextChoices):
        MONEY = "money", _("Money each month")
        GOODS = "goods", _("Goods each season")

    PENDING_STATUSES = (Status.REQUESTED, Status.INVITED)
    OPEN_STATUSES = (Status.REQUESTED, Status.INVITED, Status.ACTIVE)

    donor = models.ForeignKey(Donor, on_delete=models.PROTECT, related_name="pairings", verbose_name=_("donor"))
    household = models.ForeignKey(
        "households.Household",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="pairings",
        verbose_name=_("household"),
    )
    # Always set: the household's village for a household pairing. The
    # township and county are copied for the statistics' GROUP BY.
    village = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="pairings", verbose_name=_("village"))
    township = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="+", editable=False)
    county = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="+", editable=False)
    status = models.CharField(_("status"), max_length=16, choices=Status)
    message = models.CharField(_("message"), max_length=500, blank=True)
    start_date = models.DateField(_("starts on"))
    end_date = models.DateField(_("ends on"), null=True, blank=True)

    commitment = models.CharField(_("commitment"), max_length=8, choices=Commitment)
    amount = models.DecimalField(_("amount each month (yuan)"), null=True, blank=True, **MONEY)
    item = models.CharField(_("item"), max_length=80, blank=True)
    quantity = models.PositiveIntegerField(_("quantity each season"), null=True, blank=True)
    unit = models.CharField(_("unit"), max_length=16, blank=True)
    unit_price = models.DecimalField(_("estimated unit price (yuan)"), null=True, blank=True, **MONEY)

    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    decided_at = models.DateTimeField(null=True, blank=True)
    # The secretary who agreed for the village (invited, or accepted the
    # request): the installments' needs are posted in their name.
    secretary = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ended_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    ended_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(_("reason"), max_length=500, blank=True)

    objects = PairingQuerySet.as_manager()

    class Meta:
        verbose_name = _("pairing")
        verbose_name_plural = _("pairings")
        indexes = [
            models.Index(fields=["donor", "-created_at", "-id"], name="pairing_donor_idx"),
            models.Index(fields=["village", "status", "-created_at", "-id"], name="pairing_village_idx"),
            models.Index(fields=["status", "start_date"], name="pairing_status_idx"),
            models.Index(fields=["status", "county", "township"], name="pairing_area_stats_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(commitment="money", amount__gt=0, quantity__isnull=True)
                    | (Q(commitment="goods", quantity__gt=0, amount__isnull=True) & ~Q(item=""))
                ),
                name="pairing_commitment_has_its_figures",
            ),
            models.CheckConstraint(
                condition=Q(end_date__isnull=True) | Q(end_date__gte=F("start_date")), name="pairing_ends_after_start"
            ),
            models.CheckConstraint(
                condition=Q(unit_price__isnull=True) | Q(unit_price__gte=0), name="pairing_unit_price_not_negative"
            ),
            # One open pairing of a donor with a household, or with a village
            # as a whole: a double click or two tabs cannot make a second.
            models.UniqueConstraint(
                fields=["donor", "household"],
                condition=Q(household__isnull=False, status__in=["requested", "invited", "active"]),
                name="pairing_one_open_per_household",
            ),
            models.UniqueConstraint(
                fields=["donor", "village"],
                condition=Q(household__isnull=True, status__in=["requested", "invited", "active"]),
                name="pairing_one_open_per_village",
            ),
        ]

    def __str__(self):
        return f"#{self.pk} {self.donor} · {self.for_label}"

    @property
    def for_label(self) -> str:
        """Who is supported, as anyone may see it."""
        if self.household_id:
            return self.household.public_label
        return str(_("The whole village"))

    @property
    def is_pending(self) -> bool:
        return self.status in self.PENDING_STATUSES

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES

    @property
    def is_money(self) -> bool:
        return self.commitment == self.Commitment.MONEY

    def photos_visible_to_donor(self) -> bool:
        """A household's photos reach the donor only while it consents; read
        at every view, so that a withdrawal hides them at once."""
        return self.household_id is None or self.household.photo_consent

    def period_of(self, day) -> str:
        return period_of(day, self.commitment)

    def is_due_on(self, day) -> bool:
        return (
            self.status == self.Status.ACTIVE
            and self.start_date <= day
            and (self.end_date is None or day <= self.end_date)
        )


class PairingInstallment(models.Model):
    """One period's commitment of a pairing, made into a need and a pledge.
    The unique (pairing, period) makes it exactly once, whatever the beat does."""

    pairing = models.ForeignKey(Pairing, on_delete=models.PROTECT, related_name="installments")
    period = models.CharField(max_length=8)
    need = models.OneToOneField(
        Need, on_delete=models.PROTECT, null=True, blank=True, related_name="pairing_installment"
    )
    pledge = models.OneToOneField(
        Pledge, on_delete=models.PROTECT, null=True, blank=True, related_name="pairing_installment"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("pairing installment")
        verbose_name_plural = _("pairing installments")
        indexes = [models.Index(fields=["pairing", "-created_at", "-id"], name="pairing_installment_idx")]
        constraints = [
            models.UniqueConstraint(fields=["pairing", "period"], name="pairing_installment_once_per_period")
        ]

    def __str__(self):
        return f"{self.pairing_id} {self.period}"


class PairingUpdate(models.Model):
    """News from the village for the donor: a text, and a photo that the
    donor sees only while the household consents to photos."""

    pairing = models.ForeignKey(Pairing, on_delete=models.PROTECT, related_name="updates")
    text = models.TextField(_("text"), max_length=2000)
    photo = models.ImageField(_("photo"), upload_to="pairings/%Y/%m/", blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("pairing update")
        verbose_name_plural = _("pairing updates")
        indexes = [models.Index(fields=["pairing", "-created_at", "-id"], name="pairing_update_idx")]

    def __str__(self):
        return f"{self.pairing_id} {self.created_at:%Y-%m-%d}"
