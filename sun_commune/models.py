"""People, their roles in areas, and the audit log that every app writes to."""

from django.conf import settings
from django.contrib.auth.models import AbstractUser
from django.contrib.contenttypes.models import ContentType
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class User(AbstractUser):
    """A person who logs in. What they may do comes from their role grants
    (secretary, bureau staff) and their donor profile, never from flags."""

    email = models.EmailField(_("e-mail address"), blank=True, db_index=True)
    language = models.CharField(
        _("language for e-mails"), max_length=8, choices=settings.LANGUAGES, default=settings.LANGUAGE_CODE
    )

    class Meta:
        verbose_name = _("user")
        verbose_name_plural = _("users")

    # What was read about the user besides their row: their active grants,
    # their donor profile and whether they manage a cooperative. The user
    # loader (portal.backends) reads all three with the row and hands them
    # over through set_loaded(); otherwise each is looked up once, when first
    # asked for. None until then.
    _grants: list["RoleGrant"] | None = None
    _donor_profile_loaded: bool = False
    _donor_profile = None
    coop_manager: bool | None = None  # set by set_loaded() or by cooperatives.access.is_manager

    def set_loaded(self, *, grants: list["RoleGrant"], donor, coop_manager: bool) -> None:
        """Take what was read with the user's row: their active grants (each
        with its area), their donor profile (or None) and the cooperative
        manager flag. The properties below then answer without a query."""
        self._grants = grants
        self._donor_profile, self._donor_profile_loaded = donor, True
        self.coop_manager = coop_manager

    def forget_loaded(self) -> None:
        """Forget the grants, donor profile and manager flag, so that they are
        read again when next asked for (after one of them changed)."""
        self._grants = None
        self._donor_profile, self._donor_profile_loaded = None, False
        self.coop_manager = None

    @property
    def grants(self) -> list["RoleGrant"]:
        if self._grants is None:
            if not self.is_authenticated or not self.pk:
                self._grants = []
            else:
                self._grants = list(self.role_grants.filter(active=True).select_related("area"))
        return self._grants

    def areas_for(self, role: str) -> list:
        return [g.area for g in self.grants if g.role == role]

    @property
    def secretary_villages(self) -> list:
        return self.areas_for(RoleGrant.Role.SECRETARY)

    @property
    def staff_areas(self) -> list:
        return self.areas_for(RoleGrant.Role.STAFF)

    @property
    def is_secretary(self) -> bool:
        return bool(self.secretary_villages)

    @property
    def is_bureau_staff(self) -> bool:
        return bool(self.staff_areas)

    @property
    def donor_profile(self):
        if not self._donor_profile_loaded:
            # Donor is donations' model, reached through the relation it
            # declares: the base imports no app.
            donor = self._meta.get_field("donor").related_model
            self._donor_profile = donor.objects.filter(user=self).first() if self.pk else None
            self._donor_profile_loaded = True
        return self._donor_profile


class RoleGrant(models.Model):
    """A role held in one area and everything under it. A user may hold several."""

    class Role(models.TextChoices):
        SECRETARY = "secretary", _("Village first secretary")
        STAFF = "staff", _("Bureau staff")

    user = models.ForeignKey(User, on_delete=models.PROTECT, related_name="role_grants")
    role = models.CharField(_("role"), max_length=16, choices=Role)
    area = models.ForeignKey("households.Area", on_delete=models.PROTECT, related_name="role_grants")
    active = models.BooleanField(_("active"), default=True)
    granted_at = models.DateTimeField(_("granted at"), auto_now_add=True)

    class Meta:
        verbose_name = _("role grant")
        verbose_name_plural = _("role grants")
        constraints = [
            models.UniqueConstraint(fields=["user", "role", "area"], name="rolegrant_unique"),
        ]

    def __str__(self):
        return f"{self.user} · {self.get_role_display()} · {self.area}"

    def clean(self):
        village = self.area.Level.VILLAGE if self.area_id else None  # households.Area's levels
        if self.role == self.Role.SECRETARY and self.area_id and self.area.level != village:
            raise ValidationError({"area": _("A first secretary is appointed to a village.")})
        if self.role == self.Role.STAFF and self.area_id and self.area.level == village:
            raise ValidationError({"area": _("Bureau staff work for a township, county, city or province.")})


class AuditEntryQuerySet(models.QuerySet):
    def update(self, **kwargs):
        raise TypeError("audit entries cannot be changed")

    def delete(self):
        raise TypeError("audit entries cannot be deleted")


class AuditEntry(models.Model):
    """Who did what to which object, when, and from which address.

    Written in the same transaction as the change it records. The database
    refuses UPDATE and DELETE on this table (see the migration's trigger);
    the model refuses them too so that mistakes fail early and loudly.
    """

    at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)
    actor = models.ForeignKey(
        User, on_delete=models.PROTECT, null=True, blank=True, related_name="+", verbose_name=_("who")
    )
    action = models.CharField(_("action"), max_length=64)
    content_type = models.ForeignKey(ContentType, on_delete=models.PROTECT, related_name="+")
    object_id = models.CharField(_("object"), max_length=64)
    ip_address = models.GenericIPAddressField(_("from address"), null=True, blank=True)
    changes = models.JSONField(_("changes"), default=dict, blank=True)

    objects = AuditEntryQuerySet.as_manager()

    class Meta:
        verbose_name = _("audit entry")
        verbose_name_plural = _("audit entries")
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["content_type", "object_id", "at"], name="audit_object_idx")]
        constraints = [models.CheckConstraint(condition=~Q(action=""), name="audit_action_not_empty")]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.actor or '-'} {self.action}"

    def save(self, *args, **kwargs):
        if self.pk is not None:
            raise TypeError("audit entries cannot be changed")
        super().save(*args, **kwargs)

    def delete(self, *args, **kwargs):
        raise TypeError("audit entries cannot be deleted")


class MailRequest(models.Model):
    """A mail someone asked the site to send to an address they typed (a
    password reset, a registration), kept to cap how many one address gets
    and one client asks for in an hour. The address is kept as a keyed hash:
    the count needs no address in clear."""

    class Kind(models.TextChoices):
        PASSWORD_RESET = "password_reset", _("Password reset")
        REGISTRATION = "registration", _("Registration")

    kind = models.CharField(_("kind"), max_length=16, choices=Kind)
    address_hash = models.CharField(_("address (keyed hash)"), max_length=64)
    client_ip = models.GenericIPAddressField(_("from address"), null=True, blank=True)
    at = models.DateTimeField(_("when"), default=timezone.now)

    class Meta:
        verbose_name = _("mail request")
        verbose_name_plural = _("mail requests")
        indexes = [
            models.Index(fields=["address_hash", "at"], name="mailrequest_address_idx"),
            models.Index(fields=["client_ip", "at"], name="mailrequest_client_idx"),
            models.Index(fields=["at"], name="mailrequest_at_idx"),
        ]

    def __str__(self):
        return f"{self.at:%Y-%m-%d %H:%M} {self.kind}"
