"""The demo's cooperatives and their 2017 figures, consistent with the 2017
account: Song Hanming's dividend "nearly 4,000 yuan", Fan Youju's Zanthoxylum
armatum bought at 10 yuan a kilogram for close to 25,000 yuan."""

from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.urls import reverse

from cooperatives.models import Cooperative, CooperativeManager, Delivery, Distribution, DistributionLine, Member
from cooperatives.services import distributions, register
from households.models import IncomeRecord
from portal.demo.loader import DEMO_PASSWORD
from sun_commune.models import AuditEntry, User


def figures():
    return (
        Cooperative.objects.count(),
        Member.objects.count(),
        Delivery.objects.count(),
        list(Distribution.objects.order_by("pk").values_list("status", "surplus")),
        IncomeRecord.objects.count(),
        AuditEntry.objects.count(),
    )


@pytest.mark.django_db
def test_the_demo_cooperatives_and_their_2017_figures(client):
    call_command("load_demo", verbosity=0)

    langan = Cooperative.objects.get(name="梓潼县兰干养殖专业合作社")
    assert langan.area.code == "510725104207" and langan.kind == "breeding"
    zizhou = Cooperative.objects.get(name="三台县梓州藤椒专业合作社")
    assert zizhou.area.code == "510722110215"
    company = zizhou.leading_enterprises.get()
    assert (company.name, company.general_manager) == ("梓州农业科技有限公司", "李华")
    assert Cooperative.objects.filter(name__startswith="安州区宝华", area__code="510705").count() == 2

    # Every 2017 distribution is computed, approved by the county's staff, paid in full, and adds up.
    for dist in Distribution.objects.filter(year=2017):
        assert dist.status == Distribution.Status.PAID and dist.approved_by.username.startswith("staff_")
        lines = dist.lines.aggregate(total=Sum("total"), volume=Sum("volume_return"))
        assert lines["total"] == dist.surplus == dist.volume_total + dist.fixed_total + dist.capital_total
        assert lines["volume"] * 100 >= dist.surplus * 60
        assert not dist.lines.filter(total__gt=0, paid_at__isnull=True).exists()
        result = distributions.recompute(dist)  # reproducible from the stored inputs and rules
        assert {line.member_id: line.yuan("total") for line in result.lines} == dict(
            dist.lines.values_list("member_id", "total")
        )

    # Song Hanming: loan shares of 50,000 yuan; nearly 4,000 yuan for 2017.
    song = Member.objects.get(
        cooperative=langan, household__head_name="宋汉明", household__village__code="510725104207"
    )
    assert register.holdings(song.pk, as_of=__import__("datetime").date(2017, 12, 31))["loan"] == Decimal("50000")
    line = DistributionLine.objects.get(distribution__cooperative=langan, distribution__year=2017, member=song)
    assert line.fixed_return == Decimal("3000.00")  # 6% guaranteed on the loan shares
    assert Decimal("3900") <= line.total < Decimal("4000")
    assert line.total == Decimal("3954.76")
    song_income = IncomeRecord.objects.filter(household=song.household, year=2017, source=IncomeRecord.Source.DIVIDEND)
    assert song_income.aggregate(s=Sum("amount"))["s"] == line.total
    loan = song.loans.get()
    assert (loan.principal, loan.term_months, loan.status) == (Decimal("50000.00"), 36, "repaid")

    # Fan Youju: about 2,500 kg at 10 yuan a kilogram, close to 25,000 yuan.
    fan = Member.objects.get(cooperative=zizhou, household__head_name="范友菊", household__village__code="510722110215")
    delivered = Delivery.objects.filter(member=fan, year=2017).aggregate(kg=Sum("quantity"), paid=Sum("amount"))
    assert Decimal("2400") <= delivered["kg"] <= Decimal("2500")
    assert set(Delivery.objects.filter(member=fan).values_list("price_paid", flat=True)) == {Decimal("10.00")}
    assert Decimal("24000") <= delivered["paid"] <= Decimal("25000")
    fan_line = DistributionLine.objects.get(distribution__cooperative=zizhou, member=fan)
    assert fan_line.volume_return > 0 and fan_line.fixed_return == Decimal("400.00")  # 5% of 8,000 subsidy shares
    rebates = IncomeRecord.objects.filter(household=fan.household, year=2017, source=IncomeRecord.Source.REBATE)
    assert rebates.aggregate(s=Sum("amount"))["s"] == fan_line.volume_return + fan_line.extra_above_market

    # The demo manager keeps the Langan cooperative; statements and reports open.
    manager = User.objects.get(username="coop_manager")
    assert manager.check_password(DEMO_PASSWORD)
    assert CooperativeManager.objects.filter(user=manager, cooperative=langan, active=True).exists()
    client.force_login(manager)
    page = client.get(reverse("cooperatives:member-statement", args=[song.pk]))
    assert page.status_code == 200 and "3,954.76" in page.content.decode()
    assert client.get(reverse("cooperatives:cooperative-report", args=[langan.pk]) + "?year=2017").status_code == 200

    # The public page shows the totals of 2017, without a name.
    client.logout()
    public = client.get(reverse("cooperatives:cooperative-detail", args=[langan.pk])).content.decode()
    assert "82,600.00" in public and "宋汉明" not in public and "王建国" not in public

    # A second run changes nothing.
    before = figures()
    call_command("load_demo", verbosity=0)
    assert figures() == before
