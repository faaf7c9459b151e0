from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from households.models import Area, Household

from .models import Donor, Need
from .photos import clean_photo


class NeedForm(forms.ModelForm):
    class Meta:
        model = Need
        fields = [
            "household",
            "title",
            "description",
            "category",
            "kind",
            "item",
            "quantity",
            "unit",
            "unit_price",
            "target_amount",
            "deadline",
        ]
        widgets = {
            "deadline": forms.DateInput(attrs={"type": "date"}),
            "description": forms.Textarea(attrs={"rows": 4}),
        }
        help_texts = {
            "item": _("Goods only: for example 电热毯."),
            "quantity": _("Goods: how many; service: how many hours."),
            "unit": _("For example 床, 台, kg, hours."),
            "unit_price": _("Goods only: an estimate, for the declared value."),
            "target_amount": _("Money only."),
        }

    def __init__(self, *args, village: Area, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["household"].queryset = Household.objects.filter(village=village).order_by("id")
        self.fields["household"].empty_label = _("— the whole village —")
        self.fields["household"].label_from_instance = lambda h: f"{h.public_label} · {h.head_name}"

    def clean_deadline(self):
        deadline = self.cleaned_data["deadline"]
        if deadline < timezone.localdate():
            raise forms.ValidationError(_("The deadline has already passed."))
        return deadline

    def clean(self):
        data = super().clean()
        kind = data.get("kind")
        if kind == Need.Kind.MONEY:
            if not data.get("target_amount"):
                self.add_error("target_amount", _("Enter the amount of money needed."))
            elif data["target_amount"] <= 0:
                self.add_error("target_amount", _("Enter an amount of at least 0.01 yuan."))
        elif kind in (Need.Kind.GOODS, Need.Kind.SERVICE):
            if not data.get("quantity"):
                self.add_error("quantity", _("Enter how many are needed."))
            if kind == Need.Kind.GOODS and not data.get("item"):
                self.add_error("item", _("Name the item that is needed."))
        return data


class RejectForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason for rejection"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000
    )


class PledgeForm(forms.Form):
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, required=False)
    amount = forms.DecimalField(label=_("Amount (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2, required=False)
    message = forms.CharField(label=_("Message to the village (optional)"), max_length=500, required=False)

    def __init__(self, *args, need: Need, **kwargs):
        super().__init__(*args, **kwargs)
        self.need = need
        if need.is_money:
            del self.fields["quantity"]
            self.fields["amount"].required = True
            self.fields["amount"].max_value = need.remaining
        else:
            del self.fields["amount"]
            self.fields["quantity"].required = True
            self.fields["quantity"].label = _("Quantity (%(unit)s)") % {"unit": need.unit}
            self.fields["quantity"].initial = need.remaining


class ConfirmReceiptForm(forms.Form):
    quantity = forms.IntegerField(label=_("Quantity that arrived"), min_value=1)
    photo = forms.ImageField(label=_("Photo (optional)"), required=False)
    note = forms.CharField(label=_("Note (optional)"), max_length=500, required=False)

    def clean_photo(self):
        photo = self.cleaned_data.get("photo")
        return clean_photo(photo) if photo else None


class MoneyReceivedForm(forms.Form):
    amount = forms.DecimalField(label=_("Amount received (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    reference = forms.CharField(label=_("Transfer reference"), max_length=64)


class ThanksForm(forms.Form):
    message = forms.CharField(label=_("Thank-you message"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


class DonorRegistrationForm(UserCreationForm):
    email = forms.EmailField(label=_("E-mail"), help_text=_("We send pledge news and password resets here."))
    kind = forms.ChoiceField(label=_("I give as"), choices=Donor.Kind.choices)
    name = forms.CharField(label=_("Name (person, enterprise or organisation)"), max_length=100)
    show_name = forms.BooleanField(
        label=_("Show my name publicly"), required=False, help_text=_('Otherwise the public sees "anonymous donor".')
    )
    phone = forms.CharField(label=_("Phone (optional, never shown)"), max_length=32, required=False)

    class Meta(UserCreationForm.Meta):
        model = get_user_model()
        fields = ("username", "email")

    def clean_email(self):
        email = self.cleaned_data["email"].strip().lower()
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise forms.ValidationError(_("An account with this e-mail already exists."))
        return email


class DonorProfileForm(forms.ModelForm):
    """For someone already logged in (a secretary who also gives, say)."""

    class Meta:
        model = Donor
        fields = ["kind", "name", "show_name", "phone"]
        labels = {"kind": _("I give as"), "name": _("Name (person, enterprise or organisation)")}


class SupermarketFilterForm(forms.Form):
    SORTS = [
        ("newest", _("Newest")),
        ("deadline", _("Deadline soonest")),
        ("closest", _("Closest to complete")),
    ]
    SHOW = [
        ("open", _("Open for pledges")),
        ("fully_pledged", _("Fully pledged")),
        ("fulfilled", _("Fulfilled")),
    ]
    q = forms.CharField(label=_("Search"), required=False, max_length=50)
    county = forms.ModelChoiceField(label=_("County or district"), queryset=Area.objects.none(), required=False)
    township = forms.ModelChoiceField(label=_("Town or township"), queryset=Area.objects.none(), required=False)
    village = forms.ModelChoiceField(label=_("Village"), queryset=Area.objects.none(), required=False)
    category = forms.ChoiceField(label=_("Category"), choices=[("", _("All categories"))] + Need.Category.choices, required=False)
    kind = forms.ChoiceField(label=_("Kind"), choices=[("", _("All kinds"))] + Need.Kind.choices, required=False)
    show = forms.ChoiceField(label=_("Show"), choices=SHOW, required=False)
    sort = forms.ChoiceField(label=_("Sort"), choices=SORTS, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        data = self.data
        counties = Area.objects.filter(level=Area.Level.COUNTY).order_by("code")
        self.fields["county"].queryset = counties
        self.fields["county"].empty_label = _("All counties")
        self.fields["township"].empty_label = _("All townships")
        self.fields["village"].empty_label = _("All villages")
        # Only the townships of the chosen county, the villages of the chosen
        # township: the lists stay short in a province of 11,000 villages.
        if data.get("county", "").isdigit():
            self.fields["township"].queryset = Area.objects.filter(parent_id=data["county"]).order_by("code")
        if data.get("township", "").isdigit():
            self.fields["village"].queryset = Area.objects.filter(parent_id=data["township"]).order_by("code")
