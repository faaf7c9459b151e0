"""Cooperatives, their leading enterprises and managers; members and the share
register; poverty-alleviation loans; order purchases and deliveries; and the
year's distribution of the surplus.

The share register is append-only (the database refuses UPDATE and DELETE
of a share event): what a member holds is the sum of their events, and the
history is never rewritten. Money is ``Decimal`` yuan with two places; the
invariants that matter (a delivery never paid below its guaranteed price, a
distribution's parts adding up to its surplus with at least 60% returned by
transaction volume) are CHECK constraints too.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import F, Q
from django.utils.translation import gettext_lazy as _

from households.models import Area, Household

MONEY = {"max_digits": 14, "decimal_places": 2}
QUANTITY = {"max_digits": 14, "decimal_places": 2}
PERCENT = {"max_digits": 5, "decimal_places": 2}


class LeadingEnterprise(models.Model):
    """A company behind one or more cooperatives ("leading enterprise +
    cooperative + poor households"). Its name and general manager are public."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    general_manager = models.CharField(_("general manager"), max_length=64, blank=True)
    description = models.TextField(_("what it does"), blank=True, max_length=2000)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("leading enterprise")
        verbose_name_plural = _("leading enterprises")
        ordering = ["name"]

    def __str__(self):
        return self.name


class CooperativeQuerySet(models.QuerySet):
    def within(self, area: Area):
        return self.filter(area__path__startswith=area.path)

    def managed_by(self, user):
        if not getattr(user, "pk", None):
            return self.none()
        return self.filter(manager_grants__user=user, manager_grants__active=True)


class Cooperative(models.Model):
    """A farmers' professional cooperative. Everything on this row is public."""

    class Kind(models.TextChoices):
        BREEDING = "breeding", _("Breeding")
        PLANTING = "planting", _("Planting")
        PROCESSING = "processing", _("Processing")
        MARKETING = "marketing", _("Marketing")
        SERVICES = "services", _("Services")
        OTHER = "other", _("Other")

    name = models.CharField(_("name"), max_length=120, unique=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind)
    area = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="cooperatives", verbose_name=_("area"))
    leading_enterprises = models.ManyToManyField(
        LeadingEnterprise, blank=True, related_name="cooperatives", verbose_name=_("leading enterprises")
    )
    mode = models.CharField(
        _("mode"),
        max_length=200,
        blank=True,
        help_text=_('In words, for example "leading enterprise + cooperative + poor households".'),
    )
    description = models.TextField(_("description"), blank=True, max_length=4000)
    founded_on = models.DateField(_("founded on"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = CooperativeQuerySet.as_manager()

    class Meta:
        verbose_name = _("cooperative")
        verbose_name_plural = _("cooperatives")
        ordering = ["name"]
        indexes = [models.Index(fields=["area", "id"], name="coop_area_idx")]

    def __str__(self):
        return self.name


class CooperativeManager(models.Model):
    """The role of keeping one cooperative's members, shares, purchases and
    dividends, granted by bureau staff over the cooperative's area."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="cooperative_grants")
    cooperative = models.ForeignKey(Cooperative, on_delete=models.PROTECT, related_name="manager_grants")
    active = models.BooleanField(_("active"), default=True)
    granted_at = models.DateTimeField(_("granted at"), auto_now_add=True)
    granted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("cooperative manager")
        verbose_name_plural = _("cooperative managers")
        constraints = [models.UniqueConstraint(fields=["user", "cooperative"], name="coop_manager_unique")]

    def __str__(self):
        return f"{self.user} · {self.cooperative}"


class DistributionRules(models.Model):
    """How a cooperative shares its distributable surplus (its charter's rules).
    A distribution copies them, so changing them later changes no past year."""

    cooperative = models.OneToOneField(Cooperative, on_delete=models.PROTECT, related_name="rules")
    volume_share_percent = models.DecimalField(
        _("share returned by transaction volume (%)"),
        default=Decimal("60"),
        help_text=_("At least 60%, as the Law on Farmers' Professional Cooperatives requires."),
        **PERCENT,
    )
    loan_fixed_rate_percent = models.DecimalField(
        _("fixed return on poor households' loan capital (% a year)"), default=Decimal("0"), **PERCENT
    )
    subsidy_fixed_rate_percent = models.DecimalField(
        _("fixed return on poor households' subsidy capital (% a year)"), default=Decimal("0"), **PERCENT
    )
    land_value_per_mu = models.DecimalField(_("capital value of one mu of land (yuan)"), default=Decimal("0"), **MONEY)
    labour_value_per_day = models.DecimalField(
        _("capital value of one day of labour (yuan)"), default=Decimal("0"), **MONEY
    )
    updated_at = models.DateTimeField(auto_now=True)
    updated_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("distribution rules")
        verbose_name_plural = _("distribution rules")
        constraints = [
            models.CheckConstraint(
                condition=Q(volume_share_percent__gte=60, volume_share_percent__lte=100),
                name="coop_rules_volume_share_at_least_60",
            ),
            models.CheckConstraint(
                condition=Q(loan_fixed_rate_percent__gte=0, loan_fixed_rate_percent__lte=100)
                & Q(subsidy_fixed_rate_percent__gte=0, subsidy_fixed_rate_percent__lte=100)
                & Q(land_value_per_mu__gte=0, labour_value_per_day__gte=0),
                name="coop_rules_plausible",
            ),
        ]

    def __str__(self):
        return f"{self.cooperative_id}: {self.volume_share_percent}%"


class MemberQuerySet(models.QuerySet):
    def confirmed(self):
        """Members in the register: not a household's request still awaiting,
        or declined by, its village."""
        return self.filter(standing=Member.Standing.CONFIRMED)


class Member(models.Model):
    """A member of a cooperative: a registered poor household, another farmer,
    or an enterprise. The name of a member who is not a registered household
    is private like a household's; the public sees only counts.

    A registered household joins only with its side's consent: the manager's
    entry is a request (``standing`` REQUESTED, what it would put in kept in
    ``proposed``) until the village's first secretary confirms it, recording
    on what basis the household agreed. Until then the cooperative sees only
    the household's public id and the register takes no event of it."""

    class Kind(models.TextChoices):
        HOUSEHOLD = "household", _("Registered poor household")
        FARMER = "farmer", _("Other farmer")
        ENTERPRISE = "enterprise", _("Enterprise")

    class Standing(models.TextChoices):
        REQUESTED = "requested", _("Awaiting the village's confirmation")
        CONFIRMED = "confirmed", _("Confirmed")
        DECLINED = "declined", _("Declined by the village")

    cooperative = models.ForeignKey(Cooperative, on_delete=models.PROTECT, related_name="members")
    number = models.PositiveIntegerField(_("member number"))
    kind = models.CharField(_("kind of member"), max_length=16, choices=Kind)
    household = models.ForeignKey(
        Household,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="cooperative_memberships",
        verbose_name=_("household"),
    )
    name = models.CharField(_("name"), max_length=120, blank=True)
    joined_on = models.DateField(_("joined on"))
    exited_on = models.DateField(_("left on"), null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    standing = models.CharField(_("membership"), max_length=16, choices=Standing, default=Standing.REQUESTED)
    # What a requested household would put in on joining ([[holding, quantity,
    # {extra: amount}], …] as strings, and the note): entered as "join" events
    # when the village confirms, never before.
    proposed = models.JSONField(default=dict, blank=True, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    consent_basis = models.CharField(_("how the household agreed"), max_length=200, blank=True)
    decided_at = models.DateTimeField(_("decided at"), null=True, blank=True)
    decided_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = MemberQuerySet.as_manager()

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        ordering = ["cooperative", "number"]
        constraints = [
            models.UniqueConstraint(fields=["cooperative", "number"], name="coop_member_number_unique"),
            models.UniqueConstraint(
                fields=["cooperative", "household"],
                condition=Q(household__isnull=False) & ~Q(standing="declined"),
                name="coop_member_household_unique",
            ),
            # Only a registered household waits for its village's side.
            models.CheckConstraint(
                condition=Q(kind="household") | Q(standing="confirmed"),
                name="coop_member_only_households_wait",
            ),
            models.CheckConstraint(
                condition=(Q(kind="household") & Q(household__isnull=False))
                | (~Q(kind="household") & Q(household__isnull=True) & ~Q(name="")),
                name="coop_member_household_or_name",
            ),
        ]
        indexes = [
            models.Index(fields=["household"], name="coop_member_household_idx"),
            models.Index(
                fields=["household", "id"], condition=Q(standing="requested"), name="coop_member_requested_idx"
            ),
        ]

    def __str__(self):
        return f"#{self.number}"

    @property
    def is_poor(self) -> bool:
        return self.household_id is not None

    @property
    def is_confirmed(self) -> bool:
        return self.standing == self.Standing.CONFIRMED

    @property
    def private_name(self) -> str:
        """For the cooperative's keepers and the village only; a household's
        name only once its village confirmed the membership (until then the
        cooperative knows the public id only)."""
        if self.household_id:
            return self.household.head_name if self.is_confirmed else ""
        return self.name

    @property
    def is_active(self) -> bool:
        return self.exited_on is None

    @property
    def proposed_put_in(self) -> list[tuple[str, Decimal]]:
        """What a requested household would put in, for its village to read."""
        labels = dict(ShareEvent.Holding.choices)
        put_in = (self.proposed or {}).get("put_in", [])
        return [(labels.get(holding, holding), Decimal(quantity)) for holding, quantity, _extra in put_in]


class Loan(models.Model):
    """A poverty-alleviation loan taken by a member (usually a poor household)
    and put into the cooperative as shares; the cooperative keeps its
    repayment schedule."""

    class Status(models.TextChoices):
        ACTIVE = "active", _("Being repaid")
        OVERDUE = "overdue", _("Overdue")
        REPAID = "repaid", _("Repaid")

    class Period(models.IntegerChoices):
        MONTHLY = 1, _("Every month")
        QUARTERLY = 3, _("Every quarter")
        HALF_YEARLY = 6, _("Every half year")
        YEARLY = 12, _("Every year")
        AT_END = 0, _("All at the end of the term")

    cooperative = models.ForeignKey(Cooperative, on_delete=models.PROTECT, related_name="loans")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="loans")
    lender = models.CharField(_("lender"), max_length=120)
    principal = models.DecimalField(_("amount (yuan)"), **MONEY)
    annual_rate_percent = models.DecimalField(_("interest rate (% a year)"), **PERCENT)
    term_months = models.PositiveSmallIntegerField(_("term (months)"))
    period_months = models.PositiveSmallIntegerField(_("repayment"), choices=Period)
    started_on = models.DateField(_("start date"))
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.ACTIVE)
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("poverty-alleviation loan")
        verbose_name_plural = _("poverty-alleviation loans")
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    principal__gt=0, term_months__gt=0, annual_rate_percent__gte=0, annual_rate_percent__lte=100
                ),
                name="coop_loan_plausible",
            ),
        ]

    def __str__(self):
        return f"{self.lender} · {self.principal}"


class LoanInstallment(models.Model):
    """One repayment of a loan. ``reminded_at`` and ``flagged_at`` are set once,
    by a conditional update, so the beat job reminds and flags each
    installment once however often it runs."""

    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, related_name="installments")
    number = models.PositiveSmallIntegerField(_("number"))
    due_on = models.DateField(_("due on"))
    principal = models.DecimalField(_("principal"), **MONEY)
    interest = models.DecimalField(_("interest"), **MONEY)
    paid_on = models.DateField(_("paid on"), null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    reminded_at = models.DateTimeField(null=True, blank=True)
    flagged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("loan installment")
        verbose_name_plural = _("loan installments")
        ordering = ["loan", "number"]
        constraints = [
            models.UniqueConstraint(fields=["loan", "number"], name="coop_installment_unique"),
            models.CheckConstraint(condition=Q(principal__gte=0, interest__gte=0), name="coop_installment_positive"),
        ]
        indexes = [
            models.Index(fields=["due_on"], condition=Q(paid_on__isnull=True), name="coop_installment_open_idx"),
        ]

    def __str__(self):
        return f"{self.loan_id}/{self.number} {self.due_on}"

    @property
    def amount(self) -> Decimal:
        return self.principal + self.interest


class ShareEvent(models.Model):
    """One change in a member's holding. Append-only: the database refuses to
    change or delete a row. A transfer is two events (out of one member, into
    another) pointing at each other through ``transfer_key``; an exit is one
    event per holding, bringing it to zero."""

    class Kind(models.TextChoices):
        JOIN = "join", _("Joined")
        INCREASE = "increase", _("Increase")
        TRANSFER_IN = "transfer_in", _("Transfer in")
        TRANSFER_OUT = "transfer_out", _("Transfer out")
        EXIT = "exit", _("Exit")

    class Holding(models.TextChoices):
        OWN = "own", _("Own money")
        LOAN = "loan", _("Poverty-alleviation loan")
        SUBSIDY = "subsidy", _("Government subsidy quantified to the household")
        LAND = "land", _("Land")
        LABOUR = "labour", _("Labour")

    CAPITAL = (Holding.OWN, Holding.LOAN, Holding.SUBSIDY)
    TRANSFERABLE = (Holding.OWN, Holding.LAND)

    cooperative = models.ForeignKey(Cooperative, on_delete=models.PROTECT, related_name="share_events")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="share_events")
    kind = models.CharField(_("change"), max_length=16, choices=Kind)
    holding = models.CharField(_("what"), max_length=16, choices=Holding)
    # Yuan for capital, mu for land, days for labour; negative for a transfer out or an exit.
    quantity = models.DecimalField(_("quantity"), **QUANTITY)
    loan = models.ForeignKey(Loan, on_delete=models.PROTECT, null=True, blank=True, related_name="share_events")
    yearly_rent = models.DecimalField(_("yearly rent for the land (yuan)"), null=True, blank=True, **MONEY)
    service_fees = models.DecimalField(_("service fees paid for the labour (yuan)"), null=True, blank=True, **MONEY)
    transfer_key = models.CharField(max_length=40, blank=True, db_index=True)
    occurred_on = models.DateField(_("date"))
    note = models.CharField(_("note"), max_length=200, blank=True)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("share event")
        verbose_name_plural = _("share register")
        ordering = ["occurred_on", "id"]
        indexes = [
            models.Index(fields=["member", "holding"], name="coop_share_member_idx"),
            models.Index(fields=["cooperative", "occurred_on"], name="coop_share_coop_date_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(kind__in=["join", "increase", "transfer_in"]) & Q(quantity__gt=0))
                | (Q(kind__in=["transfer_out", "exit"]) & Q(quantity__lt=0)),
                name="coop_share_sign_matches_kind",
            ),
            models.CheckConstraint(
                condition=Q(holding="loan", loan__isnull=False) | (~Q(holding="loan") & Q(loan__isnull=True)),
                name="coop_share_loan_capital_names_its_loan",
            ),
            models.CheckConstraint(
                condition=Q(yearly_rent__isnull=True) | Q(holding="land", yearly_rent__gte=0),
                name="coop_share_rent_only_for_land",
            ),
            models.CheckConstraint(
                condition=Q(service_fees__isnull=True) | Q(holding="labour", service_fees__gte=0),
                name="coop_share_fees_only_for_labour",
            ),
        ]

    def __str__(self):
        return f"{self.occurred_on} {self.kind} {self.holding} {self.quantity}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("share events cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("share events cannot be deleted")


class PurchaseContract(models.Model):
    """An order-purchase contract with a member: the cooperative buys the
    product of a season at the agreed price, and never below the guaranteed
    minimum price whatever the market does."""

    cooperative = models.ForeignKey(Cooperative, on_delete=models.PROTECT, related_name="contracts")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="contracts")
    product = models.CharField(_("product"), max_length=64)
    unit = models.CharField(_("unit"), max_length=16, default="kg")
    agreed_price = models.DecimalField(_("agreed price per unit (yuan)"), **MONEY)
    guaranteed_price = models.DecimalField(_("guaranteed minimum price per unit (yuan)"), **MONEY)
    quantity = models.DecimalField(_("quantity ordered"), **QUANTITY)
    season = models.CharField(_("season"), max_length=32)
    year = models.PositiveSmallIntegerField(_("year"))
    signed_on = models.DateField(_("signed on"))
    created_at = models.DateTimeField(auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("order-purchase contract")
        verbose_name_plural = _("order-purchase contracts")
        indexes = [models.Index(fields=["cooperative", "year", "id"], name="coop_contract_year_idx")]
        constraints = [
            models.CheckConstraint(
                condition=Q(guaranteed_price__gt=0, quantity__gt=0, agreed_price__gte=F("guaranteed_price")),
                name="coop_contract_prices_plausible",
            ),
            models.CheckConstraint(condition=Q(year__gte=2000, year__lte=2100), name="coop_contract_year_plausible"),
        ]

    def __str__(self):
        return f"{self.product} · {self.season}"


class Delivery(models.Model):
    """Produce a member delivered under a contract and what the cooperative
    paid for it. The contract's guaranteed price is copied onto the row so
    that the database itself refuses a price below it."""

    class Grade(models.TextChoices):
        FIRST = "1", _("Grade 1")
        SECOND = "2", _("Grade 2")
        THIRD = "3", _("Grade 3")
        UNGRADED = "-", _("Ungraded")

    contract = models.ForeignKey(PurchaseContract, on_delete=models.PROTECT, related_name="deliveries")
    cooperative = models.ForeignKey(Cooperative, on_delete=models.PROTECT, related_name="deliveries")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="deliveries")
    delivered_on = models.DateField(_("delivered on"))
    year = models.PositiveSmallIntegerField(editable=False)
    product = models.CharField(_("product"), max_length=64)
    quantity = models.DecimalField(_("quantity"), **QUANTITY)
    grade = models.CharField(_("grade"), max_length=2, choices=Grade, default=Grade.UNGRADED)
    market_price = models.DecimalField(_("market price per unit (yuan)"), **MONEY)
    price_paid = models.DecimalField(_("price paid per unit (yuan)"), **MONEY)
    guaranteed_price = models.DecimalField(_("guaranteed minimum price per unit (yuan)"), **MONEY)
    amount = models.DecimalField(_("amount paid (yuan)"), **MONEY)
    extra_above_market = models.DecimalField(_("paid above the market price (yuan)"), **MONEY)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("delivery")
        verbose_name_plural = _("deliveries")
        indexes = [
            models.Index(fields=["cooperative", "year", "member"], name="coop_delivery_year_idx"),
            models.Index(fields=["member", "year"], name="coop_delivery_member_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(price_paid__gte=F("guaranteed_price")), name="coop_delivery_paid_at_least_guarantee"
            ),
            models.CheckConstraint(
                condition=Q(quantity__gt=0, market_price__gte=0, amount__gte=0, extra_above_market__gte=0),
                name="coop_delivery_plausible",
            ),
        ]

    def __str__(self):
        return f"{self.delivered_on} {self.product} {self.quantity}"


class DistributionQuerySet(models.QuerySet):
    def public(self):
        return self.filter(status__in=(Distribution.Status.APPROVED, Distribution.Status.PAID))


class DistributionManager(models.Manager.from_queryset(DistributionQuerySet)):
    """``inputs`` (every member's figures, a megabyte for a large cooperative)
    is loaded only when asked for: pages and payments never need it."""

    def get_queryset(self):
        return super().get_queryset().defer("inputs")


class Distribution(models.Model):
    """One year's distribution of a cooperative's distributable surplus.

    ``rules`` and ``inputs`` are the exact inputs of
    :func:`cooperatives.distribution.compute`, so the result can be computed
    again and compared. A preview can be recomputed; once bureau staff
    approve it, it is fixed and its lines can be paid.
    """

    class Status(models.TextChoices):
        PREVIEW = "preview", _("Preview")
        APPROVED = "approved", _("Approved")
        PAID = "paid", _("Paid")

    cooperative = models.ForeignKey(Cooperative, on_delete=models.PROTECT, related_name="distributions")
    year = models.PositiveSmallIntegerField(_("year"))
    surplus = models.DecimalField(_("distributable surplus (yuan)"), **MONEY)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.PREVIEW)
    algorithm = models.CharField(max_length=40)
    rules = models.JSONField()
    inputs = models.JSONField()
    volume_total = models.DecimalField(_("returned by transaction volume"), **MONEY)
    fixed_total = models.DecimalField(_("fixed returns"), **MONEY)
    capital_total = models.DecimalField(_("shared by capital"), **MONEY)
    transactions_total = models.DecimalField(_("transactions of the year"), **MONEY)
    capital_weight_total = models.DecimalField(
        _("capital weight of all members (yuan)"), max_digits=20, decimal_places=4
    )
    member_count = models.PositiveIntegerField(_("members"))
    poor_member_count = models.PositiveIntegerField(_("poor households among the members"))
    poor_received_total = models.DecimalField(_("received by poor households"), **MONEY)
    unpaid_count = models.PositiveIntegerField(default=0)
    computed_at = models.DateTimeField()
    computed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    paid_at = models.DateTimeField(null=True, blank=True)

    objects = DistributionManager()

    class Meta:
        verbose_name = _("distribution")
        verbose_name_plural = _("distributions")
        ordering = ["cooperative", "-year"]
        constraints = [
            models.UniqueConstraint(fields=["cooperative", "year"], name="coop_distribution_one_a_year"),
            models.CheckConstraint(
                condition=Q(volume_total__gte=0, fixed_total__gte=0, capital_total__gte=0)
                & Q(surplus=F("volume_total") + F("fixed_total") + F("capital_total")),
                name="coop_distribution_parts_add_up",
            ),
            models.CheckConstraint(
                condition=Q(volume_total__gte=F("surplus") * Decimal("0.6")),
                name="coop_distribution_volume_at_least_60",
            ),
            models.CheckConstraint(condition=Q(year__gte=2000, year__lte=2100), name="coop_distribution_year"),
        ]

    def __str__(self):
        return f"{self.cooperative} · {self.year}"

    @property
    def is_public(self) -> bool:
        return self.status in (self.Status.APPROVED, self.Status.PAID)

    @property
    def volume_percent(self) -> Decimal:
        if not self.surplus:
            return Decimal("0")
        return (self.volume_total * 100 / self.surplus).quantize(Decimal("0.01"))

    @property
    def poor_average(self) -> Decimal | None:
        if not self.poor_member_count:
            return None
        return (self.poor_received_total / self.poor_member_count).quantize(Decimal("0.01"))


class DistributionLine(models.Model):
    """One member's part of a distribution, with how it was computed.
    ``payment_reference`` is unique: recording the payment twice is a no-op."""

    distribution = models.ForeignKey(Distribution, on_delete=models.PROTECT, related_name="lines")
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="distribution_lines")
    is_poor = models.BooleanField(_("poor household"))
    transactions = models.DecimalField(_("transactions of the year"), **MONEY)
    capital_weight = models.DecimalField(_("capital weight (yuan)"), max_digits=20, decimal_places=4)
    fixed_return = models.DecimalField(_("fixed return"), **MONEY)
    volume_return = models.DecimalField(_("returned by transaction volume"), **MONEY)
    capital_return = models.DecimalField(_("dividend on capital"), **MONEY)
    total = models.DecimalField(_("total"), **MONEY)
    extra_above_market = models.DecimalField(_("paid above the market price in the year"), **MONEY)
    basis = models.JSONField(default=dict)
    payment_reference = models.CharField(_("payment reference"), max_length=40, unique=True)
    paid_at = models.DateTimeField(_("paid at"), null=True, blank=True)
    paid_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    payment_note = models.CharField(_("transfer reference"), max_length=64, blank=True)

    class Meta:
        verbose_name = _("distribution line")
        verbose_name_plural = _("distribution lines")
        constraints = [
            models.UniqueConstraint(fields=["distribution", "member"], name="coop_line_one_per_member"),
            models.CheckConstraint(
                condition=Q(fixed_return__gte=0, volume_return__gte=0, capital_return__gte=0)
                & Q(total=F("fixed_return") + F("volume_return") + F("capital_return")),
                name="coop_line_parts_add_up",
            ),
        ]
        indexes = [models.Index(fields=["distribution", "id"], name="coop_line_dist_idx")]

    def __str__(self):
        return self.payment_reference

    @property
    def dividend(self) -> Decimal:
        """What goes into the household's income as a dividend: the fixed
        return and the dividend on capital."""
        return self.fixed_return + self.capital_return
