"""Order purchases: contracts signed with members at a guaranteed minimum
price, and the deliveries made under them (what was paid above the market
price goes into a poor household's income).
"""

from datetime import date

from django.db import transaction
from django.utils.translation import gettext as _

from households import services as household_services
from households.models import IncomeRecord
from sun_commune import audit
from sun_commune.errors import ActionRefused
from sun_commune.money import quantize_yuan

from ..models import (
    Delivery,
    PurchaseContract,
)
from .register import ZERO, _check_quantity, _exact_yuan, _lock_member, _not_in_future, _year_open


@transaction.atomic
def create_contract(
    *,
    by,
    member_id: int,
    product: str,
    unit: str,
    agreed_price,
    guaranteed_price,
    quantity,
    season: str,
    year: int,
    signed_on: date,
) -> PurchaseContract:
    """Sign an order-purchase contract with a member: the agreed price, and a
    guaranteed minimum price no delivery will ever be paid below."""
    member = _lock_member(member_id)
    if not member.is_active:
        raise ActionRefused(_("This member has left the cooperative."))
    guaranteed = _exact_yuan(guaranteed_price, field="guaranteed_price")
    agreed = _exact_yuan(agreed_price, field="agreed_price")
    if guaranteed <= 0:
        raise ActionRefused(_("Enter a guaranteed price above zero."), field="guaranteed_price")
    if agreed < guaranteed:
        raise ActionRefused(_("The agreed price cannot be below the guaranteed minimum price."), field="agreed_price")
    quantity = _check_quantity(quantity)
    if not (product or "").strip():
        raise ActionRefused(_("Name the product."), field="product")
    contract = PurchaseContract.objects.create(
        cooperative_id=member.cooperative_id,
        member=member,
        product=product.strip(),
        unit=(unit or "kg").strip(),
        agreed_price=agreed,
        guaranteed_price=guaranteed,
        quantity=quantity,
        season=season.strip(),
        year=year,
        signed_on=signed_on,
        created_by=by if getattr(by, "pk", None) else None,
    )
    audit.record(
        actor=by,
        action="cooperative.contract_signed",
        obj=contract,
        changes={
            "member": member.pk,
            "product": contract.product,
            "agreed_price": agreed,
            "guaranteed_price": guaranteed,
            "quantity": quantity,
            "year": year,
        },
    )
    return contract


@transaction.atomic
def record_delivery(
    *, by, contract_id: int, delivered_on: date, quantity, grade: str, market_price, price_paid
) -> Delivery:
    """Record produce a member delivered under a contract and the price paid
    — never below the contract's guaranteed price. What was paid above the
    market price goes into a poor household's income for the year (once: the
    income record's origin names the delivery)."""
    contract = PurchaseContract.objects.select_related("member__cooperative").get(pk=contract_id)
    member = _lock_member(contract.member_id)
    quantity = _check_quantity(quantity)
    market = _exact_yuan(market_price, field="market_price")
    paid = _exact_yuan(price_paid, field="price_paid")
    if market < 0:
        raise ActionRefused(_("Enter zero or more."), field="market_price")
    if paid < contract.guaranteed_price:
        raise ActionRefused(
            _("The price paid cannot be below the contract's guaranteed minimum price of %(price)s yuan.")
            % {"price": contract.guaranteed_price},
            field="price_paid",
        )
    _not_in_future(delivered_on, field="delivered_on")
    if delivered_on < member.joined_on:
        raise ActionRefused(_("The date is before the member joined."), field="delivered_on")
    _year_open(contract.cooperative_id, delivered_on, field="delivered_on")
    extra = quantize_yuan(max(ZERO, paid - market) * quantity)
    delivery = Delivery.objects.create(
        contract=contract,
        cooperative_id=contract.cooperative_id,
        member=member,
        delivered_on=delivered_on,
        year=delivered_on.year,
        product=contract.product,
        quantity=quantity,
        grade=grade,
        market_price=market,
        price_paid=paid,
        guaranteed_price=contract.guaranteed_price,
        amount=quantize_yuan(quantity * paid),
        extra_above_market=extra,
        recorded_by=by if getattr(by, "pk", None) else None,
    )
    audit.record(
        actor=by,
        action="cooperative.delivery_recorded",
        obj=delivery,
        changes={
            "member": member.pk,
            "quantity": quantity,
            "price_paid": paid,
            "market_price": market,
            "amount": delivery.amount,
            "extra_above_market": extra,
        },
    )
    if extra > 0 and member.household_id:
        household_services.record_income(
            by=by,
            household_id=member.household_id,
            year=delivery.year,
            source=IncomeRecord.Source.REBATE,
            amount=extra,
            note=f"{member.cooperative.name} · {delivery.product} · {delivered_on.isoformat()}",
            origin=f"coop-delivery-{delivery.pk}-extra",
        )
    return delivery
