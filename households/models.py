"""Areas (the tree of places) and the register of poor households."""

import secrets

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.lookups import Exact
from django.utils import timezone
from django.utils.translation import get_language
from django.utils.translation import gettext_lazy as _

from sun_commune.ids import canonical
from sun_commune.search import index_terms

from .crypto import EncryptedTextField, id_hash


def name_terms(*names: str) -> list[str]:
    return index_terms(*names)


class AreaQuerySet(models.QuerySet):
    def villages(self):
        return self.filter(level=Area.Level.VILLAGE)

    def under(self, area: "Area"):
        """The area and everything below it."""
        return self.filter(path__startswith=area.path)


class Area(models.Model):
    """One place in the tree province → city → county → township → village.

    ``path`` is the chain of codes from the root ("510000.510700.510723.")
    so that "everything under X" is one indexed prefix match at any depth.
    """

    class Level(models.IntegerChoices):
        PROVINCE = 1, _("Province")
        CITY = 2, _("City")
        COUNTY = 3, _("County or district")
        TOWNSHIP = 4, _("Town or township")
        VILLAGE = 5, _("Village")

    code = models.CharField(_("code"), max_length=20, unique=True)
    name = models.CharField(_("name"), max_length=64)
    name_en = models.CharField(_("name in English"), max_length=64, blank=True)
    level = models.PositiveSmallIntegerField(_("level"), choices=Level)
    parent = models.ForeignKey("self", on_delete=models.PROTECT, null=True, blank=True, related_name="children")
    path = models.CharField(max_length=255, unique=True, editable=False)
    is_poor_village = models.BooleanField(_("registered poor village"), default=False)

    objects = AreaQuerySet.as_manager()

    class Meta:
        verbose_name = _("area")
        verbose_name_plural = _("areas")
        ordering = ["path"]
        indexes = [
            models.Index(fields=["parent", "name"], name="area_parent_name_idx"),
            models.Index(fields=["path"], name="area_path_prefix_idx", opclasses=["varchar_pattern_ops"]),
        ]
        constraints = [
            models.CheckConstraint(
                # A tree's root is a province or a city; everything else has a parent.
                condition=Q(level__lte=2, parent__isnull=True) | Q(level__gt=1, parent__isnull=False),
                name="area_parent_matches_level",
            )
        ]

    def __str__(self):
        return self.label

    def save(self, *args, **kwargs):
        self.path = f"{self.parent.path if self.parent_id else ''}{self.code}."
        super().save(*args, **kwargs)

    @property
    def label(self) -> str:
        if self.name_en and (get_language() or "").startswith("en"):
            return self.name_en
        return self.name

    def contains(self, other: "Area") -> bool:
        return other.path.startswith(self.path)

    def ancestor_codes(self) -> list[str]:
        return self.path.rstrip(".").split(".")

    def ancestor_at(self, level: int) -> "Area | None":
        """The area at ``level`` above (or equal to) this one, loaded once."""
        if self.level == level:
            return self
        codes = self.ancestor_codes()
        return Area.objects.filter(code__in=codes, level=level).first()


AREA_INDEX_DEPTHS = 4  # households/migrations/0010: (area_codes[d], id) for d = 1..4


def _under(area: Area, *, by_codes: bool = False) -> Q:
    """Households of ``area`` and everything below it: a village's by its id,
    a larger area's by its code at its depth in ``area_codes`` (an index on
    (area_codes[depth], id) gives them newest first without a sort), or,
    ``by_codes``, by its code anywhere in ``area_codes`` (the same
    households: codes are unique across levels), which the GIN index of
    names and area codes answers together with a name."""
    if area.level == Area.Level.VILLAGE:
        return Q(village_id=area.pk)
    depth = area.path.count(".")
    if by_codes or depth > AREA_INDEX_DEPTHS:
        return Q(area_codes__contains=[area.code])
    # The subscript is written into the SQL, not passed as a parameter (as
    # area_codes__2 would): a prepared statement's generic plan can then use
    # the index on (area_codes[depth], id) (sun_commune/prepared.py).
    code_at_depth = Func(F("area_codes"), template=f"%(expressions)s[{int(depth)}]", output_field=models.CharField())
    return Q(Exact(code_at_depth, area.code))


def under_any_code(areas) -> Q:
    """The same households as ``within_any(areas)``, said through the GIN
    index of ``area_codes`` that also holds the names: a name searched
    within a county is then one index scan instead of two bitmaps ANDed,
    which read far more of the index. Only worth adding beside a name
    condition."""
    codes = [a.code for a in areas if a.level != Area.Level.VILLAGE]
    return Q(area_codes__overlap=codes) if codes else Q()


class HouseholdQuerySet(models.QuerySet):
    def within(self, area: Area, *, by_codes: bool = False):
        return self.filter(_under(area, by_codes=by_codes))

    def within_any(self, areas, *, by_codes: bool = False):
        q = Q()
        for area in areas:
            q |= _under(area, by_codes=by_codes)
        return self.filter(q) if areas else self.none()


def new_public_id() -> str:
    """A public pseudonymous id that reveals nothing (not the ID number, not the
    village, not the order of registration)."""
    alphabet = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
    return "H" + "".join(secrets.choice(alphabet) for _ in range(9))


class Household(models.Model):
    """A registered poor household.

    The consent flags are the current state of the household's consent,
    read by every public page; they change only through
    ``services.record_consent``, which keeps each decision as a
    ``ConsentRecord``. Withdrawing consent clears the flag in the same
    transaction, so the thing is hidden everywhere at once.

    Public fields: ``public_id``, ``alias`` (only with consent), ``size``,
    ``poverty_causes``, ``story`` (only with consent). Everything under
    "private" is shown only to the village's secretary and bureau staff over
    the village, and never leaves the site.
    """

    class Status(models.TextChoices):
        POOR = "poor", _("Registered poor")
        LIFTED = "lifted", _("Lifted out of poverty")
        MONITORED = "monitored", _("Monitored: risk of falling back")

    class Housing(models.TextChoices):
        SAFE = "safe", _("Safe")
        RENOVATED = "renovated", _("Renovated with aid")
        DILAPIDATED = "dilapidated", _("Dilapidated")
        RELOCATED = "relocated", _("Relocated")

    class Cause(models.TextChoices):
        ILLNESS = "illness", _("Illness")
        DISABILITY = "disability", _("Disability")
        LABOUR = "labour", _("Lack of labour")
        SKILLS = "skills", _("Lack of skills")
        FUNDS = "funds", _("Lack of funds")
        LAND = "land", _("Lack of land")
        WATER = "water", _("Lack of water")
        DISASTER = "disaster", _("Disaster")
        SCHOOLING = "schooling", _("Schooling costs")
        OTHER = "other", _("Other")

    village = models.ForeignKey(
        Area,
        on_delete=models.PROTECT,
        related_name="households",
        verbose_name=_("village"),
        limit_choices_to={"level": Area.Level.VILLAGE},
    )
    public_id = models.CharField(_("public id"), max_length=16, unique=True, default=new_public_id, editable=False)
    # Public, with consent.
    alias = models.CharField(
        _("public alias"), max_length=32, blank=True, help_text=_('For example "Huang family". Never a full name.')
    )
    alias_consent = models.BooleanField(_("the household agreed to show the alias"), default=False)
    size = models.PositiveSmallIntegerField(_("household size"), default=1)
    poverty_causes = ArrayField(
        models.CharField(max_length=16, choices=Cause), default=list, blank=True, verbose_name=_("poverty causes")
    )
    story = models.TextField(_("public story"), blank=True, max_length=2000)
    story_consent = models.BooleanField(_("the household agreed to publish the story"), default=False)
    photo_consent = models.BooleanField(_("the household agreed to show photos of it"), default=False)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.POOR)
    lifted_out_year = models.PositiveSmallIntegerField(_("lifted out of poverty in"), null=True, blank=True)
    housing = models.CharField(_("housing"), max_length=16, choices=Housing, blank=True)
    # Character unigrams and bigrams of the head's and members' names (see
    # sun_commune.search): a name search of one, two or more characters is one
    # GIN lookup on a register of millions. Only staff and secretaries search.
    name_terms = ArrayField(models.CharField(max_length=8), default=list, editable=False)
    # The codes of the village and of every area above it, written by a
    # database trigger (migration 0009) whoever inserts the row: "everything
    # under a county" is a GIN lookup that combines with a name in one index
    # scan (household_name_area_idx).
    area_codes = ArrayField(models.CharField(max_length=20), default=list, editable=False)
    # Private.
    head_name = models.CharField(_("head of household (full name)"), max_length=64)
    # Encrypted at rest; found and kept unique through id_hash (households.crypto).
    id_number = EncryptedTextField(_("ID number"), blank=True)
    id_hash = models.CharField(max_length=64, null=True, blank=True, unique=True, editable=False)
    phone = EncryptedTextField(_("phone"), blank=True)
    address = models.CharField(_("address"), max_length=255, blank=True)
    health_notes = models.TextField(_("health notes"), blank=True)

    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    objects = HouseholdQuerySet.as_manager()

    class Meta:
        verbose_name = _("household")
        verbose_name_plural = _("households")
        ordering = ["village", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(size__gte=1), name="household_size_positive"),
            models.CheckConstraint(
                condition=~Q(status="lifted") | Q(lifted_out_year__isnull=False), name="household_lifted_has_year"
            ),
        ]
        indexes = [
            GinIndex(fields=["name_terms", "area_codes"], name="household_name_area_idx"),
            GinIndex(fields=["poverty_causes"], name="household_causes_idx"),
            models.Index(fields=["village", "status", "id"], name="household_village_status_idx"),
        ]

    def __str__(self):
        return self.public_label

    def save(self, *args, **kwargs):
        self.id_number = canonical(self.id_number)
        self.id_hash = id_hash(self.id_number)
        self.name_terms = name_terms(self.head_name, *self.member_names())
        if kwargs.get("update_fields") is not None:
            kwargs["update_fields"] = {*kwargs["update_fields"], "id_hash", "name_terms"}
        super().save(*args, **kwargs)

    def member_names(self) -> list[str]:
        """The members' names for the name index: set by whoever already has
        them (``_member_names``), else read (one query)."""
        names = getattr(self, "_member_names", None)
        if names is None:
            names = (
                list(HouseholdMember.objects.filter(household_id=self.pk).values_list("name", flat=True))
                if self.pk
                else []
            )
        return names

    @property
    def public_label(self) -> str:
        """What anyone may see: the consented alias, else the pseudonymous id."""
        if self.alias and self.alias_consent:
            return self.alias
        return str(_("Household %(id)s") % {"id": self.public_id})

    @property
    def public_story(self) -> str:
        return self.story if self.story_consent else ""

    def consent_for(self, subject: str) -> bool:
        return getattr(self, f"{subject}_consent")

    def get_poverty_causes_display(self) -> list[str]:
        labels = dict(self.Cause.choices)
        return [str(labels.get(c, c)) for c in self.poverty_causes]


class HouseholdMember(models.Model):
    """A person of a household. Names and health are private."""

    class Ability(models.TextChoices):
        FULL = "full", _("Can work")
        PARTIAL = "partial", _("Can do light work")
        NONE = "none", _("Cannot work")

    household = models.ForeignKey(Household, on_delete=models.PROTECT, related_name="members")
    name = models.CharField(_("name"), max_length=64)
    relation = models.CharField(_("relation to the head"), max_length=32)
    birth_year = models.PositiveSmallIntegerField(_("year of birth"), null=True, blank=True)
    health = models.CharField(_("health"), max_length=200, blank=True)
    ability = models.CharField(_("ability to work"), max_length=8, choices=Ability, default=Ability.FULL)

    class Meta:
        verbose_name = _("household member")
        verbose_name_plural = _("household members")
        ordering = ["household", "id"]

    def __str__(self):
        return self.relation


class ConsentRecord(models.Model):
    """One decision of a household about one thing that may be shown: given
    or withdrawn, recorded by whom, when and on what basis. Append-only."""

    class Subject(models.TextChoices):
        ALIAS = "alias", _("Alias")
        STORY = "story", _("Story")
        PHOTO = "photo", _("Photos")

    household = models.ForeignKey(Household, on_delete=models.PROTECT, related_name="consents")
    subject = models.CharField(_("what"), max_length=8, choices=Subject)
    granted = models.BooleanField(_("given"))
    basis = models.CharField(_("basis"), max_length=200)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    recorded_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name = _("consent record")
        verbose_name_plural = _("consent records")
        ordering = ["household", "subject", "-recorded_at", "-id"]
        constraints = [models.CheckConstraint(condition=~Q(basis=""), name="consent_has_basis")]

    def __str__(self):
        return f"{self.household_id} {self.subject} {self.granted}"


class IncomeRecord(models.Model):
    """One amount of a household's income in a year, by source.

    Records written by the platform itself (a cooperative's dividend, say)
    carry an ``origin`` key that is unique, so writing the same income twice
    is impossible. A wrong record is corrected by a negative record with a
    note, never by editing: the reports add them up.
    """

    class Source(models.TextChoices):
        WAGES = "wages", _("Wages")
        FARMING = "farming", _("Farming and breeding")
        DIVIDEND = "dividend", _("Cooperative dividends")
        REBATE = "rebate", _("Cooperative rebates and extra paid above market price")
        TRANSFERS = "transfers", _("Transfers and subsidies")
        OTHER = "other", _("Other")

    household = models.ForeignKey(Household, on_delete=models.PROTECT, related_name="income_records")
    year = models.PositiveSmallIntegerField(_("year"))
    source = models.CharField(_("source"), max_length=16, choices=Source)
    amount = models.DecimalField(_("amount (yuan)"), max_digits=14, decimal_places=2)
    note = models.CharField(_("note"), max_length=200, blank=True)
    origin = models.CharField(max_length=80, null=True, blank=True, unique=True, editable=False)
    recorded_at = models.DateTimeField(auto_now_add=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("income record")
        verbose_name_plural = _("income records")
        indexes = [models.Index(fields=["household", "year", "source"], name="income_household_year_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(year__gte=2000, year__lte=2100), name="income_year_plausible"),
        ]

    def __str__(self):
        return f"{self.year} {self.get_source_display()} {self.amount}"


class VillageProfile(models.Model):
    """What a village publishes about itself, kept by its first secretary."""

    village = models.OneToOneField(
        Area, on_delete=models.PROTECT, primary_key=True, related_name="profile", limit_choices_to={"level": 5}
    )
    population = models.PositiveIntegerField(_("population"), null=True, blank=True)
    collective_income = models.DecimalField(
        _("collective income last year (yuan)"), max_digits=14, decimal_places=2, null=True, blank=True
    )
    description = models.TextField(_("about the village"), blank=True, max_length=4000)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = _("village profile")
        verbose_name_plural = _("village profiles")

    def __str__(self):
        return str(self.village)


class HouseholdChange(models.Model):
    """One field of a household, or of one of its members, changed: who,
    when, old → new. Append-only (the database refuses UPDATE and DELETE).

    The values may be private (a name, an ID number, a diagnosis), so they
    are kept encrypted like the ID number itself, as JSON of the value;
    only the village's secretary and the bureau staff over it read them.
    The audit entry of the same action (``audit_entry``) says from where.
    """

    class Kind(models.TextChoices):
        CREATED = "created", _("Registered")
        CHANGED = "changed", _("Changed")
        CONSENT = "consent", _("Consent")
        MEMBER_ADDED = "member_added", _("Member added")
        MEMBER_CHANGED = "member_changed", _("Member changed")
        MEMBER_REMOVED = "member_removed", _("Member removed")

    household = models.ForeignKey(Household, on_delete=models.PROTECT, related_name="changes")
    kind = models.CharField(_("what happened"), max_length=16, choices=Kind)
    # The member concerned; a plain number so that it outlives the member.
    member_id = models.BigIntegerField(null=True, blank=True)
    field = models.CharField(_("field"), max_length=32, blank=True)
    old_value = EncryptedTextField(_("old value"), blank=True)
    new_value = EncryptedTextField(_("new value"), blank=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("who"),
    )
    changed_at = models.DateTimeField(_("when"), default=timezone.now)
    audit_entry = models.ForeignKey(
        "sun_commune.AuditEntry", on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )

    class Meta:
        verbose_name = _("household change")
        verbose_name_plural = _("household changes")
        ordering = ["household", "-changed_at", "-id"]
        indexes = [models.Index(fields=["household", "-id"], name="householdchange_household_idx")]

    def __str__(self):
        return f"{self.household_id} {self.kind} {self.field}"


class ImportJob(models.Model):
    """One uploaded file of households for an area, checked row by row and
    imported in one transaction by a Celery task (households.importing).

    The job row is the truth about the import: its final status is written
    in the same transaction as the households. Progress (``phase``,
    ``processed_rows``) is written meanwhile over a second connection, so the
    page can show it while the import transaction is still open. The file
    itself holds ID numbers: it is kept encrypted and emptied once the job
    is finished.
    """

    class Status(models.TextChoices):
        QUEUED = "queued", _("Waiting to start")
        RUNNING = "running", _("Running")
        INVALID = "invalid", _("Errors found: nothing imported")
        DONE = "done", _("Imported")
        FAILED = "failed", _("Failed: nothing imported")

    class Phase(models.TextChoices):
        READING = "reading", _("Reading the file")
        CHECKING = "checking", _("Checking each row")
        IMPORTING = "importing", _("Importing")
        FINISHED = "finished", _("Finished")

    FINAL = (Status.INVALID, Status.DONE, Status.FAILED)

    area = models.ForeignKey(Area, on_delete=models.PROTECT, related_name="+", verbose_name=_("area"))
    filename = models.CharField(_("file"), max_length=255)
    content = models.BinaryField(editable=False, blank=True)
    status = models.CharField(_("status"), max_length=16, choices=Status, default=Status.QUEUED)
    phase = models.CharField(_("phase"), max_length=16, choices=Phase, default=Phase.READING)
    total_rows = models.PositiveIntegerField(default=0)
    processed_rows = models.PositiveIntegerField(default=0)
    created_count = models.PositiveIntegerField(_("households imported"), default=0)
    member_count = models.PositiveIntegerField(_("members imported"), default=0)
    skipped_count = models.PositiveIntegerField(_("already registered"), default=0)
    error_count = models.PositiveIntegerField(_("errors"), default=0)
    # [{"sheet": ..., "row": n, "column": ..., "message": ...}], the first
    # ERRORS_KEPT of them; never a value from the file.
    errors = models.JSONField(default=list, blank=True)
    notes = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    # The uploader's language: the report's messages are written in it.
    language = models.CharField(max_length=8, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        verbose_name = _("household import")
        verbose_name_plural = _("household imports")
        ordering = ["-id"]

    def __str__(self):
        return f"{self.pk} {self.filename} {self.status}"

    @property
    def is_finished(self) -> bool:
        return self.status in self.FINAL

    @property
    def percent(self) -> int:
        """Reading and checking are the first half of the work, importing the second."""
        if self.status == self.Status.DONE:
            return 100
        if not self.total_rows:
            return 0
        share = min(self.processed_rows, self.total_rows) * 50 // self.total_rows
        return share + (50 if self.phase == self.Phase.IMPORTING else 0)


class VillageFigures(models.Model):
    """A village's register in numbers, for the reports: computed by a Celery
    task (nightly, after an import, or when staff ask) so that a report over a
    province sums ten thousand village rows instead of two million households.

    ``by_status`` and ``by_cause``: {code: households}. ``income``: per year
    (as a string), the households with income recorded that year, their
    people and total; and the same for those of them that also have income
    recorded the year before (``both_*``), the base of "so many households,
    so much more on average".
    """

    village = models.OneToOneField(Area, on_delete=models.CASCADE, primary_key=True, related_name="figures")
    households = models.PositiveIntegerField(default=0)
    persons = models.PositiveIntegerField(default=0)
    by_status = models.JSONField(default=dict)
    by_cause = models.JSONField(default=dict)
    income = models.JSONField(default=dict)
    computed_at = models.DateTimeField()

    class Meta:
        verbose_name = _("village figures")
        verbose_name_plural = _("village figures")

    def __str__(self):
        return f"{self.village_id}: {self.households}"
