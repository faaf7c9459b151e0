"""The ledger's grants as 360Giving data (issue 15, part 3), checked with the
standard's own tools: flattentool unflattens /ledger/360giving.csv and
jsonschema validates it, and /ledger/360giving.json, against the 360Giving
1.4 schema (tests/data/360giving-1.4/, from the standard's repository at
tag 1.4). Only money and goods that reached a need or household are grants;
a reversed grant is left out; nobody's name but a named donor's appears."""

import csv
import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import flattentool
import pytest
from django.core.management import call_command
from django.db import transaction
from django.db.models import Sum
from django.test import Client, override_settings
from jsonschema import Draft4Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT4

from donations import downloads, giving, ledger, publication
from donations.models import LedgerTransaction
from donations.services import money as money_services
from donations.services import pledges
from households.models import Household, HouseholdMember

from . import factories
from .ledger_support import receive_money, spend_kwargs, yesterday

SCHEMAS = Path(__file__).resolve().parent / "data" / "360giving-1.4"
GRANT_SCHEMA = SCHEMAS / "360-giving-schema.json"
GRANT_URL = "https://raw.githubusercontent.com/ThreeSixtyGiving/standard/1.4/schema/360-giving-schema.json"
Kind = LedgerTransaction.Kind
D = Decimal


def validator() -> Draft4Validator:
    """The 1.4 package schema, its grants checked by the grant schema it
    names (kept here, not fetched), with the formats (date-time) checked."""
    registry = Registry().with_resource(GRANT_URL, Resource.from_contents(json.loads(GRANT_SCHEMA.read_text()), DRAFT4))
    package = json.loads((SCHEMAS / "360-giving-package-schema.json").read_text())
    checker = FormatChecker()
    # The schema's Award Date is "a date, or a date-time": without a
    # date-time check (rfc3339-validator) every date would match both.
    assert checker.conforms("2026-12-04T08:00:00Z", "date-time") and not checker.conforms("2026-12-04", "date-time")
    return Draft4Validator(package, registry=registry, format_checker=checker)


def errors_of(data: dict) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in validator().iter_errors(data)]


def unflatten(csv_path: Path, tmp_path: Path) -> dict:
    """The CSV as 360Giving's tools read it: flattentool, the grant schema's
    titles, one sheet of grants."""
    sheets = tmp_path / "sheets"
    sheets.mkdir()
    (sheets / "grants.csv").write_bytes(csv_path.read_bytes().removeprefix("\ufeff".encode()))
    out = tmp_path / "unflattened.json"
    flattentool.unflatten(
        str(sheets),
        input_format="csv",
        output_name=str(out),
        schema=str(GRANT_SCHEMA),
        root_list_path="grants",
        root_id="",
        convert_titles=True,
    )
    return json.loads(out.read_text(), parse_float=Decimal)


def grants_reached() -> Decimal:
    """Money and goods that reached a need, from the ledger's own rows: what
    was received, less what a reversal took back."""
    received = LedgerTransaction.objects.filter(kind__in=giving.GRANT_KINDS, published__isnull=False)
    reversed_ = received.filter(reversed_by__published__isnull=False)
    total = received.aggregate(s=Sum("amount"))["s"] or D("0")
    return total - (reversed_.aggregate(s=Sum("amount"))["s"] or D("0"))


def check_files(files: downloads.FileSet, tmp_path: Path) -> list[dict]:
    """Both files valid against the schema, the CSV unflattening to the same
    grants as the JSON; returns the grants."""
    document = json.loads((files.directory / "360giving.json").read_text(), parse_float=Decimal)
    assert document["grants"], "no grants to check"
    assert errors_of(json.loads((files.directory / "360giving.json").read_text())) == []
    flat = unflatten(files.directory / "360giving.csv", tmp_path)
    assert errors_of(json.loads(json.dumps(flat, default=float))) == []
    assert flat["grants"] == document["grants"]
    return document["grants"]


def assert_identifiers(grants: list[dict], prefix: str = "360G-suncommune-") -> None:
    assert len({g["id"] for g in grants}) == len(grants)
    for g in grants:
        recipient = g.get("recipientIndividual") or g["recipientOrganization"][0]
        ids = [g["id"], recipient["id"], g["fundingOrganization"][0]["id"]]
        assert all(i.startswith(prefix) for i in ids), ids
        assert g["fundingOrganization"][0]["name"]
        assert g["currency"] == "CNY"
        if "recipientIndividual" in g:
            public_id = recipient["id"].removeprefix(f"{prefix}household-")
            assert recipient["name"] == f"Household {public_id}"


@pytest.fixture
def files_root(settings, tmp_path):
    settings.LEDGER_FILES_ROOT = tmp_path / "ledger-files"
    return settings.LEDGER_FILES_ROOT


@pytest.fixture
def small_world(areas, secretary_a, county_reviewer, files_root):
    """Every kind of entry, in two batches: the first two grants, then more,
    a pool's gift, allocation and spending, and a reversal of a grant."""
    household = factories.HouseholdFactory(village=areas.village_a, head_name="王秘密")
    hidden = factories.make_donor(name="隐名捐赠人", show_name=False, username="hidden")
    named = factories.make_donor(name="Named Donor Zhang", show_name=True, username="named")
    money = factories.published_need(
        village=areas.village_a, by=secretary_a, reviewer=county_reviewer, kind="money", household=household
    )
    goods = factories.published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer)
    first = receive_money(money, hidden, "400", reference="G-1", by=county_reviewer)
    receive_money(money, named, "100.50", reference="G-2", by=county_reviewer)
    publication.publish_all()
    before = downloads.write_files()
    p = factories.pledge(goods, named, 3)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=3)  # 3 × 80.00 yuan
    money_services.record_gift(
        by=county_reviewer, area=areas.yanting, amount="60", reference="G-3", occurred_on=yesterday()
    )
    money_services.allocate(by=county_reviewer, pool_area=areas.yanting, need_id=money.pk, amount="50")
    money_services.spend(by=county_reviewer, amount="100", need_id=money.pk, **spend_kwargs())
    with transaction.atomic():  # a correction of the first receipt, as the ledger allows it
        legs = [(leg.account, -leg.amount) for leg in first.legs.select_related("account")]
        ledger.post(
            kind=Kind.REVERSAL, legs=legs, area=first.area, by=county_reviewer, need_id=first.need_id, reverses=first
        )
    publication.publish_all()
    return household, first, before


def test_before_a_reversal_both_grants_are_there_and_valid(small_world, tmp_path):
    _household, first, before = small_world
    grants = check_files(before, tmp_path)
    assert sorted(g["amountAwarded"] for g in grants) == [D("100.50"), D("400.00")]
    assert f"360G-suncommune-{first.pk}" in {g["id"] for g in grants}


def test_only_grants_that_reached_a_need_every_row_valid_and_the_sum_is_what_arrived(small_world, tmp_path):
    household, first, _before = small_world
    files = downloads.write_files()
    grants = check_files(files, tmp_path)
    assert_identifiers(grants)

    # 100.50 (named donor) + 240.00 of goods; the 400 received was reversed;
    # the pool's gift, the allocation, the spending and the reversal are no awards.
    assert sum(g["amountAwarded"] for g in grants) == grants_reached() == D("340.50")
    assert f"360G-suncommune-{first.pk}" not in {g["id"] for g in grants}
    by_kind = {g["grantProgramme"][0]["title"]: g for g in grants}
    assert set(by_kind) == set(giving.PROGRAMMES.values())
    money_grant = by_kind[giving.PROGRAMMES[Kind.MONEY_IN]]
    assert money_grant["recipientIndividual"] == {
        "id": f"360G-suncommune-household-{household.public_id}",
        "name": f"Household {household.public_id}",
    }
    assert money_grant["fundingOrganization"][0]["name"] == "Named Donor Zhang"
    goods_grant = by_kind[giving.PROGRAMMES[Kind.GOODS_IN]]
    assert goods_grant["recipientOrganization"] == [{"id": "360G-suncommune-village-510723101201", "name": "金鹿村"}]
    assert goods_grant["beneficiaryLocation"] == [{"name": "金鹿村", "geoCode": "510723101201", "countryCode": "CN"}]

    # Appending to the previous set and dropping the reversed grant wrote
    # what a rebuild from the published rows writes.
    appended = {name: (files.directory / name).read_bytes() for name in giving.FILES}
    rebuilt = downloads.write_files(rebuild=True)
    assert {name: (rebuilt.directory / name).read_bytes() for name in giving.FILES} == appended


def test_no_real_name_and_anonymous_donors_are_one_organisation(small_world, areas, secretary_a, county_reviewer):
    household, _first, _before = small_world
    downloads.write_files()
    other = factories.make_donor(name="另一个匿名", show_name=False, username="other")
    need = factories.published_need(village=areas.village_a, by=secretary_a, reviewer=county_reviewer, kind="money")
    receive_money(need, other, "10", reference="G-4", by=county_reviewer)
    publication.publish_all()
    files = downloads.write_files()  # the previous set's grants, and one more appended
    texts = [(files.directory / name).read_text(encoding="utf-8") for name in giving.FILES]
    rebuilt = downloads.write_files(rebuild=True)
    assert [(rebuilt.directory / name).read_text(encoding="utf-8") for name in giving.FILES] == texts
    for text in texts:
        for secret in ("王秘密", "隐名捐赠人", "另一个匿名", "hidden", "other"):
            assert secret not in text
    assert Household.objects.get(pk=household.pk).head_name == "王秘密"
    grants = json.loads(texts[1])["grants"]
    anonymous = [
        g["fundingOrganization"][0] for g in grants if g["fundingOrganization"][0]["name"] != "Named Donor Zhang"
    ]
    assert anonymous == [{"id": "360G-suncommune-anonymous-donor", "name": "Anonymous donor"}]


def test_the_files_are_served_at_their_urls_and_follow_the_prefix(small_world, settings):
    downloads.write_files()
    settings.GIVING_PREFIX = "360G-example"
    downloads.write_files()  # the set's grants were written under the other prefix: all anew
    table = b"".join(Client().get("/ledger/360giving.csv").streaming_content).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(table)))
    assert [r["Funding Org:Identifier"] for r in rows] == [
        "360G-example-donor-" + rows[0]["Funding Org:Identifier"].split("-")[-1]
    ] * 2
    assert all(r["Identifier"].startswith("360G-example-") for r in rows)
    response = Client().get("/ledger/360giving.json")
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert len(json.loads(b"".join(response.streaming_content))["grants"]) == 2


def test_the_full_ledger_csv_has_its_own_columns_not_360givings(small_world):
    files = downloads.write_files()
    header = (files.directory / "ledger.csv").read_text(encoding="utf-8-sig").splitlines()[0].split(",")
    assert header[:6] == ["Entry Index", "Transaction Id", "Kind", "Date", "Recorded At", "Amount"]
    assert not any(":" in name or name in ("Identifier", "Amount Awarded") for name in header)


def test_a_set_of_the_older_layout_is_rebuilt_not_appended_to(small_world):
    files = downloads.write_files()
    state = files.directory / downloads.STATE
    state.write_text(json.dumps({k: v for k, v in json.loads(state.read_text()).items() if k != "format"}))
    assert downloads.current().directory == files.directory  # still served: it is whole on its own
    again = downloads.write_files()  # but never built on
    assert again.directory != files.directory and (again.directory / "360giving.json").exists()
    assert json.loads((again.directory / downloads.STATE).read_text())["format"] == downloads.FORMAT


@pytest.fixture(scope="module")
def demo(django_db_setup, django_db_blocker, tmp_path_factory):
    """The Mianyang demo, loaded and published once for the module (the
    publisher commits on its own, so this is committed, and flushed after,
    as a transactional test is): its 360Giving files, what reached its
    needs, and every name in its register."""
    root = tmp_path_factory.mktemp("demo-files")
    with django_db_blocker.unblock():
        try:
            with override_settings(LEDGER_FILES_ROOT=root / "ledger-files"):
                call_command("load_demo", verbosity=0)
                publication.publish_all()
                files = downloads.write_files()
                texts = {name: (files.directory / name).read_bytes() for name in giving.FILES}
                reached = grants_reached()
                names = set(Household.objects.values_list("head_name", flat=True))
                names |= set(HouseholdMember.objects.values_list("name", flat=True))
        finally:
            call_command("flush", verbosity=0, interactive=False)
    return texts, reached, names


@pytest.mark.django_db  # so that the test database is set up when this test runs alone
def test_the_demos_grants_are_valid_360giving_and_add_up(demo, tmp_path):
    texts, reached, names = demo
    directory = tmp_path / "set"
    directory.mkdir()
    for name, data in texts.items():
        (directory / name).write_bytes(data)
    grants = check_files(downloads.FileSet(directory, 0, 0, "", {}), tmp_path)
    assert_identifiers(grants)
    assert len(grants) > 50
    assert sum(g["amountAwarded"] for g in grants) == reached
    assert {"recipientIndividual" in g for g in grants} == {True, False}  # households and whole villages
    for text in (data.decode("utf-8") for data in texts.values()):
        assert not [name for name in names if name and name in text]


@pytest.mark.parametrize("prefix", ["suncommune", "360G-", "360g-suncommune", "360G-sun commune", "360G-sun_commune"])
def test_a_prefix_outside_360givings_namespace_refuses_to_start(prefix):
    env = {**os.environ, "GIVING_PREFIX": prefix, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "sun_commune.settings"}
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode != 0 and "GIVING_PREFIX must be 360G-" in run.stderr


def test_a_prefix_in_the_namespace_starts():
    env = {
        **os.environ,
        "GIVING_PREFIX": "360G-sun-commune2",
        "DEBUG": "1",
        "DJANGO_SETTINGS_MODULE": "sun_commune.settings",
    }
    run = subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"], env=env, capture_output=True, text=True, check=False
    )
    assert run.returncode == 0, run.stderr
