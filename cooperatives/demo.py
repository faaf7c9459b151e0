"""The cooperatives of the Mianyang demo, from the 2017 account:

- the Zitong Langan breeding professional cooperative (兰干村, Xuzhou town),
  in which Song Hanming became a shareholder with a poverty-alleviation loan
  and received "nearly 4,000 yuan" for 2017;
- the Baohua pig-farming cooperatives of Anzhou district ("5432" mode);
- the Zizhou Zanthoxylum armatum cooperative of Santai county (杨武沟村,
  Qianfeng town), led by Zizhou Agricultural Science and Technology Company,
  Ltd. (general manager Li Hua), which bought Fan Youju's five mu of
  Zanthoxylum armatum at 10 yuan a kilogram: close to 25,000 yuan.

Everything goes through the services (audit entries, income records), and
each cooperative ends with its 2017 distribution computed, approved by the
county's staff and paid. The figures below other than those of the account
are made up for the demo, and chosen so that Song Hanming's 2017 total is
3,954.76 yuan (a fixed return of 3,000.00 on his 50,000-yuan loan shares
plus 954.76 on capital) and Fan Youju delivered 2,490 kg at 10 yuan.

:func:`load` is called by the demo loader at the end of its run, inside its
transaction. A cooperative that exists already (by name) is left alone, so
running the loader again changes nothing.
"""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from households.models import Area, Household
from sun_commune.models import RoleGrant, User

from .models import Cooperative, CooperativeManager, Distribution, Member
from .services import coops, distributions, loans, purchases, register

MANAGER = "coop_manager"
D = Decimal

LANGAN = "510725104207"
YANGWUGOU = "510722110215"
ANZHOU = "510705"
XUZHOU_STAFF, ANZHOU_STAFF, SANTAI_STAFF = "staff_zitong", "staff_anzhou", "staff_santai"
CREDIT_UNION = "梓潼县农村信用合作联社"

# Pig deliveries: (date, kg, market price); the cooperative paid the agreed 14.00 a kg.
PIG_BATCHES = [
    ("2017-03-20", "3450", "13.60"),
    ("2017-06-12", "3960", "12.80"),
    ("2017-09-18", "3720", "13.20"),
    ("2017-12-08", "4140", "13.90"),
]

COOPERATIVES = [
    {
        "name": "梓潼县兰干养殖专业合作社",
        "kind": Cooperative.Kind.BREEDING,
        "area": LANGAN,
        "staff": XUZHOU_STAFF,
        "manager": MANAGER,
        "founded_on": "2015-04-16",
        "mode": "龙头企业 + 合作社 + 贫困户",
        "description": (
            "兰干村的生猪养殖专业合作社。贫困户以扶贫小额贷款入股，合作社统一供苗、统一防疫、统一收购，"
            "年底按章程分红：六成以上按交易量返还，贷款股份保底分红，其余按股金分配。"
        ),
        "enterprises": [],
        "rules": {
            "volume_share_percent": D("60"),
            "loan_fixed_rate_percent": D("6"),
            "subsidy_fixed_rate_percent": D("5"),
            "land_value_per_mu": D("0"),
            "labour_value_per_day": D("0"),
        },
        "product": ("生猪", "kg", D("14.00"), D("12.00"), "2017年全年"),
        "members": [
            # Song Hanming: the account's poverty-alleviation loan shares; he raises no pigs himself.
            {
                "household": (LANGAN, "宋汉明"),
                "joined_on": "2017-01-10",
                "loan": (CREDIT_UNION, D("50000"), D("4.35"), 36, 12, "2017-01-10"),
            },
            *[
                {
                    "household": (LANGAN, index),
                    "joined_on": "2017-01-10",
                    "subsidy": D("10000"),
                    "loan": (CREDIT_UNION, D("50000"), D("4.35"), 36, 12, "2017-01-10"),
                    "deliveries": [(day, str(int(kg) // 10), market) for day, kg, market in PIG_BATCHES[1:3]],
                }
                for index in range(4)
            ],
            *[
                {
                    "name": name,
                    "kind": Member.Kind.FARMER,
                    "joined_on": "2015-04-16",
                    "own": D(own),
                    "deliveries": [(day, str(int(kg) * share // 4), market) for day, kg, market in PIG_BATCHES],
                }
                for name, own, share in (
                    ("王建国", "200000", 4),
                    ("李正洪", "150000", 3),
                    ("张德才", "120000", 3),
                    ("陈永富", "80000", 2),
                )
            ],
        ],
        "surplus": D("82600.00"),
    },
    {
        "name": "安州区宝华生猪养殖专业合作社",
        "kind": Cooperative.Kind.BREEDING,
        "area": ANZHOU,
        "staff": ANZHOU_STAFF,
        "founded_on": "2014-09-01",
        "mode": "“5432”模式：合作社 + 贫困户",
        "description": "安州区宝华生猪养殖专业合作社：代养、订单收购、保底价收购，盈余二次返利给贫困户。",
        "enterprises": [],
        "rules": {
            "volume_share_percent": D("65"),
            "loan_fixed_rate_percent": D("5"),
            "subsidy_fixed_rate_percent": D("6"),
            "land_value_per_mu": D("0"),
            "labour_value_per_day": D("0"),
        },
        "product": ("生猪", "kg", D("14.20"), D("12.50"), "2017年全年"),
        "members": [
            *[
                {
                    "household": (ANZHOU, index),
                    "joined_on": "2016-03-01",
                    "subsidy": D("8000"),
                    "deliveries": [(day, str(int(kg) // 8), market) for day, kg, market in PIG_BATCHES[index % 2 :: 2]],
                }
                for index in range(6)
            ],
            {
                "household": (ANZHOU, 6),
                "joined_on": "2016-03-01",
                "loan": ("安州区农村信用合作联社", D("30000"), D("4.35"), 12, 1, "current"),
            },
            {
                "name": "宝华养殖场",
                "kind": Member.Kind.ENTERPRISE,
                "joined_on": "2014-09-01",
                "own": D("300000"),
                "deliveries": [(day, kg, market) for day, kg, market in PIG_BATCHES],
            },
        ],
        "surplus": D("46800.00"),
    },
    {
        "name": "安州区宝华生猪代养专业合作社",
        "kind": Cooperative.Kind.BREEDING,
        "area": ANZHOU,
        "staff": ANZHOU_STAFF,
        "founded_on": "2016-05-20",
        "mode": "“5432”模式：合作社 + 贫困户",
        "description": "宝华生猪养殖的第二个合作社：合作社提供仔猪、饲料和技术，贫困户代养，按订单和保底价收购。",
        "enterprises": [],
        "rules": {
            "volume_share_percent": D("70"),
            "loan_fixed_rate_percent": D("0"),
            "subsidy_fixed_rate_percent": D("6"),
            "land_value_per_mu": D("0"),
            "labour_value_per_day": D("80"),
        },
        "product": ("生猪", "kg", D("14.00"), D("12.50"), "2017年全年"),
        "members": [
            *[
                {
                    "household": (ANZHOU, 7 + index),
                    "joined_on": "2016-05-20",
                    "subsidy": D("6000"),
                    "labour": (D("40"), D("3200")),
                    "deliveries": [(day, str(int(kg) // 10), market) for day, kg, market in PIG_BATCHES[::3]],
                }
                for index in range(5)
            ],
            {
                "name": "何光明",
                "kind": Member.Kind.FARMER,
                "joined_on": "2016-05-20",
                "own": D("100000"),
                "deliveries": [(day, str(int(kg) // 2), market) for day, kg, market in PIG_BATCHES],
            },
        ],
        "surplus": D("21500.00"),
    },
    {
        "name": "三台县梓州藤椒专业合作社",
        "kind": Cooperative.Kind.PLANTING,
        "area": YANGWUGOU,
        "staff": SANTAI_STAFF,
        "founded_on": "2015-11-08",
        "mode": "龙头企业 + 基地 + 合作社 + 农户",
        "description": (
            "杨武沟村三社的藤椒产业基地。龙头企业统一采种、育苗、苗圃管理和技术指导；农户可以土地流转入股、"
            "投劳入股挣服务费，也可以在低产坡地种植藤椒，由合作社按订单、保底价收购。"
        ),
        "enterprises": [
            ("梓州农业科技有限公司", "李华", "牵头成立藤椒专业合作社，统一采种、育苗、苗圃管理，并提供全程技术指导。"),
        ],
        "rules": {
            "volume_share_percent": D("60"),
            "loan_fixed_rate_percent": D("0"),
            "subsidy_fixed_rate_percent": D("5"),
            "land_value_per_mu": D("2000"),
            "labour_value_per_day": D("100"),
        },
        "product": ("鲜藤椒", "kg", D("10.00"), D("8.00"), "2017年夏季"),
        "members": [
            # Fan Youju: five mu of her own, sold to the cooperative at 10 yuan a kilogram in June.
            {
                "household": (YANGWUGOU, "范友菊"),
                "joined_on": "2016-03-05",
                "subsidy": D("8000"),
                "labour": (D("30"), D("2400")),
                "contract_quantity": D("2500"),
                "deliveries": [
                    ("2017-06-08", "620", "8.80"),
                    ("2017-06-15", "650", "8.60"),
                    ("2017-06-22", "600", "8.80"),
                    ("2017-06-29", "620", "9.00"),
                ],
            },
            *[
                {
                    "household": (YANGWUGOU, index),
                    "joined_on": "2016-03-05",
                    "subsidy": D("8000"),
                    "land": (D(mu), D("400") * D(mu)),
                    "labour": (D(days), D("80") * D(days)),
                    "deliveries": [("2017-06-20", kg, "8.80")],
                }
                for index, (mu, days, kg) in enumerate((("3", "60", "380"), ("2.5", "45", "300"), ("4", "80", "520")))
            ],
            {
                "name": "梓州农业科技有限公司",
                "kind": Member.Kind.ENTERPRISE,
                "joined_on": "2015-11-08",
                "own": D("500000"),
                "land": (D("120"), D("48000")),
            },
            *[
                {
                    "name": name,
                    "kind": Member.Kind.FARMER,
                    "joined_on": "2015-11-08",
                    "own": D(own),
                    "land": (D(mu), D("400") * D(mu)),
                    "deliveries": [("2017-06-10", first, "8.80"), ("2017-06-24", second, "8.60")],
                }
                for name, own, mu, first, second in (
                    ("赵大林", "60000", "10", "1200", "1350"),
                    ("钱家福", "40000", "12", "3000", "3200"),
                    ("孙志强", "30000", "8", "2800", "2600"),
                    ("周玉兰", "20000", "6", "2500", "2400"),
                    ("吴长贵", "50000", "15", "3500", "3300"),
                )
            ],
        ],
        "surplus": D("40000.00"),
    },
]


def _day(text: str) -> date:
    return date.fromisoformat(text)


class _Loader:
    def __init__(self, demo_loader):
        self.demo = demo_loader
        self.today = demo_loader.today
        self.created = 0

    def user(self, username: str) -> User:
        return self.demo.users.get(username) or User.objects.get(username=username)

    def households_of(self, code: str) -> list[Household]:
        """The area's households in registration order (the loader's fixed plan),
        the named ones of the account left out of the numbered picks."""
        area = Area.objects.get(code=code)
        return list(Household.objects.within(area).exclude(head_name__in=["宋汉明", "范友菊", "黄国基"]).order_by("id"))

    def household(self, spec: tuple, cache: dict) -> Household:
        code, key = spec
        if isinstance(key, str):
            return Household.objects.get(village__code=code, head_name=key)
        if code not in cache:
            cache[code] = self.households_of(code)
        found = cache[code]
        if key >= len(found):
            raise RuntimeError(f"the demo needs at least {key + 1} households in area {code}")
        return found[key]

    def run(self) -> int:
        manager = self.demo.user(MANAGER, f"{MANAGER}@example.com")
        for spec in COOPERATIVES:
            coop = Cooperative.objects.filter(name=spec["name"]).first()
            if coop is None:
                coop = self.cooperative(spec)
                self.created += 1
            if (
                spec.get("manager") == MANAGER
                and not CooperativeManager.objects.filter(user=manager, cooperative=coop, active=True).exists()
            ):
                coops.grant_manager(by=self.user(spec["staff"]), cooperative_id=coop.pk, user=manager)
        return self.created

    def cooperative(self, spec: dict) -> Cooperative:
        staff = self.user(spec["staff"])
        keeper = self.demo.users.get(spec.get("manager", "")) if spec.get("manager") else None
        coop = coops.create_cooperative(
            by=staff,
            name=spec["name"],
            kind=spec["kind"],
            area=Area.objects.get(code=spec["area"]),
            mode=spec["mode"],
            description=spec["description"],
            founded_on=_day(spec["founded_on"]),
        )
        for name, general_manager, description in spec["enterprises"]:
            coops.add_leading_enterprise(
                by=staff, cooperative_id=coop.pk, name=name, general_manager=general_manager, description=description
            )
        distributions.set_rules(by=staff, cooperative_id=coop.pk, **spec["rules"])
        product, unit, agreed, guaranteed, season = spec["product"]
        cache: dict = {}
        for m in spec["members"]:
            household = self.household(m["household"], cache) if "household" in m else None
            land_mu, rent = m.get("land", (D("0"), None))
            labour_days, fees = m.get("labour", (D("0"), None))
            member = register.add_member(
                by=keeper or staff,
                cooperative_id=coop.pk,
                kind=m.get("kind", Member.Kind.HOUSEHOLD),
                household=household,
                name=m.get("name", ""),
                joined_on=_day(m["joined_on"]),
                own_capital=m.get("own", D("0")),
                subsidy_capital=m.get("subsidy", D("0")),
                land_mu=land_mu,
                yearly_rent=rent,
                labour_days=labour_days,
                service_fees=fees,
            )
            if household is not None:
                self.confirm(member, household)
            if "loan" in m:
                self.loan(member, m["loan"], keeper or staff)
            if m.get("deliveries"):
                contract = purchases.create_contract(
                    by=keeper or staff,
                    member_id=member.pk,
                    product=product,
                    unit=unit,
                    agreed_price=agreed,
                    guaranteed_price=guaranteed,
                    quantity=m.get("contract_quantity") or sum((D(kg) for _d, kg, _m in m["deliveries"]), D("0")),
                    season=season,
                    year=2017,
                    signed_on=min(_day(day) for day, _kg, _m in m["deliveries"]) - timedelta(days=60),
                )
                for day, kg, market in m["deliveries"]:
                    purchases.record_delivery(
                        by=keeper or staff,
                        contract_id=contract.pk,
                        delivered_on=_day(day),
                        quantity=D(kg),
                        grade="1",
                        market_price=D(market),
                        price_paid=agreed,
                    )
        dist = distributions.compute_distribution(
            by=keeper or staff, cooperative_id=coop.pk, year=2017, surplus=spec["surplus"]
        )
        distributions.approve_distribution(by=staff, distribution_id=dist.pk)
        distributions.record_all_payments(by=keeper or staff, distribution_id=dist.pk, note="DEMO-2017")
        if Distribution.objects.get(pk=dist.pk).status != Distribution.Status.PAID:
            raise RuntimeError(f"the demo distribution of {coop.name} was not paid in full")
        return coop

    def confirm(self, member: Member, household: Household) -> None:
        """The household's side of joining: its village's first secretary
        confirms, as the site requires before anything is in the register."""
        secretary = (
            User.objects.filter(
                role_grants__role=RoleGrant.Role.SECRETARY,
                role_grants__area=household.village,
                role_grants__active=True,
            )
            .order_by("pk")
            .first()
        )
        if secretary is None:
            raise RuntimeError(f"the demo needs a first secretary for village {household.village.code}")
        register.confirm_membership(by=secretary, member_id=member.pk, basis="社员大会上签了入社申请书（演示）")

    def loan(self, member: Member, spec: tuple, by) -> None:
        lender, principal, rate, term, period, start = spec
        if start == "current":
            # A loan being repaid now, so that the beat job has something to remind
            # and flag: the earlier repayments made, the latest one left overdue.
            started_on = loans.add_months(self.today, -term + 2) + timedelta(days=4)
        else:
            started_on = _day(start)
        loan = loans.create_loan(
            by=by,
            member_id=member.pk,
            lender=lender,
            principal=principal,
            annual_rate_percent=rate,
            term_months=term,
            period_months=period,
            started_on=started_on,
        )
        overdue_from = self.today - timedelta(days=31)
        for installment in loan.installments.order_by("number"):
            if installment.due_on <= overdue_from:
                loans.record_installment_paid(by=by, installment_id=installment.pk, paid_on=installment.due_on)


def load(demo_loader) -> int:
    """Load the demo cooperatives (called by the demo loader at the end of its
    run); returns how many were created."""
    created = _Loader(demo_loader).run()
    demo_loader.created.cooperatives = getattr(demo_loader.created, "cooperatives", 0) + created
    return created
