from decimal import Decimal

from django import forms
from django.contrib.auth import get_user_model
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from households.models import Area, Household

from .models import Cooperative, Delivery, LeadingEnterprise, Loan, Member, ShareEvent

MONEY = {"max_digits": 14, "decimal_places": 2}
DATE = forms.DateInput(attrs={"type": "date"})


def _today():
    return timezone.localdate()


class AreaField(forms.ModelChoiceField):
    def label_from_instance(self, area):
        return f"{area.label} ({area.get_level_display()})"


class CooperativeForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    kind = forms.ChoiceField(label=_("Kind"), choices=Cooperative.Kind.choices)
    area = AreaField(label=_("Area"), queryset=Area.objects.none())
    mode = forms.CharField(
        label=_("Mode"),
        max_length=200,
        required=False,
        help_text=_('In words, for example "leading enterprise + cooperative + poor households".'),
    )
    description = forms.CharField(
        label=_("Description"), widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=4000
    )
    founded_on = forms.DateField(label=_("Founded on (optional)"), required=False, widget=DATE)
    enterprises = forms.ModelMultipleChoiceField(
        label=_("Leading enterprises (optional)"), queryset=LeadingEnterprise.objects.all(), required=False
    )

    def __init__(self, *args, staff_areas, **kwargs):
        super().__init__(*args, **kwargs)
        q = Area.objects.none()
        for area in staff_areas:
            q = q | Area.objects.under(area)
        self.fields["area"].queryset = q.order_by("path")


class EnterpriseForm(forms.Form):
    name = forms.CharField(label=_("Name of the leading enterprise"), max_length=120)
    general_manager = forms.CharField(label=_("General manager"), max_length=64, required=False)
    description = forms.CharField(
        label=_("What it does"), widget=forms.Textarea(attrs={"rows": 3}), required=False, max_length=2000
    )


class ManagerGrantForm(forms.Form):
    username = forms.CharField(label=_("Login name of the new manager"), max_length=150)

    def clean_username(self):
        username = self.cleaned_data["username"].strip()
        user = get_user_model().objects.filter(username=username, is_active=True).first()
        if user is None:
            raise forms.ValidationError(_("No active user has this login name."))
        self.user = user
        return username


class RulesForm(forms.Form):
    """The 60% floor is checked by the service, which says why next to the field."""

    volume_share_percent = forms.DecimalField(
        label=_("Share returned by transaction volume (%)"),
        max_digits=5,
        decimal_places=2,
        help_text=_("At least 60%, as the Law on Farmers' Professional Cooperatives requires."),
    )
    loan_fixed_rate_percent = forms.DecimalField(
        label=_("Fixed return on poor households' loan capital (% a year)"),
        max_digits=5,
        decimal_places=2,
        help_text=_("Paid to poor households on their loan shares before the capital part."),
    )
    subsidy_fixed_rate_percent = forms.DecimalField(
        label=_("Fixed return on poor households' subsidy capital (% a year)"),
        max_digits=5,
        decimal_places=2,
        help_text=_("Paid to poor households on the subsidy quantified to them as shares."),
    )
    land_value_per_mu = forms.DecimalField(
        label=_("Capital value of one mu of land (yuan)"),
        help_text=_("Land counts toward capital at this value per mu."),
        **MONEY,
    )
    labour_value_per_day = forms.DecimalField(
        label=_("Capital value of one day of labour (yuan)"),
        help_text=_("Labour counts toward capital at this value per day."),
        **MONEY,
    )


class MemberForm(forms.Form):
    kind = forms.ChoiceField(label=_("Kind of member"), choices=Member.Kind.choices, widget=forms.RadioSelect)
    household = forms.CharField(
        label=_("Household's public id"),
        max_length=16,
        required=False,
        help_text=_("For a registered poor household of the cooperative's county, for example H7K2M9QX3."),
    )
    name = forms.CharField(
        label=_("Name (a farmer or an enterprise)"),
        max_length=120,
        required=False,
        help_text=_("Kept private: the public sees only counts."),
    )
    joined_on = forms.DateField(label=_("Joined on"), widget=DATE, initial=_today)
    own_capital = forms.DecimalField(label=_("Own money put in (yuan)"), min_value=0, required=False, **MONEY)
    subsidy_capital = forms.DecimalField(
        label=_("Government subsidy quantified to the household (yuan)"), min_value=0, required=False, **MONEY
    )
    land_mu = forms.DecimalField(label=_("Land put in (mu)"), min_value=0, required=False, **MONEY)
    yearly_rent = forms.DecimalField(
        label=_("Yearly rent for the land (yuan, if any)"), min_value=0, required=False, **MONEY
    )
    labour_days = forms.DecimalField(label=_("Labour put in (days)"), min_value=0, required=False, **MONEY)
    service_fees = forms.DecimalField(
        label=_("Service fees paid for the labour (yuan)"), min_value=0, required=False, **MONEY
    )
    note = forms.CharField(label=_("Note (optional)"), max_length=200, required=False)

    def __init__(self, *args, cooperative, **kwargs):
        super().__init__(*args, **kwargs)
        area = cooperative.area
        self.county = area.ancestor_at(Area.Level.COUNTY) if area.level > Area.Level.COUNTY else area

    def clean(self):
        data = super().clean()
        if data.get("kind") == Member.Kind.HOUSEHOLD:
            public_id = (data.get("household") or "").strip().upper()
            household = Household.objects.within(self.county).filter(public_id=public_id).first() if public_id else None
            if household is None:
                self.add_error(
                    "household", _("No registered household with this public id in the cooperative's county.")
                )
            data["household"] = household
        else:
            data["household"] = None
            if not (data.get("name") or "").strip():
                self.add_error("name", _("Enter the member's name."))
        for key in ("own_capital", "subsidy_capital", "land_mu", "labour_days"):
            data[key] = data.get(key) or Decimal("0")
        return data


class IncreaseForm(forms.Form):
    HOLDINGS = [(h.value, h.label) for h in ShareEvent.Holding if h != ShareEvent.Holding.LOAN]
    holding = forms.ChoiceField(label=_("What"), choices=HOLDINGS)
    quantity = forms.DecimalField(
        label=_("Quantity"), help_text=_("Yuan for money, mu for land, days for labour."), **MONEY
    )
    occurred_on = forms.DateField(label=_("Date"), widget=DATE, initial=_today)
    yearly_rent = forms.DecimalField(
        label=_("Yearly rent for the land (yuan, if any)"), min_value=0, required=False, **MONEY
    )
    service_fees = forms.DecimalField(
        label=_("Service fees paid for the labour (yuan)"), min_value=0, required=False, **MONEY
    )
    note = forms.CharField(label=_("Note (optional)"), max_length=200, required=False)


class TransferForm(forms.Form):
    holding = forms.ChoiceField(
        label=_("What"), choices=[(h.value, h.label) for h in ShareEvent.Holding if h in ShareEvent.TRANSFERABLE]
    )
    to_member = forms.IntegerField(label=_("To member number"), min_value=1)
    quantity = forms.DecimalField(label=_("Quantity"), help_text=_("Yuan for money, mu for land."), **MONEY)
    occurred_on = forms.DateField(label=_("Date"), widget=DATE, initial=_today)
    note = forms.CharField(label=_("Note (optional)"), max_length=200, required=False)


class MembershipConfirmForm(forms.Form):
    basis = forms.CharField(
        label=_("How the household agreed"),
        max_length=200,
        help_text=_("For example: the head signed the cooperative's membership form on 3 March."),
    )


class ExitForm(forms.Form):
    occurred_on = forms.DateField(label=_("Date of leaving"), widget=DATE, initial=_today)
    note = forms.CharField(label=_("Note (optional)"), max_length=200, required=False)


class LoanForm(forms.Form):
    lender = forms.CharField(label=_("Lender"), max_length=120)
    principal = forms.DecimalField(label=_("Amount (yuan)"), min_value=Decimal("0.01"), **MONEY)
    annual_rate_percent = forms.DecimalField(
        label=_("Interest rate (% a year)"), min_value=0, max_digits=5, decimal_places=2
    )
    term_months = forms.IntegerField(label=_("Term (months)"), min_value=1, max_value=600)
    period_months = forms.TypedChoiceField(label=_("Repayment"), choices=Loan.Period.choices, coerce=int)
    started_on = forms.DateField(label=_("Start date"), widget=DATE)
    note = forms.CharField(label=_("Note (optional)"), max_length=200, required=False)


class InstallmentPaidForm(forms.Form):
    paid_on = forms.DateField(label=_("Paid on"), widget=DATE, initial=_today)


class ContractForm(forms.Form):
    product = forms.CharField(label=_("Product"), max_length=64)
    unit = forms.CharField(label=_("Unit"), max_length=16, initial="kg")
    agreed_price = forms.DecimalField(label=_("Agreed price per unit (yuan)"), min_value=0, **MONEY)
    guaranteed_price = forms.DecimalField(label=_("Guaranteed minimum price per unit (yuan)"), min_value=0, **MONEY)
    quantity = forms.DecimalField(label=_("Quantity ordered"), **MONEY)
    season = forms.CharField(label=_("Season"), max_length=32, help_text=_("For example 2017 summer harvest."))
    year = forms.IntegerField(label=_("Year"), min_value=2000, max_value=2100, initial=lambda: _today().year)
    signed_on = forms.DateField(label=_("Signed on"), widget=DATE, initial=_today)


class DeliveryForm(forms.Form):
    delivered_on = forms.DateField(label=_("Delivered on"), widget=DATE, initial=_today)
    quantity = forms.DecimalField(label=_("Quantity"), **MONEY)
    grade = forms.ChoiceField(label=_("Grade"), choices=Delivery.Grade.choices)
    market_price = forms.DecimalField(label=_("Market price per unit (yuan)"), min_value=0, **MONEY)
    price_paid = forms.DecimalField(label=_("Price paid per unit (yuan)"), **MONEY)


class DistributionForm(forms.Form):
    year = forms.IntegerField(label=_("Year"), min_value=2000, max_value=2100)
    surplus = forms.DecimalField(label=_("Distributable surplus (yuan)"), **MONEY)


class PaymentForm(forms.Form):
    note = forms.CharField(label=_("Transfer reference (optional)"), max_length=64, required=False)


class YearForm(forms.Form):
    year = forms.IntegerField(label=_("Year"), min_value=2000, max_value=2100)


class AreaReportForm(forms.Form):
    area = AreaField(label=_("Area"), queryset=Area.objects.none())
    year = forms.IntegerField(label=_("Year"), min_value=2000, max_value=2100)

    def __init__(self, *args, staff_areas, **kwargs):
        super().__init__(*args, **kwargs)
        q = Area.objects.none()
        for area in staff_areas:
            q = q | Area.objects.under(area).exclude(level=Area.Level.VILLAGE)
        self.fields["area"].queryset = q.order_by("path")


class PublicFilterForm(forms.Form):
    county = forms.ModelChoiceField(label=_("County or district"), queryset=Area.objects.none(), required=False)
    kind = forms.ChoiceField(label=_("Kind"), choices=[("", _("All kinds"))] + Cooperative.Kind.choices, required=False)

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["county"].queryset = Area.objects.filter(level=Area.Level.COUNTY).order_by("code")
        self.fields["county"].empty_label = _("All counties")
