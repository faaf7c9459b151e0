"""Cooperatives: the public pages, the keepers' books, members' statements
and the reports.

Every view is thin: look the cooperative up through ``access`` (404 for one
outside the user's cooperatives or areas; 403 for a page of a role the user
does not hold), validate a form, call one service, say what happened,
redirect.
"""

from datetime import timedelta

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Prefetch, Q, Sum
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from sun_commune.access import secretary_required, staff_required
from sun_commune.errors import ActionRefused
from sun_commune.forms import act_on_button, act_on_form
from sun_commune.pagination import keyset_page

from . import access, distribution, reports, tasks
from .forms import (
    AreaReportForm,
    ContractForm,
    CooperativeForm,
    DeliveryForm,
    DistributionForm,
    EnterpriseForm,
    ExitForm,
    IncreaseForm,
    InstallmentPaidForm,
    LoanForm,
    ManagerGrantForm,
    MemberForm,
    MembershipConfirmForm,
    PaymentForm,
    PublicFilterForm,
    RulesForm,
    TransferForm,
    YearForm,
)
from .models import (
    Cooperative,
    CooperativeManager,
    Delivery,
    Distribution,
    DistributionLine,
    DistributionRules,
    Loan,
    LoanInstallment,
    Member,
    PurchaseContract,
    ShareEvent,
)
from .services import coops as coop_services
from .services import distributions as distribution_services
from .services import loans as loan_services
from .services import purchases, register

PAGE_SIZE = 50


# --- Who is asking ---------------------------------------------------------------


def _keeper(request, pk) -> Cooperative:
    access.require_keeper(request.user)
    return access.get_cooperative_for_keeper(request.user, pk)


def _manages(user, coop) -> bool:
    return access.managed(user).filter(pk=coop.pk).exists()


def _manager(request, pk) -> Cooperative:
    """A page only the cooperative's managers use: 404 outside the user's
    cooperatives and areas, 403 for staff who may read but not keep it."""
    coop = _keeper(request, pk)
    if not _manages(request.user, coop):
        raise PermissionDenied
    return coop


def _staff(request, pk) -> Cooperative:
    coop = _keeper(request, pk)
    if not access.staff_over(request.user, coop.area):
        raise PermissionDenied
    return coop


def _form_page(request, form, *, coop, title, act, success, next_url, template="cooperatives/form.html", extra=None):
    """A cooperative's form page, its action run by ``act_on_form``."""
    done = act_on_form(request, form, act, success=success, next_url=next_url)
    return done or render(request, template, {"form": form, "coop": coop, "title": title, **(extra or {})})


# --- Public ------------------------------------------------------------------------


def cooperative_list(request):
    form = PublicFilterForm(request.GET or None)
    coops = Cooperative.objects.select_related("area")
    if form.is_bound and form.is_valid():
        if form.cleaned_data["county"]:
            coops = coops.within(form.cleaned_data["county"])
        if form.cleaned_data["kind"]:
            coops = coops.filter(kind=form.cleaned_data["kind"])
    page = keyset_page(coops, order=("id",), descending=False, cursor=request.GET.get("after"), size=20)
    latest = {}
    for d in (
        Distribution.objects.public().filter(cooperative__in=[c.pk for c in page.rows]).order_by("cooperative", "-year")
    ):
        latest.setdefault(d.cooperative_id, d)
    rows = [{"coop": c, "distribution": latest.get(c.pk)} for c in page.rows]
    return render(request, "cooperatives/list.html", {"form": form, "page": page, "rows": rows})


def cooperative_detail(request, pk):
    """What anyone may see: the cooperative, its leading enterprises, and the
    totals of its approved distributions. No member is named or numbered."""
    coop = get_object_or_404(Cooperative.objects.select_related("area").prefetch_related("leading_enterprises"), pk=pk)
    counts = (
        Member.objects.confirmed()
        .filter(cooperative=coop, exited_on__isnull=True)
        .aggregate(members=Count("pk"), poor=Count("pk", filter=Q(household__isnull=False)))
    )
    distributions = Distribution.objects.public().filter(cooperative=coop).order_by("-year")[:10]
    return render(
        request,
        "cooperatives/detail.html",
        {"coop": coop, "counts": counts, "distributions": distributions, "tie_rule": distribution.TIE_RULE},
    )


# --- The keepers' books ----------------------------------------------------------------


@login_required
def my_cooperatives(request):
    access.require_keeper(request.user)
    coops = access.kept_by(request.user).select_related("area")
    page = keyset_page(coops, order=("id",), descending=False, cursor=request.GET.get("after"), size=PAGE_SIZE)
    managed = set(access.managed(request.user).values_list("pk", flat=True))
    return render(request, "cooperatives/mine.html", {"page": page, "managed": managed})


@staff_required
def cooperative_create(request):
    form = CooperativeForm(request.POST or None, staff_areas=request.user.staff_areas)

    def act(data):
        return coop_services.create_cooperative(
            by=request.user,
            name=data["name"],
            kind=data["kind"],
            area=data["area"],
            mode=data["mode"],
            description=data["description"],
            founded_on=data["founded_on"],
            enterprises=list(data["enterprises"]),
        )

    return _form_page(
        request,
        form,
        coop=None,
        title=_("Register a cooperative"),
        act=act,
        success=_("The cooperative is registered. Appoint its managers next."),
        next_url=lambda coop: reverse("cooperatives:cooperative-manage", args=[coop.pk]),
    )


@login_required
def cooperative_manage(request, pk):
    coop = _keeper(request, pk)
    user = request.user
    today = timezone.localdate()
    soon = today + timedelta(days=30)
    installments = (
        LoanInstallment.objects.filter(loan__cooperative=coop, paid_on__isnull=True, due_on__lte=soon)
        .select_related("loan__member")
        .order_by("due_on", "id")[:50]
    )
    counts = (
        Member.objects.confirmed()
        .filter(cooperative=coop, exited_on__isnull=True)
        .aggregate(members=Count("pk"), poor=Count("pk", filter=Q(household__isnull=False)))
    )
    return render(
        request,
        "cooperatives/manage.html",
        {
            "coop": coop,
            "is_manager": _manages(user, coop),
            "is_staff_over": access.staff_over(user, coop.area),
            "rules": DistributionRules.objects.filter(cooperative=coop).first(),
            "counts": counts,
            "installments": installments,
            "today": today,
            "distributions": Distribution.objects.filter(cooperative=coop).order_by("-year")[:10],
            "loans": Loan.objects.filter(cooperative=coop).select_related("member").order_by("-started_on", "-id")[:20],
            "contracts": PurchaseContract.objects.filter(cooperative=coop)
            .select_related("member")
            .order_by("-year", "-id")[:20],
            "managers": CooperativeManager.objects.filter(cooperative=coop, active=True).select_related("user"),
            "enterprises": coop.leading_enterprises.all(),
        },
    )


@login_required
def enterprise_add(request, pk):
    coop = _manager(request, pk)
    form = EnterpriseForm(request.POST or None)
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Add a leading enterprise"),
        act=lambda data: coop_services.add_leading_enterprise(by=request.user, cooperative_id=coop.pk, **data),
        success=_("The leading enterprise is added."),
        next_url=reverse("cooperatives:cooperative-manage", args=[coop.pk]),
    )


@login_required
def manager_grant(request, pk):
    coop = _staff(request, pk)
    form = ManagerGrantForm(request.POST or None)
    grants = CooperativeManager.objects.filter(cooperative=coop).select_related("user").order_by("-active", "id")
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Managers of the cooperative"),
        act=lambda data: coop_services.grant_manager(by=request.user, cooperative_id=coop.pk, user=form.user),
        success=_("The manager is appointed."),
        next_url=reverse("cooperatives:manager-grant", args=[coop.pk]),
        template="cooperatives/managers.html",
        extra={"grants": grants},
    )


@login_required
@require_POST
def manager_withdraw(request, pk, grant):
    coop = _staff(request, pk)
    grant = get_object_or_404(CooperativeManager, pk=grant, cooperative=coop)
    act_on_button(
        request,
        lambda: coop_services.withdraw_manager(by=request.user, grant_id=grant.pk),
        success=_("The manager's role is withdrawn."),
    )
    return redirect("cooperatives:manager-grant", pk=coop.pk)


@login_required
def rules_edit(request, pk):
    coop = _manager(request, pk)
    rules = DistributionRules.objects.filter(cooperative=coop).first() or DistributionRules(cooperative=coop)
    form = RulesForm(
        request.POST or None, initial={name: getattr(rules, name) for name in distribution_services.RULE_FIELDS}
    )
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Distribution rules"),
        act=lambda data: distribution_services.set_rules(by=request.user, cooperative_id=coop.pk, **data),
        success=_("The rules are saved. Distributions already computed keep the rules they were computed with."),
        next_url=reverse("cooperatives:cooperative-manage", args=[coop.pk]),
        extra={"help": "rules"},
    )


@login_required
def member_list(request, pk):
    coop = _keeper(request, pk)
    members = Member.objects.filter(cooperative=coop).select_related("household")
    page = keyset_page(
        members, order=("number", "id"), descending=False, cursor=request.GET.get("after"), size=PAGE_SIZE
    )
    ids = [m.pk for m in page.rows]
    held: dict[int, dict] = {}
    for member_id, holding, total in (
        ShareEvent.objects.filter(member_id__in=ids)
        .values_list("member_id", "holding")
        .annotate(t=Sum("quantity"))
        .order_by()
    ):
        held.setdefault(member_id, {})[holding] = total
    rows = [{"member": m, "held": held.get(m.pk, {})} for m in page.rows]
    return render(
        request,
        "cooperatives/members.html",
        {"coop": coop, "page": page, "rows": rows, "is_manager": _manages(request.user, coop)},
    )


@login_required
def member_create(request, pk):
    coop = _manager(request, pk)
    form = MemberForm(request.POST or None, cooperative=coop, initial={"kind": Member.Kind.HOUSEHOLD})
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Enter a member"),
        act=lambda data: register.add_member(by=request.user, cooperative_id=coop.pk, **data),
        success=_(
            "The member is entered in the register. A registered household joins once its village's first secretary "
            "confirms that it agrees: until then you see its public id only, and its shares are entered then."
        )
        if request.POST.get("kind") == Member.Kind.HOUSEHOLD
        else _("The member is entered in the register."),
        next_url=lambda member: reverse("cooperatives:member-statement", args=[member.pk]),
    )


def _member_of(request, pk, member_pk) -> tuple[Cooperative, Member]:
    coop = _manager(request, pk)
    return coop, access.get_member_for_manager(request.user, coop, member_pk)


@login_required
def shares_increase(request, pk, member):
    coop, member = _member_of(request, pk, member)
    form = IncreaseForm(request.POST or None)
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Increase member #%(number)s's shares") % {"number": member.number},
        act=lambda data: register.increase_shares(by=request.user, member_id=member.pk, **data),
        success=_("The increase is entered in the share register."),
        next_url=reverse("cooperatives:member-statement", args=[member.pk]),
    )


@login_required
def shares_transfer(request, pk, member):
    coop, member = _member_of(request, pk, member)
    form = TransferForm(request.POST or None)

    def act(data):
        to = Member.objects.filter(cooperative=coop, number=data["to_member"]).first()
        if to is None:
            raise ActionRefused(_("No member of this cooperative has this number."), field="to_member")
        return register.transfer_shares(
            by=request.user,
            from_member_id=member.pk,
            to_member_id=to.pk,
            holding=data["holding"],
            quantity=data["quantity"],
            occurred_on=data["occurred_on"],
            note=data["note"],
        )

    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Transfer shares of member #%(number)s") % {"number": member.number},
        act=act,
        success=_("The transfer is entered in the share register."),
        next_url=reverse("cooperatives:member-statement", args=[member.pk]),
    )


@login_required
def member_exit(request, pk, member):
    coop, member = _member_of(request, pk, member)
    form = ExitForm(request.POST or None)
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Member #%(number)s leaves the cooperative") % {"number": member.number},
        act=lambda data: register.exit_member(by=request.user, member_id=member.pk, **data),
        success=_("The member has left; their holdings are brought to zero in the register, and the history is kept."),
        next_url=reverse("cooperatives:member-statement", args=[member.pk]),
    )


@login_required
def loan_create(request, pk, member):
    coop, member = _member_of(request, pk, member)
    form = LoanForm(request.POST or None)
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Poverty-alleviation loan of member #%(number)s") % {"number": member.number},
        act=lambda data: loan_services.create_loan(by=request.user, member_id=member.pk, **data),
        success=_("The loan, its repayment schedule and its loan capital are recorded."),
        next_url=lambda loan: reverse("cooperatives:loan-detail", args=[coop.pk, loan.pk]),
    )


@login_required
def loan_detail(request, pk, loan):
    coop = _keeper(request, pk)
    loan = get_object_or_404(Loan.objects.select_related("member__household"), pk=loan, cooperative=coop)
    return render(
        request,
        "cooperatives/loan.html",
        {
            "coop": coop,
            "loan": loan,
            "installments": loan.installments.order_by("number"),
            "today": timezone.localdate(),
            "is_manager": _manages(request.user, coop),
        },
    )


@login_required
def installment_paid(request, pk, installment):
    coop = _manager(request, pk)
    installment = get_object_or_404(
        LoanInstallment.objects.select_related("loan"), pk=installment, loan__cooperative=coop
    )
    form = InstallmentPaidForm(request.POST or None)
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Repayment %(number)s of the loan from %(lender)s")
        % {"number": installment.number, "lender": installment.loan.lender},
        act=lambda data: loan_services.record_installment_paid(by=request.user, installment_id=installment.pk, **data),
        success=_("The repayment is recorded."),
        next_url=reverse("cooperatives:loan-detail", args=[coop.pk, installment.loan_id]),
    )


@login_required
def contract_create(request, pk, member):
    coop, member = _member_of(request, pk, member)
    form = ContractForm(request.POST or None)
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Order-purchase contract with member #%(number)s") % {"number": member.number},
        act=lambda data: purchases.create_contract(by=request.user, member_id=member.pk, **data),
        success=_("The contract is recorded."),
        next_url=reverse("cooperatives:member-statement", args=[member.pk]),
    )


@login_required
def delivery_create(request, pk, contract):
    coop = _manager(request, pk)
    contract = get_object_or_404(PurchaseContract.objects.select_related("member"), pk=contract, cooperative=coop)
    form = DeliveryForm(request.POST or None, initial={"price_paid": contract.agreed_price})
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Delivery of %(product)s by member #%(number)s")
        % {"product": contract.product, "number": contract.member.number},
        act=lambda data: purchases.record_delivery(by=request.user, contract_id=contract.pk, **data),
        success=_("The delivery is recorded."),
        next_url=reverse("cooperatives:delivery-list", args=[coop.pk]),
        extra={"contract": contract},
    )


@login_required
def delivery_list(request, pk):
    coop = _keeper(request, pk)
    deliveries = Delivery.objects.filter(cooperative=coop).select_related("member")
    page = keyset_page(deliveries, order=("id",), descending=True, cursor=request.GET.get("after"), size=PAGE_SIZE)
    return render(request, "cooperatives/deliveries.html", {"coop": coop, "page": page})


# --- Distributions -------------------------------------------------------------------


@login_required
def distribution_compute(request, pk):
    coop = _manager(request, pk)
    form = DistributionForm(request.POST or None, initial={"year": timezone.localdate().year - 1})
    return _form_page(
        request,
        form,
        coop=coop,
        title=_("Compute the year's distribution"),
        act=lambda data: distribution_services.compute_distribution(by=request.user, cooperative_id=coop.pk, **data),
        success=_("The preview is computed. Check it; bureau staff approve it before anything is paid."),
        next_url=lambda d: reverse("cooperatives:distribution-detail", args=[coop.pk, d.pk]),
        extra={"rules": DistributionRules.objects.filter(cooperative=coop).first(), "help": "distribution"},
    )


@login_required
def distribution_detail(request, pk, dist):
    coop = _keeper(request, pk)
    dist = access.get_distribution_for_keeper(request.user, coop, dist)
    lines = dist.lines.select_related("member__household")
    page = keyset_page(lines, order=("id",), descending=False, cursor=request.GET.get("after"), size=PAGE_SIZE)
    return render(
        request,
        "cooperatives/distribution.html",
        {
            "coop": coop,
            "dist": dist,
            "page": page,
            "is_manager": _manages(request.user, coop),
            "is_staff_over": access.staff_over(request.user, coop.area),
            "tie_rule": distribution.TIE_RULE,
            "payment_form": PaymentForm(),
        },
    )


@login_required
@require_POST
def distribution_approve(request, pk, dist):
    coop = _staff(request, pk)
    dist = access.get_distribution_for_keeper(request.user, coop, dist)
    act_on_button(
        request,
        lambda: distribution_services.approve_distribution(by=request.user, distribution_id=dist.pk),
        success=_("The distribution is approved; its payments can be recorded."),
    )
    return redirect("cooperatives:distribution-detail", pk=coop.pk, dist=dist.pk)


@login_required
@require_POST
def line_pay(request, pk, line):
    coop = _manager(request, pk)
    line = get_object_or_404(
        DistributionLine.objects.select_related("distribution").defer("distribution__inputs"),
        pk=line,
        distribution__cooperative=coop,
    )
    form = PaymentForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    act_on_button(
        request,
        lambda: distribution_services.record_payment(by=request.user, line_id=line.pk, note=note),
        success=_("The payment is recorded."),
    )
    return redirect("cooperatives:distribution-detail", pk=coop.pk, dist=line.distribution_id)


@login_required
@require_POST
def distribution_pay_all(request, pk, dist):
    """Record every unpaid line: a Celery task after commit (a cooperative may
    have ten thousand members); each line is recorded once."""
    coop = _manager(request, pk)
    dist = access.get_distribution_for_keeper(request.user, coop, dist)
    if dist.status == Distribution.Status.PREVIEW:
        messages.error(request, _("The distribution must be approved by the bureau before anything is paid."))
    else:
        form = PaymentForm(request.POST)
        note = form.cleaned_data["note"] if form.is_valid() else ""
        user_id = request.user.pk
        transaction.on_commit(lambda: tasks.pay_distribution.delay(distribution_id=dist.pk, by_id=user_id, note=note))
        messages.success(request, _("The payments are being recorded; reload this page in a moment."))
    return redirect("cooperatives:distribution-detail", pk=coop.pk, dist=dist.pk)


# --- Statements -----------------------------------------------------------------------


@secretary_required
def statement_list(request):
    """The village's households that are members of a cooperative."""
    members = (
        access.members_for_reader(request.user)
        .filter(household__village__in=request.user.secretary_villages)
        .select_related("cooperative", "household")
    )
    page = keyset_page(members, order=("id",), descending=False, cursor=request.GET.get("after"), size=PAGE_SIZE)
    return render(request, "cooperatives/statements.html", {"page": page})


@login_required
def member_statement(request, member):
    """A member's statement, for the cooperative's keepers and the first
    secretary of the member household's village: shares and their history,
    loans, contracts and deliveries, and each part of each year's dividend
    with how it was computed."""
    member = access.get_member_for_reader(request.user, member)
    coop = member.cooperative
    held = register.holdings(member.pk)
    events = member.share_events.select_related("loan").order_by("occurred_on", "id")[:500]
    lines = list(
        member.distribution_lines.select_related("distribution")
        .defer("distribution__inputs")
        .order_by("-distribution__year")
    )
    loans = member.loans.prefetch_related(Prefetch("installments", queryset=LoanInstallment.objects.order_by("number")))
    years = sorted(set(Delivery.objects.filter(member=member).values_list("year", flat=True).distinct()), reverse=True)
    form = YearForm(request.GET or None)
    year = form.cleaned_data["year"] if form.is_bound and form.is_valid() else (years[0] if years else None)
    deliveries = (
        Delivery.objects.filter(member=member, year=year).order_by("delivered_on", "id")
        if year
        else Delivery.objects.none()
    )
    totals = deliveries.aggregate(quantity=Sum("quantity"), amount=Sum("amount"), extra=Sum("extra_above_market"))
    rules = {line.pk: distribution.Rules.from_json(line.distribution.rules) for line in lines}
    return render(
        request,
        "cooperatives/statement.html",
        {
            "member": member,
            "coop": coop,
            "held": [(label, held[value], value) for value, label in ShareEvent.Holding.choices],
            "events": events,
            "lines": [{"line": line, "rules": rules[line.pk]} for line in lines],
            "loans": loans,
            "contracts": member.contracts.order_by("-year", "-id")[:20],
            "years": years,
            "year": year,
            "deliveries": deliveries,
            "totals": totals,
            "today": timezone.localdate(),
            "is_manager": _manages(request.user, coop),
            "tie_rule": distribution.TIE_RULE,
        },
    )


@secretary_required
def membership_requests(request):
    """Cooperatives asking for households of the secretary's villages as
    members: the household's side of joining, confirmed or declined here."""
    rows = access.membership_requests_for(request.user)
    page = keyset_page(rows, order=("id",), descending=False, cursor=request.GET.get("after"), size=PAGE_SIZE)
    return render(request, "cooperatives/membership_requests.html", {"page": page, "form": MembershipConfirmForm()})


@secretary_required
@require_POST
def membership_confirm(request, member):
    member = access.get_membership_request(request.user, member)
    form = MembershipConfirmForm(request.POST)
    if not form.is_valid():
        messages.error(request, " ".join(e for errors in form.errors.values() for e in errors))
    else:
        act_on_button(
            request,
            lambda: register.confirm_membership(by=request.user, member_id=member.pk, basis=form.cleaned_data["basis"]),
            success=_("The membership is confirmed; the cooperative now enters the household's shares."),
        )
    return redirect("cooperatives:membership-requests")


@secretary_required
@require_POST
def membership_decline(request, member):
    member = access.get_membership_request(request.user, member)
    act_on_button(
        request,
        lambda: register.decline_membership(by=request.user, member_id=member.pk),
        success=_("The request is declined; the cooperative is told."),
    )
    return redirect("cooperatives:membership-requests")


# --- Reports --------------------------------------------------------------------------


@login_required
def cooperative_report(request, pk):
    coop = _keeper(request, pk)
    default = timezone.localdate().year - 1
    form = YearForm(request.GET or None, initial={"year": default})
    year = form.cleaned_data["year"] if form.is_bound and form.is_valid() else default
    report = reports.cooperative_report(coop, year)
    if request.GET.get("format") == "xlsx":
        dist = report["distribution"]
        lines = dist.lines.select_related("member").order_by("member__number") if dist else None
        return reports.cooperative_xlsx(report, lines)
    return render(request, "cooperatives/report.html", {"coop": coop, "form": form, "report": report})


@staff_required
def area_report(request):
    default = timezone.localdate().year - 1
    staff_areas = request.user.staff_areas
    form = AreaReportForm(
        request.GET or None, staff_areas=staff_areas, initial={"area": staff_areas[0].pk, "year": default}
    )
    report = None
    if form.is_bound and form.is_valid():
        report = reports.area_report(form.cleaned_data["area"], form.cleaned_data["year"])
        if request.GET.get("format") == "xlsx":
            return reports.area_xlsx(report)
    return render(request, "cooperatives/area_report.html", {"form": form, "report": report})
