from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.forms import UserCreationForm
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from households.models import Area, Household

from .models import Donor, LedgerTransaction, Need, Pairing
from .photos import PhotoField


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
        # A figure left over from the other kinds is dropped, as the service
        # does: kept, the model's constraint would refuse the form with a
        # message that names no field.
        if kind == Need.Kind.MONEY:
            data["quantity"] = data["unit_price"] = None
            if not data.get("target_amount"):
                self.add_error("target_amount", _("Enter the amount of money needed."))
            elif data["target_amount"] <= 0:
                self.add_error("target_amount", _("Enter an amount of at least 0.01 yuan."))
        elif kind in (Need.Kind.GOODS, Need.Kind.SERVICE):
            data["target_amount"] = None
            if not data.get("quantity"):
                self.add_error("quantity", _("Enter how many are needed."))
            if kind == Need.Kind.GOODS and not data.get("item"):
                self.add_error("item", _("Name the item that is needed."))
        return data


class RejectForm(forms.Form):
    reason = forms.CharField(label=_("Reason for rejection"), widget=forms.Textarea(attrs={"rows": 3}), max_length=2000)


class PledgeForm(forms.Form):
    quantity = forms.IntegerField(label=_("Quantity"), min_value=1, required=False)
    amount = forms.DecimalField(
        label=_("Amount (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2, required=False
    )
    message = forms.CharField(label=_("Message to the village (optional)"), max_length=500, required=False)

    def __init__(self, *args, need: Need, **kwargs):
        super().__init__(*args, **kwargs)
        self.need = need
        if need.is_money:
            del self.fields["quantity"]
            self.fields["amount"].required = True
            self.fields["amount"].widget.attrs["max"] = need.remaining
        else:
            del self.fields["amount"]
            self.fields["quantity"].required = True
            self.fields["quantity"].label = _("Quantity (%(unit)s)") % {"unit": need.unit}
            self.fields["quantity"].initial = need.remaining
            self.fields["quantity"].widget.attrs["max"] = need.remaining


class ConfirmReceiptForm(forms.Form):
    quantity = forms.IntegerField(label=_("Quantity that arrived"), min_value=1)
    photo = PhotoField(label=_("Photo (optional)"), required=False)
    note = forms.CharField(label=_("Note (optional)"), max_length=500, required=False)


class MoneyReceivedForm(forms.Form):
    amount = forms.DecimalField(
        label=_("Amount received (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2
    )
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

    # Whether the username or the e-mail is already someone's is not said
    # here: the page after is the same either way (services.donors.register_account).
    def clean_username(self):
        return self.cleaned_data.get("username")

    def clean_email(self):
        return self.cleaned_data["email"].strip().lower()

    def validate_unique(self):
        pass


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
    category = forms.ChoiceField(
        label=_("Category"), choices=[("", _("All categories"))] + Need.Category.choices, required=False
    )
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


class AreaFilterMixin:
    """County → township → village selects whose lists stay short at any scale."""

    def setup_areas(self):
        data = self.data
        self.fields["county"].queryset = Area.objects.filter(level=Area.Level.COUNTY).order_by("code")
        self.fields["county"].empty_label = _("All counties")
        self.fields["township"].empty_label = _("All townships")
        self.fields["village"].empty_label = _("All villages")
        if data.get("county", "").isdigit():
            self.fields["township"].queryset = Area.objects.filter(parent_id=data["county"]).order_by("code")
        if data.get("township", "").isdigit():
            self.fields["village"].queryset = Area.objects.filter(parent_id=data["township"]).order_by("code")


class LedgerFilterForm(AreaFilterMixin, forms.Form):
    county = forms.ModelChoiceField(label=_("County or district"), queryset=Area.objects.none(), required=False)
    township = forms.ModelChoiceField(label=_("Town or township"), queryset=Area.objects.none(), required=False)
    village = forms.ModelChoiceField(label=_("Village"), queryset=Area.objects.none(), required=False)
    need = forms.IntegerField(label=_("Need number"), min_value=1, required=False)
    kind = forms.ChoiceField(
        label=_("Kind"), choices=[("", _("All kinds"))] + LedgerTransaction.Kind.choices, required=False
    )
    date_from = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), required=False, widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.setup_areas()


class StaffAreaField(forms.ModelChoiceField):
    def label_from_instance(self, area):
        return f"{area.label} ({area.get_level_display()})"


class GiftForm(forms.Form):
    area = StaffAreaField(label=_("Pool"), queryset=Area.objects.none())
    amount = forms.DecimalField(label=_("Amount (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    reference = forms.CharField(label=_("Transfer reference"), max_length=64)
    occurred_on = forms.DateField(label=_("Date received"), widget=forms.DateInput(attrs={"type": "date"}))
    donor = forms.ModelChoiceField(label=_("Registered donor (optional)"), queryset=Donor.objects.all(), required=False)

    def __init__(self, *args, staff_areas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["area"].queryset = Area.objects.filter(pk__in=[a.pk for a in staff_areas])
        self.fields["donor"].widget = forms.NumberInput()
        self.fields["donor"].help_text = _("The donor's number, if they are registered; leave empty otherwise.")

    def clean_occurred_on(self):
        day = self.cleaned_data["occurred_on"]
        if day > timezone.localdate():
            raise forms.ValidationError(_("The date cannot be in the future."))
        return day


class AllocationForm(forms.Form):
    area = StaffAreaField(label=_("From the pool of"), queryset=Area.objects.none())
    need = forms.IntegerField(label=_("Need number"), min_value=1)
    amount = forms.DecimalField(label=_("Amount (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2)

    def __init__(self, *args, staff_areas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["area"].queryset = Area.objects.filter(pk__in=[a.pk for a in staff_areas])


class SpendForm(forms.Form):
    SOURCE = [("need", _("A need's fund")), ("pool", _("A pool"))]
    source = forms.ChoiceField(label=_("Spend from"), choices=SOURCE, widget=forms.RadioSelect, initial="need")
    need = forms.IntegerField(label=_("Need number"), min_value=1, required=False)
    area = StaffAreaField(label=_("Pool"), queryset=Area.objects.none(), required=False)
    amount = forms.DecimalField(label=_("Amount (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2)
    purpose = forms.CharField(label=_("What for"), max_length=200)
    category = forms.ChoiceField(label=_("Category"), choices=LedgerTransaction.Category.choices)
    payee = forms.CharField(label=_("Payee (a supplier's name)"), max_length=100, required=False)
    payee_household = forms.CharField(
        label=_("Or a household's public id"), max_length=16, required=False, help_text=_("For example H7K2M9QX3.")
    )
    occurred_on = forms.DateField(label=_("Date paid"), widget=forms.DateInput(attrs={"type": "date"}))
    voucher = forms.FileField(label=_("Voucher (scan of the receipt)"), required=False)

    def __init__(self, *args, staff_areas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["area"].queryset = Area.objects.filter(pk__in=[a.pk for a in staff_areas])

    def clean_voucher(self):
        voucher = self.cleaned_data.get("voucher")
        if voucher and voucher.size > settings.MAX_UPLOAD_BYTES:
            raise forms.ValidationError(_("The file is too large."))
        return voucher

    def clean(self):
        data = super().clean()
        if data.get("source") == "need" and not data.get("need"):
            self.add_error("need", _("Enter the need's number."))
        if data.get("source") == "pool" and not data.get("area"):
            self.add_error("area", _("Choose the pool."))
        if not data.get("payee") and not data.get("payee_household"):
            self.add_error("payee", _("Name the payee, or give a household's public id."))
        return data


class ReverseForm(forms.Form):
    reason = forms.CharField(label=_("Why is this entry reversed?"), max_length=200)


class FundReportForm(forms.Form):
    area = StaffAreaField(label=_("Area"), queryset=Area.objects.none())
    date_from = forms.DateField(label=_("From"), widget=forms.DateInput(attrs={"type": "date"}))
    date_to = forms.DateField(label=_("To"), widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, staff_areas, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["area"].queryset = Area.objects.filter(pk__in=[a.pk for a in staff_areas])

    def clean(self):
        data = super().clean()
        if data.get("date_from") and data.get("date_to") and data["date_from"] > data["date_to"]:
            self.add_error("date_to", _("The end comes before the start."))
        return data


# --- Pairing ------------------------------------------------------------------


class PairingTermsForm(forms.Form):
    """What a pairing commits to: money each month, or goods each season."""

    commitment = forms.ChoiceField(
        label=_("Commitment"), choices=Pairing.Commitment.choices, widget=forms.RadioSelect, initial="money"
    )
    amount = forms.DecimalField(
        label=_("Amount each month (yuan)"), min_value=Decimal("0.01"), max_digits=14, decimal_places=2, required=False
    )
    item = forms.CharField(label=_("Item"), max_length=80, required=False, help_text=_("Goods only: for example 大米."))
    quantity = forms.IntegerField(label=_("Quantity each season"), min_value=1, required=False)
    unit = forms.CharField(label=_("Unit"), max_length=16, required=False, help_text=_("For example 袋, kg."))
    unit_price = forms.DecimalField(
        label=_("Estimated unit price (yuan)"),
        min_value=Decimal("0"),
        max_digits=14,
        decimal_places=2,
        required=False,
        help_text=_("Goods only: an estimate, for the declared value."),
    )
    start_date = forms.DateField(label=_("Starts on"), widget=forms.DateInput(attrs={"type": "date"}))
    end_date = forms.DateField(
        label=_("Ends on (optional)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Leave empty for a pairing without a set end; either side can end it."),
    )
    message = forms.CharField(
        label=_("Message (optional)"), max_length=500, required=False, widget=forms.Textarea(attrs={"rows": 2})
    )

    TERMS = ("commitment", "amount", "item", "quantity", "unit", "unit_price", "start_date", "end_date", "message")

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["start_date"].initial = timezone.localdate()

    def clean_start_date(self):
        start = self.cleaned_data["start_date"]
        if start < timezone.localdate():
            raise forms.ValidationError(_("The start cannot be in the past."))
        return start

    def clean(self):
        data = super().clean()
        if data.get("commitment") == Pairing.Commitment.MONEY:
            data["item"], data["quantity"], data["unit"], data["unit_price"] = "", None, "", None
            if not data.get("amount"):
                self.add_error("amount", _("Enter the amount given each month."))
        elif data.get("commitment") == Pairing.Commitment.GOODS:
            data["amount"] = None
            if not data.get("item"):
                self.add_error("item", _("Name the item given each season."))
            if not data.get("quantity"):
                self.add_error("quantity", _("Enter a quantity of at least 1."))
        start, end = data.get("start_date"), data.get("end_date")
        if start and end and end < start:
            self.add_error("end_date", _("The end comes before the start."))
        return data

    def terms(self) -> dict:
        return {name: self.cleaned_data[name] for name in self.TERMS}


class PairingInviteForm(PairingTermsForm):
    donor = forms.CharField(label=_("Donor's username or e-mail"), max_length=254)
    household = forms.ModelChoiceField(label=_("Household"), queryset=Household.objects.none(), required=False)

    field_order = ["donor", "household"]

    def __init__(self, *args, village: Area, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["household"].queryset = Household.objects.filter(village=village).order_by("id")
        self.fields["household"].empty_label = _("— the whole village —")
        self.fields["household"].label_from_instance = lambda h: f"{h.public_label} · {h.head_name}"


class PairingUpdateForm(forms.Form):
    text = forms.CharField(label=_("What happened"), max_length=2000, widget=forms.Textarea(attrs={"rows": 4}))
    photo = PhotoField(
        label=_("Photo (optional)"),
        required=False,
        help_text=_("Shown to the donor only while the household agrees to show photos of it."),
    )


class PairingReasonForm(forms.Form):
    reason = forms.CharField(label=_("Reason (optional)"), max_length=500, required=False)
