import unicodedata
from decimal import Decimal

from django import forms
from django.core.validators import MaxLengthValidator
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from sun_commune import ids
from sun_commune.search import normalise, query_terms

from . import access, services
from .crypto import id_hash
from .models import Area, ConsentRecord, Household, HouseholdMember, IncomeRecord, under_any_code


class HouseholdForm(forms.ModelForm):
    consent_basis = forms.CharField(
        label=_("Basis of the consent"),
        max_length=200,
        required=False,
        help_text=_(
            "When a consent is given or withdrawn: for example “signed form of 2026-11-29, kept at the village office”."
        ),
    )

    poverty_causes = forms.MultipleChoiceField(
        label=_("Poverty causes"), choices=Household.Cause.choices, required=False, widget=forms.CheckboxSelectMultiple
    )

    class Meta:
        model = Household
        fields = [
            "head_name",
            "id_number",
            "phone",
            "address",
            "health_notes",
            "size",
            "poverty_causes",
            "status",
            "lifted_out_year",
            "housing",
            "alias",
            "alias_consent",
            "story",
            "story_consent",
            "photo_consent",
            "consent_basis",
        ]
        widgets = {
            "story": forms.Textarea(attrs={"rows": 3}),
            "health_notes": forms.Textarea(attrs={"rows": 2}),
        }

    def __init__(self, *args, user=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user = user
        # Encrypted text columns have no length of their own: one line each,
        # with the limits of the thing they hold.
        for name, length, mode in (("id_number", 18, "text"), ("phone", 32, "tel")):
            field = self.fields[name]
            field.widget = forms.TextInput(attrs={"maxlength": length, "inputmode": mode, "autocomplete": "off"})
            field.max_length = length
            field.validators.append(MaxLengthValidator(length))
        self.fields["status"].required = False

    def clean_status(self):
        return self.cleaned_data.get("status") or Household.Status.POOR

    def clean_size(self):
        size = self.cleaned_data["size"]
        if size < 1:
            raise forms.ValidationError(_("A household has at least one person."))
        return size

    def clean_id_number(self):
        if self.instance.pk and ids.canonical(self.cleaned_data["id_number"]) == self.instance.id_number:
            # Left as it was: a row registered before the strict rules stays
            # editable (manage.py check_id_numbers lists it for correction).
            return self.instance.id_number
        value = valid_id_number(self.cleaned_data["id_number"])
        if not value:
            return value
        others = Household.objects.filter(id_hash=id_hash(value))
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        other = others.select_related("village").first()
        if other is not None:
            raise forms.ValidationError(duplicate_message(self.user, other))
        return value

    def clean(self):
        data = super().clean()
        if data.get("alias_consent") and not data.get("alias"):
            self.add_error("alias", _("Enter the alias the household agreed to show."))
        if data.get("story_consent") and not data.get("story"):
            self.add_error("story", _("Enter the story the household agreed to publish."))
        changed = [f for f in ("alias_consent", "story_consent", "photo_consent") if f in self.changed_data]
        if self.instance.pk is None:
            changed = [f for f in changed if data.get(f)]
        if changed and not data.get("consent_basis", "").strip():
            self.add_error("consent_basis", _("Say on what basis the consent was given or withdrawn."))
        if data.get("status") == Household.Status.LIFTED and not data.get("lifted_out_year"):
            self.add_error("lifted_out_year", _("Enter the year the household was lifted out of poverty."))
        return data


def valid_id_number(value: str) -> str:
    """The canonical form of a typed ID number ("" when none was typed), or a
    form error naming what is wrong with it (sun_commune.ids)."""
    value = ids.canonical(value)
    if not value:
        return value
    try:
        return ids.validate(value)
    except ids.IdProblem as problem:
        raise forms.ValidationError(problem.message, code=problem.code) from None


def duplicate_message(user, other: Household) -> str:
    """Why a second household with the same ID number is refused: where the
    first one is, if the user may see it; otherwise only that it exists."""
    if user is not None and access.households_for(user).filter(pk=other.pk).exists():
        return gettext("A household with this ID number is already registered: %(id)s in %(village)s.") % {
            "id": other.public_id,
            "village": other.village.label,
        }
    return services.duplicate_id_message()


class AreaCodeField(forms.CharField):
    """An area given by its code, which must lie within ``areas``."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_length", 20)
        super().__init__(*args, **kwargs)
        self.areas: list[Area] = []

    def clean(self, value):
        code = unicodedata.normalize("NFKC", super().clean(value) or "").strip()
        if not code:
            return None
        area = Area.objects.filter(code=code).first()
        if area is None or not any(scope.contains(area) for scope in self.areas):
            raise forms.ValidationError(_("No area with this code in your area."))
        return area


class HouseholdFilterForm(forms.Form):
    """Filters of the register list: each is an indexed condition, and a name
    is found through the name index (see sun_commune.search)."""

    area = AreaCodeField(label=_("Area code"), required=False)
    status = forms.ChoiceField(
        label=_("Status"), choices=[("", _("Any status"))] + Household.Status.choices, required=False
    )
    cause = forms.ChoiceField(
        label=_("Poverty cause"), choices=[("", _("Any cause"))] + Household.Cause.choices, required=False
    )
    q = forms.CharField(
        label=_("Name"),
        max_length=32,
        required=False,
        help_text=_("A whole name or a part of it, of the head or a member."),
    )
    id_number = forms.CharField(label=_("ID number"), max_length=24, required=False)

    def __init__(self, *args, areas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["area"].areas = areas

    def clean_id_number(self):
        return valid_id_number(self.cleaned_data["id_number"])

    def _name_words(self) -> list[str]:
        return normalise(self.cleaned_data.get("q") or "").split()[:4]

    def searches_names(self) -> bool:
        return bool(self._name_words())

    def filter(self, households):
        """``households`` narrowed by the form's valid fields."""
        data = self.cleaned_data
        area = data.get("area")
        chunks = self._name_words()
        if area is not None:
            households = households.within(area, by_codes=bool(chunks))
        if data.get("status"):
            households = households.filter(status=data["status"])
        if data.get("cause"):
            households = households.filter(poverty_causes__contains=[data["cause"]])
        if data.get("id_number"):
            households = households.filter(id_hash=id_hash(data["id_number"]))
        if chunks:
            scope = [area] if area is not None else self.fields["area"].areas
            households = households.filter(under_any_code(scope), name_terms__contains=query_terms(" ".join(chunks)))
            # A word of one or two characters is matched exactly by the index:
            # each term is a character, or two neighbouring characters, of one
            # name. A longer word's pairs could come from different names or
            # places, so only then are the names themselves checked.
            for chunk in chunks:
                if len(chunk) > 2:
                    member = HouseholdMember.objects.filter(household=OuterRef("pk"), name__icontains=chunk)
                    households = households.filter(Q(head_name__icontains=chunk) | Exists(member))
        return households

    def described(self) -> dict:
        """The filters for the audit log of an export: never the name or the
        ID number searched for."""
        data = self.cleaned_data
        return {
            "area": data["area"].code if data.get("area") else None,
            "status": data.get("status") or None,
            "cause": data.get("cause") or None,
            "name_search": bool(data.get("q")),
            "id_search": bool(data.get("id_number")),
        }


class MemberForm(forms.ModelForm):
    class Meta:
        model = HouseholdMember
        fields = ["name", "relation", "birth_year", "ability", "health"]

    def clean_birth_year(self):
        year = self.cleaned_data.get("birth_year")
        if year is not None and not 1900 <= year <= timezone.localdate().year:
            raise forms.ValidationError(_("Enter a year of birth between 1900 and this year."))
        return year


class IncomeForm(forms.Form):
    year = forms.IntegerField(label=_("Year"))
    source = forms.ChoiceField(label=_("Source"), choices=IncomeRecord.Source.choices)
    amount = forms.DecimalField(
        label=_("Amount (yuan)"),
        max_digits=14,
        decimal_places=2,
        help_text=_("A correction is a negative amount with a note."),
    )
    note = forms.CharField(label=_("Note"), max_length=200, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["year"].initial = timezone.localdate().year

    def clean_year(self):
        year = self.cleaned_data["year"]
        if not 2000 <= year <= timezone.localdate().year:
            raise forms.ValidationError(_("Enter a year from 2000 to this year."))
        return year

    def clean(self):
        data = super().clean()
        if data.get("amount") is not None and data["amount"] == Decimal("0"):
            self.add_error("amount", _("Enter an amount other than zero."))
        if data.get("amount") is not None and data["amount"] < 0 and not data.get("note", "").strip():
            self.add_error("note", _("Say what a negative amount corrects."))
        return data


class ConsentForm(forms.Form):
    subject = forms.ChoiceField(label=_("What"), choices=ConsentRecord.Subject.choices)
    granted = forms.TypedChoiceField(
        label=_("Decision"),
        choices=[("1", _("Consent given")), ("0", _("Consent withdrawn"))],
        coerce=lambda v: v == "1",
    )
    basis = forms.CharField(
        label=_("Basis"),
        max_length=200,
        help_text=_(
            "For example “signed form of 2026-11-29, kept at the village office” or “asked by phone on 2026-12-01”."
        ),
    )


class ImportForm(forms.Form):
    area = AreaCodeField(
        label=_("Area of the import"),
        help_text=_("The code of the village, township or county the file is for; every row's village must be in it."),
    )
    file = forms.FileField(label=_("File (.xlsx or .csv)"))

    MAX_BYTES = 40 * 1024 * 1024

    def __init__(self, *args, areas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["area"].areas = areas
        if areas:
            self.fields["area"].initial = areas[0].code

    def clean_file(self):
        upload = self.cleaned_data["file"]
        name = upload.name.lower()
        if not name.endswith((".xlsx", ".csv")):
            raise forms.ValidationError(_("Upload an .xlsx or a .csv file."))
        if upload.size > self.MAX_BYTES:
            raise forms.ValidationError(_("The file is larger than 40 MB; split it by township."))
        return upload


class ReportForm(forms.Form):
    area = AreaCodeField(label=_("Area code"), required=False)
    year = forms.IntegerField(label=_("Year"), required=False)

    def __init__(self, *args, areas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["area"].areas = areas

    def clean_year(self):
        year = self.cleaned_data.get("year") or timezone.localdate().year
        if not 2001 <= year <= timezone.localdate().year:
            raise forms.ValidationError(_("Enter a year from 2001 to this year."))
        return year


class VillageProfileForm(forms.Form):
    population = forms.IntegerField(label=_("Population"), min_value=0, max_value=1_000_000, required=False)
    collective_income = forms.DecimalField(
        label=_("Collective income last year (yuan)"), max_digits=14, decimal_places=2, min_value=0, required=False
    )
    description = forms.CharField(
        label=_("About the village"), max_length=4000, required=False, widget=forms.Textarea(attrs={"rows": 5})
    )
    is_poor_village = forms.BooleanField(label=_("Registered poor village"), required=False)

    def __init__(self, *args, staff: bool, **kwargs):
        super().__init__(*args, **kwargs)
        if not staff:
            del self.fields["is_poor_village"]
