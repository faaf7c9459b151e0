"""The public ledger from the outside (issue 3): the citizen's verifier on
the real downloads, nothing private in any public page or download, and the
bureau's ledger pages (area checks, vouchers, bad input, the fund report)."""

import hashlib
import json
import re
import subprocess
import sys
from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from django.conf import settings
from django.core.files.storage import default_storage
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.utils import timezone, translation
from openpyxl import load_workbook

from donations import merkle, publication
from donations.models import LedgerBatch, LedgerTransaction, PublishedEntry
from donations.services import money as money_services
from donations.services import needs, pledges
from households import services as household_services

from . import factories
from .ledger_support import D, fund_of, published_lines, receive_money, spend_kwargs, yesterday

ROOT = Path(__file__).resolve().parent.parent
VERIFIER = ROOT / "tools" / "verify_ledger.py"
Kind = LedgerTransaction.Kind


@pytest.fixture(autouse=True)
def english():
    with translation.override("en"):
        yield


def english_client(user=None) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    if user is not None:
        client.force_login(user)
    return client


def body(response) -> bytes:
    return b"".join(response.streaming_content) if response.streaming else response.content


# --- 6. The verifier on the real downloads ----------------------------------------------------


def verify(*args) -> tuple[int, str]:
    """Run the downloadable verifier as a citizen would: a bare interpreter."""
    result = subprocess.run(
        [sys.executable, "-I", str(VERIFIER), *map(str, args)], capture_output=True, text=True, timeout=60
    )
    return result.returncode, result.stdout + result.stderr


@pytest.fixture
def downloads(areas, money_need_a, need_a, donor, secretary_a, county_reviewer, tmp_path):
    """Two published batches of real activity, downloaded like the public would."""
    receive_money(money_need_a, donor, "300", reference="V-1", by=county_reviewer)
    money_services.record_gift(
        by=county_reviewer, area=areas.yanting, amount="500", reference="V-2", occurred_on=yesterday()
    )
    money_services.spend(by=county_reviewer, amount="45.50", need_id=money_need_a.pk, **spend_kwargs(purpose="cement"))
    publication.publish_all()
    p = factories.pledge(need_a, donor, 2)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2)
    allocation = money_services.allocate(
        by=county_reviewer, pool_area=areas.yanting, need_id=money_need_a.pk, amount="100"
    )
    money_services.reverse_transaction(by=county_reviewer, transaction_id=allocation.pk, reason="wrong need")
    money_services.spend(
        by=county_reviewer, amount="12.00", pool_area=areas.yanting, **spend_kwargs(purpose="bank fees")
    )
    publication.publish_all()
    assert LedgerBatch.objects.count() == 2

    client = english_client()
    files = {
        "ledger": "/ledger/ledger.jsonl",
        "checkpoint": "/ledger/checkpoint.json",
        "checkpoint1": "/ledger/checkpoints/1.json",
        "key": "/ledger/public-key.txt",
        "proof": "/ledger/entries/2/proof.json",
        "verifier": "/ledger/verify_ledger.py",
    }
    paths = {}
    for name, url in files.items():
        response = client.get(url)
        assert response.status_code == 200, url
        paths[name] = tmp_path / url.rsplit("/", 1)[-1]
        paths[name].write_bytes(body(response))
    assert paths["verifier"].read_bytes() == VERIFIER.read_bytes()
    return paths


def lines_of(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def write(tmp_path, name, data) -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else json.dumps(data).encode())
    return path


def test_the_verifier_accepts_the_real_downloads(downloads):
    assert len(lines_of(downloads["ledger"])) == 7

    code, out = verify(downloads["ledger"], downloads["checkpoint"], "--public-key", downloads["key"])
    assert code == 0, out
    assert out.startswith("OK: 7 entries match checkpoint batch 2")

    code, out = verify(
        downloads["ledger"],
        downloads["checkpoint"],
        "--previous",
        downloads["checkpoint1"],
        "--public-key",
        downloads["key"],
    )
    assert code == 0, out
    assert "older checkpoint batch 1 (3 entries) is a prefix" in out

    code, out = verify(downloads["ledger"], downloads["checkpoint1"], "--public-key", downloads["key"])
    assert code == 1, out  # the longer ledger is not what the older checkpoint covers (issue 15)
    assert out.startswith("BAD line 4: the ledger goes on after the 3 entries that checkpoint batch 1 covers")
    code, out = verify(downloads["ledger"], downloads["checkpoint1"], "--prefix")  # the key pinned above
    assert code == 0, out  # the older checkpoint still holds for the first entries of the longer ledger
    assert "4 further lines" in out


def test_the_verifier_names_an_entry_changed_by_one_byte(downloads, tmp_path):
    lines = lines_of(downloads["ledger"])
    assert b'"purpose":"cement"' in lines[2]
    lines[2] = lines[2].replace(b'"purpose":"cement"', b'"purpose":"cemenT"')

    code, out = verify(
        write(tmp_path, "edited.jsonl", b"".join(lines)), downloads["checkpoint"], "--public-key", downloads["key"]
    )

    assert code == 1
    assert out.startswith("BAD entry 2 (line 3): it was changed")


def test_the_verifier_names_an_entry_made_invalid_by_a_flipped_bit(downloads, tmp_path):
    data = bytearray(downloads["ledger"].read_bytes())
    start = sum(len(line) for line in lines_of(downloads["ledger"])[:4])
    data[start] ^= 0x01  # the opening brace of entry 4

    code, out = verify(
        write(tmp_path, "flipped.jsonl", bytes(data)), downloads["checkpoint"], "--public-key", downloads["key"]
    )

    assert code == 1
    assert out.startswith("BAD entry 4 (line 5): not valid JSON")


def test_the_verifier_names_a_deleted_or_a_moved_entry(downloads, tmp_path):
    lines = lines_of(downloads["ledger"])

    key = ["--public-key", downloads["key"]]
    code, out = verify(write(tmp_path, "deleted.jsonl", b"".join(lines[:3] + lines[4:])), downloads["checkpoint"], *key)
    assert code == 1
    assert out.startswith("BAD entry 3 (line 4): its index says 4")

    swapped = lines[:]
    swapped[4], swapped[5] = swapped[5], swapped[4]
    code, out = verify(write(tmp_path, "swapped.jsonl", b"".join(swapped)), downloads["checkpoint"], *key)
    assert code == 1
    assert out.startswith("BAD entry 4 (line 5): its index says 5")

    code, out = verify(write(tmp_path, "cut.jsonl", b"".join(lines[:6])), downloads["checkpoint"], *key)
    assert code == 1
    assert out.startswith("BAD entry 6 (line 7): missing")


def test_the_verifier_rejects_a_checkpoint_with_an_altered_signature(downloads, tmp_path):
    checkpoint = json.loads(downloads["checkpoint"].read_text())
    signature = checkpoint["signature"]
    checkpoint["signature"] = ("1" if signature[0] != "1" else "2") + signature[1:]

    code, out = verify(downloads["ledger"], write(tmp_path, "cp.json", checkpoint), "--public-key", downloads["key"])

    assert code == 1
    assert out.strip() == "BAD signature on checkpoint batch 2"


def _resign(checkpoint: dict, key: Ed25519PrivateKey) -> dict:
    message = merkle.checkpoint_message(
        batch=checkpoint["batch"],
        tree_size=checkpoint["tree_size"],
        root_hash=checkpoint["root_hash"],
        timestamp=checkpoint["timestamp"],
    )
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    return {**checkpoint, "public_key": public, "signature": key.sign(message).hex()}


def test_the_verifier_rejects_an_older_checkpoint_that_is_not_a_prefix(downloads, tmp_path):
    old = json.loads(downloads["checkpoint1"].read_text())
    old["root_hash"] = hashlib.sha256(b"another history").hexdigest()

    # Signed by the commune's own key over a different root: history was rewritten.
    platform_key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(settings.LEDGER_SIGNING_KEY))
    rewritten = _resign(old, platform_key)
    assert publication.signature_valid(rewritten)
    code, out = verify(
        downloads["ledger"],
        downloads["checkpoint"],
        "--previous",
        write(tmp_path, "old.json", rewritten),
        "--public-key",
        downloads["key"],
    )
    assert code == 1
    assert out.startswith("BAD older checkpoint batch 1: not a prefix of this ledger")

    # Signed by someone else's key.
    forged = _resign(old, Ed25519PrivateKey.generate())
    code, out = verify(
        downloads["ledger"],
        downloads["checkpoint"],
        "--previous",
        write(tmp_path, "forged.json", forged),
        "--public-key",
        downloads["key"],
    )
    assert code == 1
    assert out.startswith("BAD signature on older checkpoint batch 1")
    code, out = verify(downloads["ledger"], downloads["checkpoint"], "--previous", tmp_path / "forged.json")
    assert code == 3  # no key given and none pinned (both runs above failed): nothing is checked
    assert out.startswith("NOT CHECKED: no key")


def test_the_verifier_checks_a_downloaded_inclusion_proof(downloads, tmp_path):
    code, out = verify("--inclusion", downloads["proof"], "--public-key", downloads["key"])
    assert code == 0, out
    assert out.startswith("OK: entry 2 (line 3) is included in the 7 entries signed by checkpoint batch 2")

    proof = json.loads(downloads["proof"].read_text())
    entry = json.loads(proof["entry"])
    assert entry["amount"] == "45.50"
    entry["amount"] = "4.50"
    proof["entry"] = merkle.canonical(entry).decode()

    code, out = verify("--inclusion", write(tmp_path, "altered-proof.json", proof), "--public-key", downloads["key"])

    assert code == 1
    assert "entry 2 (line 3) is NOT in the ledger signed by checkpoint batch 2" in out


# --- 7. Nothing private in public output -----------------------------------------------------------

MARKERS = {
    "head_name": "PRIVheadQ7X1",
    "id_number": "510723198704128619",
    "phone": "13912345678",
    "address": "PRIVaddrQ7X2 三组18号",
    "health_notes": "PRIVhealthQ7X3 尿毒症",
    "alias": "PRIValiasQ7X4",
    "story": "PRIVstoryQ7X5",
    "donor_name": "PRIVdonorQ7X6",
    "donor_phone": "13800998877",
    "donor_username": "privuserq7x7",
    "donor_email": "privmailq7x8@example.org",
}


@pytest.fixture
def private_activity(areas, secretary_a, county_reviewer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):  # the mail the services enqueue
        household = household_services.create_household(
            by=secretary_a,
            village=areas.village_a,
            head_name=MARKERS["head_name"],
            id_number=MARKERS["id_number"],
            phone=MARKERS["phone"],
            address=MARKERS["address"],
            health_notes=MARKERS["health_notes"],
            alias=MARKERS["alias"],
            alias_consent=False,
            story=MARKERS["story"],
            story_consent=False,
            size=4,
        )
        hidden = factories.make_donor(
            name=MARKERS["donor_name"],
            show_name=False,
            phone=MARKERS["donor_phone"],
            username=MARKERS["donor_username"],
            email=MARKERS["donor_email"],
        )
        named = factories.make_donor(name="Named Donor Zhang", show_name=True, username="named_donor")
        money = factories.published_need(
            village=areas.village_a,
            by=secretary_a,
            reviewer=county_reviewer,
            kind="money",
            household=household,
            title="医药费",
        )
        goods = factories.published_need(
            village=areas.village_a, by=secretary_a, reviewer=county_reviewer, household=household, title="电热毯"
        )
        receive_money(money, hidden, "400", reference="PRIV-1", by=county_reviewer)
        receive_money(money, named, "100", reference="PRIV-2", by=county_reviewer)
        p = factories.pledge(goods, hidden, 3)
        pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=3, note="arrived in good order")
        money_services.spend(
            by=county_reviewer,
            amount="250",
            need_id=money.pk,
            payee_household=household,
            **spend_kwargs(category=LedgerTransaction.Category.TRANSFER, purpose="medical bills", payee=""),
        )
        money_services.record_gift(
            by=county_reviewer,
            area=areas.yanting,
            amount="60",
            reference="PRIV-3",
            occurred_on=yesterday(),
            donor=hidden.donor_profile,
        )
        publication.publish_all()
    return household, money, goods


def _texts(response) -> list[str]:
    raw = body(response).decode("utf-8-sig")
    texts = [raw]
    if response["Content-Type"].startswith("application/json"):
        texts.append(json.dumps(json.loads(raw), ensure_ascii=False))  # JSON may escape non-ASCII
    elif response["Content-Type"].startswith("application/x-ndjson"):
        for line in raw.splitlines():  # each line decoded, as above
            if line.strip():
                texts.append(json.dumps(json.loads(line), ensure_ascii=False))
    return texts


def test_no_private_data_in_any_public_ledger_page_or_download(private_activity, areas, caplog):
    household, money, goods = private_activity
    client = english_client()
    urls = [
        "/ledger/",
        f"/ledger/?need={money.pk}",
        f"/ledger/?need={goods.pk}",
        f"/ledger/?county={areas.yanting.pk}&township={areas.huangxi.pk}&village={areas.village_a.pk}",
        "/ledger/?kind=spend",
        "/ledger/totals/",
        *[f"/ledger/totals/?area={area.pk}" for area in vars(areas).values()],
        "/ledger/ledger.jsonl",
        "/ledger/ledger.csv",
        "/ledger/360giving.csv",
        "/ledger/360giving.json",
        "/ledger/checkpoint.json",
        "/ledger/checkpoints.jsonl",
        "/ledger/checkpoints/1.json",
        "/ledger/public-key.txt",
        "/ledger/about/",
        f"/needs/{money.pk}/",
        f"/needs/{goods.pk}/",
        *[f"/ledger/entries/{i}/proof.json" for i in range(PublishedEntry.objects.count())],
    ]
    seen = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        seen[url] = "\n".join(_texts(response))
        for field, marker in MARKERS.items():
            assert marker not in seen[url], f"{field} on {url}"

    # The household appears only by its public id; the hidden donor as "anonymous donor".
    entries = published_lines()
    assert {e["household"] for e in entries if e["need"] in (money.pk, goods.pk)} == {household.public_id}
    spend = next(e for e in entries if e["kind"] == "spend")
    assert spend["payee"] == household.public_id
    # The gift staff recorded in the hidden donor's name names nobody: the
    # donor has not confirmed it (issue 14, finding 3).
    assert [e["donor"] for e in entries if e["donor"]] == [
        "anonymous donor",
        "Named Donor Zhang",
        "anonymous donor",
    ]
    assert household.public_id in seen[f"/ledger/?need={money.pk}"]
    assert "Anonymous donor" in seen["/ledger/"] and "Named Donor Zhang" in seen["/ledger/"]
    assert household.public_id in seen["/ledger/ledger.csv"] and "anonymous donor" in seen["/ledger/ledger.csv"]
    for url in ("/ledger/360giving.csv", "/ledger/360giving.json"):
        assert f"Household {household.public_id}" in seen[url] and "Anonymous donor" in seen[url], url


def test_no_private_data_of_the_household_in_mail_to_donors_or_in_log_lines(private_activity, caplog):
    household, _money, _goods = private_activity
    from django.core import mail

    to_donors = [m for m in mail.outbox if m.to[0] in (MARKERS["donor_email"], "named_donor@example.org")]
    assert to_donors  # the gifts arrived: the donors were told
    assert any(household.public_id in m.body for m in to_donors)  # the household by its public id only
    logs = "\n".join(r.getMessage() for when in ("setup", "call") for r in caplog.get_records(when))
    assert "notify_goods_received" in logs  # the log was captured
    for field in ("head_name", "id_number", "phone", "address", "health_notes", "alias", "story"):
        for message in to_donors:
            assert MARKERS[field] not in message.subject + message.body, field
        assert MARKERS[field] not in logs, field


# --- 10. The bureau's ledger pages -------------------------------------------------------------------

STAFF_URLS = [
    "/bureau/ledger/",
    "/bureau/ledger/gift/",
    "/bureau/ledger/allocate/",
    "/bureau/ledger/spend/",
    "/bureau/ledger/{txn}/reverse/",
    "/bureau/ledger/{txn}/voucher/",
    "/bureau/ledger/report/",
]


@pytest.fixture
def funded(areas, money_need_a, donor, county_reviewer):
    """Money in the need's fund (500) and the county pool (200)."""
    receive_money(money_need_a, donor, "500", reference="S-1", by=county_reviewer)
    money_services.record_gift(
        by=county_reviewer, area=areas.yanting, amount="200", reference="S-2", occurred_on=yesterday()
    )
    return money_need_a


def spend_post(need, /, **overrides) -> dict:
    data = {
        "source": "need",
        "need": need.pk,
        "area": "",
        "amount": "120.00",
        "purpose": "cement for the road",
        "category": "purchase",
        "payee": "Yanting building supplies",
        "payee_household": "",
        "occurred_on": timezone.localdate().isoformat(),
    }
    data.update(overrides)
    return data


def test_ledger_staff_pages_refuse_users_who_are_not_staff(funded, secretary_a, donor):
    txn = LedgerTransaction.objects.first()
    for user in (secretary_a, donor):
        client = english_client(user)
        for url in STAFF_URLS:
            assert client.get(url.format(txn=txn.pk)).status_code == 403, (user, url)
        assert client.post("/bureau/ledger/spend/", spend_post(funded)).status_code == 403
    for url in STAFF_URLS:
        response = english_client().get(url.format(txn=txn.pk))
        assert response.status_code == 302 and "/login" in response["Location"], url
    assert LedgerTransaction.objects.filter(kind=Kind.SPEND).count() == 0


def test_ledger_objects_outside_the_staff_area_answer_404_or_are_refused(
    areas, funded, county_reviewer, other_county_reviewer, secretary_a
):
    voucher = SimpleUploadedFile("r.pdf", b"%PDF-1.4 receipt", content_type="application/pdf")
    spent = money_services.spend(by=county_reviewer, amount="10", need_id=funded.pk, voucher=voucher, **spend_kwargs())
    household = household_services.create_household(by=secretary_a, village=areas.village_a, head_name="户主甲")
    count = LedgerTransaction.objects.count()
    other = english_client(other_county_reviewer)

    assert other.get(f"/bureau/ledger/{spent.pk}/reverse/").status_code == 404
    assert other.post(f"/bureau/ledger/{spent.pk}/reverse/", {"reason": "not mine"}).status_code == 404
    assert other.get(f"/bureau/ledger/{spent.pk}/voucher/").status_code == 404
    assert other.get("/bureau/ledger/999999/reverse/").status_code == 404

    # A need or a household of another county is "not in your area", exactly like one that does not exist.
    for need_id in (funded.pk, 999999):
        response = other.post("/bureau/ledger/allocate/", {"area": areas.zitong.pk, "need": need_id, "amount": "1"})
        assert response.context["form"].errors["need"] == ["No need with this number in your area."]
        response = other.post("/bureau/ledger/spend/", spend_post(funded, need=need_id))
        assert response.context["form"].errors["need"] == ["No need with this number in your area."]
    for public_id in (household.public_id, "H999999999"):
        response = other.post(
            "/bureau/ledger/spend/",
            spend_post(funded, source="pool", need="", area=areas.zitong.pk, payee="", payee_household=public_id),
        )
        assert response.context["form"].errors["payee_household"] == ["No household with this public id in your area."]
    # Another county's pool is not a choice at all.
    response = other.post(
        "/bureau/ledger/gift/",
        {"area": areas.yanting.pk, "amount": "5", "reference": "X-1", "occurred_on": yesterday().isoformat()},
    )
    assert "area" in response.context["form"].errors
    response = other.post("/bureau/ledger/spend/", spend_post(funded, source="pool", need="", area=areas.yanting.pk))
    assert "area" in response.context["form"].errors
    response = other.get(
        "/bureau/ledger/report/", {"area": areas.yanting.pk, "date_from": "2020-01-01", "date_to": "2030-01-01"}
    )
    assert response.status_code == 200 and response.context["report"] is None
    assert "area" in response.context["form"].errors
    assert other.get("/bureau/ledger/").content.decode().count(f"/bureau/ledger/{spent.pk}/") == 0

    assert LedgerTransaction.objects.count() == count

    # The staff of the area can.
    own = english_client(county_reviewer)
    assert own.get(f"/bureau/ledger/{spent.pk}/voucher/").status_code == 200
    response = own.post(f"/bureau/ledger/{spent.pk}/reverse/", {"reason": "entered by mistake"})
    assert response.status_code == 302
    assert LedgerTransaction.objects.filter(reverses=spent).exists()


def test_a_spend_with_a_voucher_stores_the_file_and_publishes_its_sha256(funded, county_reviewer):
    scan = b"%PDF-1.4\n" + bytes(range(256)) * 40 + b"\n%%EOF\n"
    digest = hashlib.sha256(scan).hexdigest()
    client = english_client(county_reviewer)

    response = client.post(
        "/bureau/ledger/spend/",
        {**spend_post(funded), "voucher": SimpleUploadedFile("receipt.pdf", scan, content_type="application/pdf")},
    )

    assert response.status_code == 302 and response["Location"] == "/bureau/ledger/"
    txn = LedgerTransaction.objects.get(kind=Kind.SPEND)
    assert txn.voucher_sha256 == digest and txn.amount == D("120.00")
    with default_storage.open(money_services.voucher_path(txn.voucher_sha256), "rb") as stored:
        assert stored.read() == scan
    assert body(client.get(f"/bureau/ledger/{txn.pk}/voucher/")) == scan
    assert fund_of(funded).balance == D("380.00")

    publication.publish_all()

    entry = json.loads(PublishedEntry.objects.get(transaction=txn).line)
    assert entry["voucher_sha256"] == digest
    public = english_client()
    assert digest in public.get("/ledger/", {"need": funded.pk}).content.decode()
    assert digest in body(public.get("/ledger/ledger.jsonl")).decode()
    assert digest[:12] in public.get(f"/needs/{funded.pk}/").content.decode()


@pytest.mark.parametrize(
    ("overrides", "field", "message"),
    [
        ({"amount": "-5"}, "amount", "Ensure this value is greater than or equal to 0.01."),
        ({"amount": "600"}, "amount", "Not enough money in need:{need}: 500.00 yuan available."),
        ({"purpose": ""}, "purpose", "This field is required."),
        ({"occurred_on": "2099-01-01"}, "occurred_on", "The date cannot be in the future."),
        (
            {"payee": "", "payee_household": "HNOSUCH999"},
            "payee_household",
            "No household with this public id in your area.",
        ),
        ({"payee": ""}, "payee", "Name the payee, or give a household&#x27;s public id."),
    ],
)
def test_bad_spend_input_is_shown_next_to_the_field_and_writes_nothing(
    funded, county_reviewer, overrides, field, message
):
    count = LedgerTransaction.objects.count()
    message = message.format(need=funded.pk)

    response = english_client(county_reviewer).post("/bureau/ledger/spend/", spend_post(funded, **overrides))

    assert response.status_code == 200
    assert list(response.context["form"].errors) == [field]
    page = response.content.decode()
    feedback = re.search(rf'<[^>]+id="error_1_id_{field}"[^>]*>(.*?)</', page, re.S)
    assert feedback, f"no error next to {field}"
    assert message in page[page.index(f'id="id_{field}') :]  # after the field itself
    assert message in page[feedback.start() : feedback.end() + len(message) + 20]
    assert LedgerTransaction.objects.count() == count
    assert fund_of(funded).balance == D("500.00")


def test_the_fund_report_and_its_spreadsheet(areas, funded, need_a, donor, secretary_a, county_reviewer):
    p = factories.pledge(need_a, donor, 2)
    pledges.confirm_receipt(pledge_id=p.pk, by=secretary_a, quantity=2)
    money_services.spend(by=county_reviewer, amount="120.25", need_id=funded.pk, **spend_kwargs())
    money_services.spend(
        by=county_reviewer,
        amount="20",
        pool_area=areas.yanting,
        **spend_kwargs(category=LedgerTransaction.Category.FEES, payee="Bank"),
    )
    today = timezone.localdate()
    query = {
        "area": areas.yanting.pk,
        "date_from": (today - timedelta(days=30)).isoformat(),
        "date_to": today.isoformat(),
    }
    client = english_client(county_reviewer)

    response = client.get("/bureau/ledger/report/", query)

    assert response.status_code == 200
    report = response.context["report"]
    assert report["total"]["money_in"] == D("700.00")
    assert report["total"]["goods_in"] == D("160.00")
    assert report["total"]["money_out"] == D("140.25")
    page = response.content.decode()
    assert "¥700.00" in page and "¥140.25" in page

    xlsx = client.get("/bureau/ledger/report/", {**query, "format": "xlsx"})

    assert xlsx["Content-Type"] == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    book = load_workbook(BytesIO(xlsx.content))
    summary = book["Summary"]
    assert summary["A3"].value == "Area" and summary["B3"].value == "Money in"
    assert summary["A4"].value == areas.yanting.name
    assert D(str(summary["B4"].value)) == D("700.00")
    assert D(str(summary["C4"].value)) == D("160.00")
    assert D(str(summary["D4"].value)) == D("140.25")
    categories = {
        row[0]: D(str(row[1])) for row in book["Money out by category"].iter_rows(min_row=2, values_only=True)
    }
    assert categories == {"Purchase of goods": D("120.25"), "Bank fees": D("20.00")}
    funds = {row[0]: D(str(row[3])) for row in book["Funds"].iter_rows(min_row=2, values_only=True)}
    assert funds == {f"need:{funded.pk}": D("379.75"), f"pool:{areas.yanting.code}": D("180.00")}


def test_the_need_page_sums_its_published_entries(areas, money_need_a, donor, county_reviewer):
    receive_money(money_need_a, donor, "1000", reference="NP-1", by=county_reviewer)
    money_services.spend(by=county_reviewer, amount="600", need_id=money_need_a.pk, **spend_kwargs())
    wrong = money_services.spend(by=county_reviewer, amount="50", need_id=money_need_a.pk, **spend_kwargs())
    money_services.reverse_transaction(by=county_reviewer, transaction_id=wrong.pk, reason="typo")
    needs.close_need(need_id=money_need_a.pk, by=county_reviewer)
    publication.publish_all()

    page = english_client().get(f"/needs/{money_need_a.pk}/").content.decode()

    ledger = page[page.index('id="need-ledger"') :]
    for label, figure in (
        ("Money raised", "¥1,000.00"),
        ("Money spent", "¥600.00"),
        ("Returned to the pool", "¥400.00"),
        ("Remaining", "¥0.00"),
    ):
        assert re.search(rf"{label}</dt><dd[^>]*>{re.escape(figure)}</dd>", ledger), label


def test_the_need_page_counts_a_reversed_return_as_money_back_in_the_fund(areas, money_need_a, donor, county_reviewer):
    receive_money(money_need_a, donor, "1000", reference="NP-2", by=county_reviewer)
    money_services.spend(by=county_reviewer, amount="600", need_id=money_need_a.pk, **spend_kwargs())
    needs.close_need(need_id=money_need_a.pk, by=county_reviewer)
    returned = LedgerTransaction.objects.get(kind=Kind.RETURN)
    money_services.reverse_transaction(by=county_reviewer, transaction_id=returned.pk, reason="closed too early")
    publication.publish_all()
    assert fund_of(money_need_a).balance == D("400.00")

    page = english_client().get(f"/needs/{money_need_a.pk}/").content.decode()

    ledger = page[page.index('id="need-ledger"') :]
    assert re.search(r"Remaining</dt><dd[^>]*>¥400\.00</dd>", ledger)
