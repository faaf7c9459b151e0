from django import forms
from django.utils.translation import gettext_lazy as _

from .crypto import id_hash, id_number_valid, normalise_id
from .models import Household


class HouseholdForm(forms.ModelForm):
    consent_basis = forms.CharField(
        label=_("Basis of the consent"),
        max_length=200,
        required=False,
        help_text=_("When a consent is given or withdrawn: for example “signed form of 2026-11-29, kept at the village office”."),
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

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["status"].required = False

    def clean_status(self):
        return self.cleaned_data.get("status") or Household.Status.POOR

    def clean_size(self):
        size = self.cleaned_data["size"]
        if size < 1:
            raise forms.ValidationError(_("A household has at least one person."))
        return size

    def clean_id_number(self):
        value = normalise_id(self.cleaned_data["id_number"])
        if not value:
            return value
        if len(value) != 18 or not value[:17].isdigit() or not (value[17].isdigit() or value[17] == "X"):
            raise forms.ValidationError(_("An ID number has 18 characters: 17 digits and a digit or X."))
        if not id_number_valid(value):
            raise forms.ValidationError(_("The check digit of this ID number is wrong; please check each digit."))
        others = Household.objects.filter(id_hash=id_hash(value))
        if self.instance.pk:
            others = others.exclude(pk=self.instance.pk)
        if others.exists():
            raise forms.ValidationError(_("A household with this ID number is already registered."))
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
