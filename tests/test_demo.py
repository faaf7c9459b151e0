"""manage.py load_demo: the Mianyang demo loads the named places, people and
needs, generates the rest reproducibly, and a second run changes nothing."""

import pytest
from django.core.management import call_command

from donations.models import Donor, Need, Pledge
from households.models import Area, Household
from portal.demo.loader import DEMO_PASSWORD, build_plan, fake_id_number, is_valid_id_number
from sun_commune.models import AuditEntry, RoleGrant, User
from sun_commune.search import search_filter

NAMED_PLACES = [
    # code, name, name_en, level, parent code
    ("510700", "绵阳市", "Mianyang", Area.Level.CITY, None),
    ("510725", "梓潼县", "Zitong", Area.Level.COUNTY, "510700"),
    ("510705", "安州区", "Anzhou", Area.Level.COUNTY, "510700"),
    ("510722", "三台县", "Santai", Area.Level.COUNTY, "510700"),
    ("510723", "盐亭县", "Yanting", Area.Level.COUNTY, "510700"),
    ("510725104", "许州镇", "Xuzhou", Area.Level.TOWNSHIP, "510725"),
    ("510722110", "前锋镇", "Qianfeng", Area.Level.TOWNSHIP, "510722"),
    ("510723205", "黄溪乡", "Huangxi", Area.Level.TOWNSHIP, "510723"),
    ("510705101", "花荄镇", "Huagai", Area.Level.TOWNSHIP, "510705"),
    ("510725104207", "兰干村", "Langan", Area.Level.VILLAGE, "510725104"),
    ("510722110215", "杨武沟村", "Yangwugou", Area.Level.VILLAGE, "510722110"),
    ("510723205203", "金鹿村", "Jinlu", Area.Level.VILLAGE, "510723205"),
]


def counts() -> dict:
    return {
        "areas": Area.objects.count(),
        "users": User.objects.count(),
        "grants": RoleGrant.objects.count(),
        "donors": Donor.objects.count(),
        "households": Household.objects.count(),
        "needs": Need.objects.count(),
        "pledges": Pledge.objects.count(),
        "audit": AuditEntry.objects.count(),
        "needs_by_status": sorted(Need.objects.values_list("status", "pledged_quantity", "pledged_amount")),
    }


def test_id_numbers_have_a_correct_check_digit():
    from datetime import date

    number = fake_id_number("510723", date(1952, 1, 26), 17, male=True)
    assert number.startswith("51072319520126") and len(number) == 18
    assert int(number[16]) % 2 == 1  # odd for a man
    assert is_valid_id_number(number)
    assert is_valid_id_number("11010519491231002X")  # the standard's own example
    assert not is_valid_id_number("110105194912310021")


def test_the_plan_is_the_same_every_time():
    first, second = build_plan(), build_plan()
    assert [h.fields for h in first.households] == [h.fields for h in second.households]
    assert [(n.fields, n.status, n.pledges) for n in first.needs] == [
        (n.fields, n.status, n.pledges) for n in second.needs
    ]


@pytest.mark.django_db
def test_load_demo_loads_mianyang_and_runs_again_without_change():
    call_command("load_demo", verbosity=0)

    # The named places, in one tree, with English names.
    for code, name, name_en, level, parent in NAMED_PLACES:
        area = Area.objects.get(code=code)
        assert (area.name, area.name_en, area.level) == (name, name_en, level)
        assert (area.parent.code if area.parent else None) == parent
        if level == Area.Level.VILLAGE:
            assert area.is_poor_village
    assert not Area.objects.filter(name_en="").exists()
    generated_villages = Area.objects.villages().exclude(code__in=[p[0] for p in NAMED_PLACES])
    assert 18 <= generated_villages.count() <= 30
    assert all(len(v.code) == 12 and v.code.startswith(v.parent.code) for v in generated_villages)

    # The named households, registered through the service (with audit entries).
    named = {
        "宋汉明": "510725104207",
        "范友菊": "510722110215",
        "黄国基": "510723205203",
    }
    for head_name, village_code in named.items():
        household = Household.objects.get(head_name=head_name, village__code=village_code)
        assert household.phone and household.address
        assert is_valid_id_number(household.id_number)
        assert household.id_number.startswith(village_code[:6])
        assert AuditEntry.objects.filter(action="household.created", object_id=str(household.pk)).exists()
    huang = Household.objects.get(head_name="黄国基")
    assert (huang.alias, huang.alias_consent) == ("黄家", True)
    assert huang.public_label == "黄家"

    # Huang Guoji's two needs: posted by the Jinlu secretary, published by the Yanting reviewer.
    needs = Need.objects.filter(household=huang)
    assert needs.count() == 2
    blanket = Need.objects.filter(search_filter("电热毯"), household=huang).get()
    oven = Need.objects.filter(search_filter("烤火炉"), household=huang).get()
    for need, price in ((blanket, 159), (oven, 299)):
        assert need.status == Need.Status.PUBLISHED
        assert need.created_by.username == "secretary"
        assert need.reviewed_by.username == "reviewer"
        assert (need.kind, need.category, need.quantity, need.unit_price) == ("goods", "daily", 1, price)
        assert need.is_open_for_pledges
    assert blanket in Need.objects.public().filter(search_filter("电热毯"))
    assert (blanket.item, blanket.unit, oven.item, oven.unit) == ("电热毯", "床", "烤火炉", "台")

    # Generated needs: every status the supermarket shows, 电视 among them, and money received.
    statuses = set(Need.objects.values_list("status", flat=True))
    assert {"draft", "submitted", "published", "fully_pledged", "fulfilled"} <= statuses
    assert Need.objects.public().filter(search_filter("电视")).exists()
    assert Pledge.objects.filter(transfer_reference__startswith="DEMO-").exists()
    assert Need.objects.filter(kind="service").exists() and Need.objects.filter(kind="money").exists()

    # Public text never names a person.
    heads = list(Household.objects.values_list("head_name", flat=True))
    for title, description in Need.objects.values_list("title", "description"):
        assert not any(head in title or head in description for head in heads), title

    # Demo logins.
    donor = User.objects.get(username="donor")
    assert donor.check_password(DEMO_PASSWORD)
    assert (donor.donor.name, donor.donor.kind, donor.donor.show_name) == ("陈晓梅", "person", True)
    assert User.objects.get(username="admin").is_superuser
    assert RoleGrant.objects.filter(user__username="secretary", role="secretary", area__code="510723205203").exists()
    assert RoleGrant.objects.filter(user__username="reviewer", role="staff", area__code="510723").exists()
    assert RoleGrant.objects.filter(user__username="city_staff", role="staff", area__code="510700").exists()
    assert not User.objects.filter(email="").exists()

    # A second run changes nothing, and leaves changed passwords alone.
    donor.set_password("changed-by-the-user")
    donor.save()
    before = counts()
    call_command("load_demo", verbosity=0)
    assert counts() == before
    donor.refresh_from_db()
    assert donor.check_password("changed-by-the-user")
