"""Bulk import of households: every row checked first, a report per row,
nothing imported from a file with one bad row, and importing the same file
twice changes nothing."""

import io
import logging

import pytest
from django.conf import settings
from django.db import connections
from django.urls import reverse
from openpyxl import load_workbook

from households import importing, services
from households.crypto import id_hash
from households.models import Household, HouseholdChange, HouseholdMember, ImportJob
from sun_commune.models import AuditEntry

from . import factories
from .register_support import (
    HEADERS_EN,
    csv_bytes,
    english,
    household_row,
    messages_of,
    upload,
    valid_id,
    xlsx_bytes,
)

pytestmark = pytest.mark.django_db

A = "510723101201"  # village A (Jinlu), in Yanting
B = "510723102201"  # village B (Yangwugou), in Yanting
C = "510725101201"  # village C (Langan), in Zitong


@pytest.fixture
def staff(county_reviewer):
    return english(county_reviewer)


def test_a_clean_file_is_imported_with_members_audit_and_history(
    areas, county_reviewer, staff, django_capture_on_commit_callbacks
):
    rows = [
        household_row(A, 1),
        household_row(B, 2, status="已脱贫", lifted_out_year=2020),
        household_row(A, 3, head_name="欧阳秀英"),
    ]
    members = [[valid_id(1), "李秀兰", "配偶", 1972, "弱劳动力", "高血压"], [valid_id(1), "王小明", "子", 2001, "", ""]]

    job = upload(
        staff, areas.yanting, "金鹿村.xlsx", xlsx_bytes(rows, members=members), django_capture_on_commit_callbacks
    )

    assert job.status == ImportJob.Status.DONE, messages_of(job)
    assert (job.created_count, job.member_count, job.skipped_count, job.error_count) == (3, 2, 0, 0)
    assert bytes(job.content) == b""  # the uploaded file (ID numbers) is not kept
    first = Household.objects.get(id_hash=id_hash(valid_id(1)))
    assert first.village == areas.village_a and first.head_name == "王建1" and first.phone == "13800000001"
    assert first.poverty_causes == ["illness", "skills"] and first.housing == "safe" and first.status == "poor"
    assert sorted(first.members.values_list("name", "ability")) == [("李秀兰", "partial"), ("王小明", "full")]
    assert "秀兰" in first.name_terms and "王建" in first.name_terms  # members are found by name too
    lifted = Household.objects.get(id_hash=id_hash(valid_id(2)))
    assert (lifted.status, lifted.lifted_out_year, lifted.village) == ("lifted", 2020, areas.village_b)
    for household in Household.objects.all():
        entry = AuditEntry.objects.get(action="household.created", object_id=str(household.pk))
        assert entry.actor == county_reviewer and entry.changes["import"] == job.pk
        assert entry.changes["head_name"] == "(private)"
        assert HouseholdChange.objects.get(household=household).kind == "created"
    assert AuditEntry.objects.filter(action="household_import.finished", object_id=str(job.pk)).exists()

    page = staff.get(reverse("households:import-detail", args=[job.pk])).content.decode()
    assert "Households imported" in page and "<strong>3</strong>" in page


def test_each_kind_of_bad_row_is_named_and_nothing_is_imported(
    areas, secretary_c_household, staff, county_reviewer, client_of, django_capture_on_commit_callbacks
):
    rows = [
        household_row(A, 1),  # row 2: fine
        household_row(A, 2, head_name=""),  # 3: a required cell is empty
        household_row(A, 3, id_number=valid_id(3)[:-1] + ("0" if valid_id(3)[-1] != "0" else "1")),  # 4: check digit
        household_row(A, 4, id_number="51072319700101"),  # 5: too short
        household_row("510723109999", 5),  # 6: no such village
        household_row(C, 6),  # 7: a village outside the import's area
        household_row(B, 7, id_number=valid_id(1)),  # 8: the same ID number as row 2
        household_row(A, 8, id_number=secretary_c_household.id_number),  # 9: registered in another county
        household_row(A, 9, status="小康"),  # 10: not a status
        household_row(A, 10, poverty_causes="因病、懒惰"),  # 11: not a cause
        household_row(A, 11, status="已脱贫"),  # 12: lifted out, but in which year?
        household_row(A, 12, size="三"),  # 13: not a number
        household_row("510723101", 13),  # 14: a township's code, not a village's
        household_row(A, 14, phone="call me"),  # 15: not a phone number
    ]
    members = [[valid_id(99), "张三", "子", 1990, "", ""], [valid_id(1), "", "配偶", 1970, "", ""]]
    before = Household.objects.count()

    job = upload(
        staff, areas.yanting, "bad.xlsx", xlsx_bytes(rows, members=members), django_capture_on_commit_callbacks
    )

    assert job.status == ImportJob.Status.INVALID
    assert Household.objects.count() == before and not HouseholdMember.objects.exists()
    report = messages_of(job)
    expected = [
        ("3:户主姓名:", "Required: this cell is empty."),
        ("4:身份证号:", "The check digit of this ID number is wrong"),
        ("5:身份证号:", "An ID number has 18 characters"),
        ("6:村代码:", "No village has the code 510723109999."),
        ("7:村代码:", "Village 510725101201 is not in Yanting"),
        ("8:身份证号:", "The same ID number as row 2 of this file."),
        ("9:身份证号:", "already registered in another area"),
        ("10:状态:", "“小康” is not one of"),
        ("11:致贫原因:", "“懒惰” is not one of"),
        ("12:脱贫年度:", "Enter the year the household was lifted out of poverty."),
        ("13:家庭人口:", "Enter a whole number."),
        ("14:村代码:", "510723101 is the code of Huangxi, not of a village."),
        ("15:联系电话:", "Enter a phone number"),
        ("2:户主身份证号:", "No household row of this file has this ID number."),
        ("3:姓名:", "Required: this cell is empty."),
    ]
    for prefix, message in expected:
        assert any(line.startswith(prefix) and message in line for line in report), (prefix, message, report)
    assert job.error_count == len(expected)
    assert not any(line.startswith("2:户主姓名") or line.startswith("2:身份证号") for line in report)
    # The report names rows and problems; it never repeats a private value.
    assert secretary_c_household.id_number not in str(job.errors)

    page = staff.get(reverse("households:import-detail", args=[job.pk])).content.decode()
    assert "nothing was imported" in page and "Problems, row by row" in page
    page = client_of(county_reviewer).get(reverse("households:import-detail", args=[job.pk])).content.decode()
    assert "未导入任何数据" in page and "逐行问题" in page  # and in Chinese, the default


@pytest.fixture
def secretary_c_household(areas):
    """A household of village C (Zitong), outside the Yanting reviewer's area."""
    secretary_c = factories.make_secretary(areas.village_c, username="secretary_c")
    return services.create_household(by=secretary_c, village=areas.village_c, head_name="赵四", id_number=valid_id(500))


def test_importing_the_same_file_again_changes_nothing(areas, staff, django_capture_on_commit_callbacks):
    data = xlsx_bytes(
        [household_row(A, 1), household_row(B, 2)], members=[[valid_id(1), "李秀兰", "配偶", 1972, "", ""]]
    )
    upload(staff, areas.yanting, "a.xlsx", data, django_capture_on_commit_callbacks)
    snapshot = (
        list(Household.objects.order_by("pk").values_list("pk", "updated_at")),
        HouseholdMember.objects.count(),
        HouseholdChange.objects.count(),
        AuditEntry.objects.filter(action__startswith="household.").count(),
    )

    again = upload(staff, areas.yanting, "a.xlsx", data, django_capture_on_commit_callbacks)

    assert again.status == ImportJob.Status.DONE
    assert (again.created_count, again.skipped_count, again.error_count) == (0, 2, 0)
    assert [n["row"] for n in again.notes] == [2, 3] and all("Already registered" in n["message"] for n in again.notes)
    assert snapshot == (
        list(Household.objects.order_by("pk").values_list("pk", "updated_at")),
        HouseholdMember.objects.count(),
        HouseholdChange.objects.count(),
        AuditEntry.objects.filter(action__startswith="household.").count(),
    )


def test_a_reimport_with_changed_data_is_a_conflict_and_imports_nothing(
    areas, staff, django_capture_on_commit_callbacks
):
    upload(
        staff,
        areas.yanting,
        "a.xlsx",
        xlsx_bytes([household_row(A, 1), household_row(A, 2)]),
        django_capture_on_commit_callbacks,
    )
    changed = xlsx_bytes([household_row(A, 1, phone="13900009999", size=4), household_row(A, 2), household_row(A, 3)])

    job = upload(staff, areas.yanting, "b.xlsx", changed, django_capture_on_commit_callbacks)

    assert job.status == ImportJob.Status.INVALID
    (line,) = messages_of(job)
    assert (
        line.startswith("2:身份证号:")
        and "different data (家庭人口, 联系电话)" in line
        and "never changes the register" in line
    )
    assert not Household.objects.filter(id_hash=id_hash(valid_id(3))).exists()
    assert Household.objects.get(id_hash=id_hash(valid_id(1))).phone == "13800000001"


def test_a_household_already_in_another_village_of_the_area_is_named(areas, staff, django_capture_on_commit_callbacks):
    upload(staff, areas.yanting, "a.xlsx", xlsx_bytes([household_row(A, 1)]), django_capture_on_commit_callbacks)

    job = upload(staff, areas.yanting, "b.xlsx", xlsx_bytes([household_row(B, 1)]), django_capture_on_commit_callbacks)

    household = Household.objects.get(id_hash=id_hash(valid_id(1)))
    assert messages_of(job) == [
        f"2:身份证号:A household with this ID number is already registered in Jinlu ({household.public_id})."
    ]


def test_an_id_number_excel_stored_as_a_number_is_refused_with_advice(areas, staff, django_capture_on_commit_callbacks):
    job = upload(
        staff,
        areas.yanting,
        "a.xlsx",
        xlsx_bytes([household_row(A, 1)], id_as_number=True),
        django_capture_on_commit_callbacks,
    )

    assert job.status == ImportJob.Status.INVALID
    assert "format the column as text" in messages_of(job)[0]


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-8", "gb18030"])
def test_csv_files_in_utf8_with_or_without_bom_and_in_gb18030(
    encoding, areas, staff, django_capture_on_commit_callbacks
):
    data = csv_bytes([household_row(A, 1), household_row(A, 2, head_name="欧阳秀英")], encoding=encoding)

    job = upload(staff, areas.yanting, "households.csv", data, django_capture_on_commit_callbacks)

    assert job.status == ImportJob.Status.DONE, messages_of(job)
    assert Household.objects.get(id_hash=id_hash(valid_id(2))).head_name == "欧阳秀英"


def test_english_headers_in_any_order_are_read(areas, staff, django_capture_on_commit_callbacks):
    order = [2, 0, 1, 3, 4, 5, 6, 7, 8, 9, 10]
    rows = [
        [
            household_row(
                A, 1, status="Lifted out of poverty", lifted_out_year=2019, poverty_causes="illness, Lack of water"
            )[i]
            for i in order
        ]
    ]

    job = upload(
        staff,
        areas.yanting,
        "en.xlsx",
        xlsx_bytes(rows, headers=[HEADERS_EN[i] for i in order]),
        django_capture_on_commit_callbacks,
    )

    assert job.status == ImportJob.Status.DONE, messages_of(job)
    household = Household.objects.get()
    assert (household.status, household.lifted_out_year, household.poverty_causes) == (
        "lifted",
        2019,
        ["illness", "water"],
    )


def test_a_missing_column_and_an_unreadable_file_are_reported(areas, staff, django_capture_on_commit_callbacks):
    headers = ["村代码", "户主姓名", "家庭人口"]
    job = upload(
        staff,
        areas.yanting,
        "a.xlsx",
        xlsx_bytes([[A, "王五", 3]], headers=headers),
        django_capture_on_commit_callbacks,
    )
    assert messages_of(job) == ["1:ID number:This column is missing. Download the template to see the columns."]

    job = upload(staff, areas.yanting, "b.xlsx", b"not a workbook", django_capture_on_commit_callbacks)
    assert job.status == ImportJob.Status.INVALID and "cannot be read as an .xlsx" in job.errors[0]["message"]

    response = staff.post(reverse("households:import-create"), {"area": A, "file": io.BytesIO(b"x")})
    assert response.status_code == 200 and "Upload an .xlsx or a .csv file." in response.content.decode()


def test_the_import_area_must_be_within_the_staff_area(areas, staff):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = staff.post(
        reverse("households:import-create"), {"area": C, "file": SimpleUploadedFile("a.csv", csv_bytes([]))}
    )
    assert response.status_code == 200
    assert "No area with this code in your area." in response.content.decode()
    assert not ImportJob.objects.exists()


def test_the_template_has_both_sheets_and_an_empty_one_is_reported(areas, staff, django_capture_on_commit_callbacks):
    response = staff.get(reverse("households:import-template"))
    book = load_workbook(io.BytesIO(response.content))
    households, members = book.worksheets[0], book.worksheets[1]
    assert [c.value for c in households[1]][:3] == ["Village code *", "Head of household *", "ID number *"]
    assert [c.value for c in members[1]][0] == "Head's ID number *"
    assert households["C2"].number_format == "@"  # typed as text: Excel keeps an ID number's 18 digits

    job = upload(staff, areas.yanting, "template.xlsx", response.content, django_capture_on_commit_callbacks)
    assert messages_of(job) == [f"{1}::The file holds no households."]


def test_an_export_reads_back_in_as_already_registered_and_is_audited(
    areas, county_reviewer, staff, django_capture_on_commit_callbacks
):
    rows = [household_row(A, 1), household_row(B, 2, status="监测户", housing="危房")]
    upload(
        staff,
        areas.yanting,
        "a.xlsx",
        xlsx_bytes(rows, members=[[valid_id(2), "李秀兰", "配偶", 1972, "", "腿伤"]]),
        django_capture_on_commit_callbacks,
    )

    response = staff.get(reverse("households:household-export"), {"status": "monitored"})

    assert response.status_code == 200
    data = b"".join(response.streaming_content)
    sheet = load_workbook(io.BytesIO(data)).worksheets[0]
    assert sheet.max_row == 2 and sheet["D2"].value == "王建2" and sheet["E2"].value == valid_id(2)
    entry = AuditEntry.objects.get(action="household.exported")
    assert entry.actor == county_reviewer
    assert entry.changes == {
        "area": None,
        "status": "monitored",
        "cause": None,
        "name_search": False,
        "id_search": False,
        "rows": 1,
    }

    again = upload(staff, areas.yanting, "export.xlsx", data, django_capture_on_commit_callbacks)
    assert again.status == ImportJob.Status.DONE and (again.created_count, again.skipped_count) == (0, 1), messages_of(
        again
    )


def test_the_status_endpoint_reports_progress(areas, county_reviewer, staff, django_capture_on_commit_callbacks):
    job = upload(staff, areas.yanting, "a.xlsx", xlsx_bytes([household_row(A, 1)]), django_capture_on_commit_callbacks)

    status = staff.get(reverse("households:import-status", args=[job.pk])).json()

    assert status["status"] == "done" and status["percent"] == 100 and status["finished"] and status["created"] == 1
    queued = ImportJob.objects.create(area=areas.yanting, filename="x.csv", created_by=county_reviewer)
    page = staff.get(reverse("households:import-detail", args=[queued.pk])).content.decode()
    # The page polls until the job is finished, from a file (no inline script under the CSP).
    assert "import-status" in page and "js/import_progress.js" in page
    assert "setTimeout(poll" in (settings.BASE_DIR / "static" / "js" / "import_progress.js").read_text()


def test_running_a_job_twice_imports_once(areas, county_reviewer, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_import(
            by=county_reviewer,
            area=areas.yanting,
            filename="a.xlsx",
            data=xlsx_bytes([household_row(A, 1)]),
            language="en",
        )
    importing.run(job.pk)

    job.refresh_from_db()
    assert job.status == "done" and job.created_count == 1 and Household.objects.count() == 1


def test_a_failed_import_imports_nothing_and_logs_no_private_field(
    areas, county_reviewer, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)

    def broken(job, checker, progress):
        Household.objects.bulk_create([Household(village=areas.village_a, head_name="王建1", size=1)])
        raise RuntimeError("王建1 13800000001")

    monkeypatch.setattr(importing, "_write", broken)
    with django_capture_on_commit_callbacks(execute=True):
        job = services.start_import(
            by=county_reviewer,
            area=areas.yanting,
            filename="a.xlsx",
            data=xlsx_bytes([household_row(A, 1)]),
            language="en",
        )

    job.refresh_from_db()
    assert job.status == "failed" and "imported nothing" in job.message
    assert not Household.objects.exists()
    log = "\n".join(r.getMessage() for r in caplog.records)
    assert "failed: RuntimeError" in log and "王建1" not in log and "13800000001" not in log


@pytest.mark.django_db(transaction=True)
def test_progress_is_visible_while_the_import_transaction_is_open(areas, county_reviewer, monkeypatch):
    """The page polls a job row that a second connection updates; what it
    shows must move while the households themselves are not yet committed."""
    seen = {}
    original = importing._write

    def spying(job, checker, progress):
        other = connections.create_connection("default")
        try:
            with other.cursor() as cursor:
                cursor.execute("SELECT status, phase, total_rows FROM households_importjob WHERE id = %s", [job.pk])
                seen["job"] = cursor.fetchone()
                result = original(job, checker, progress)
                cursor.execute("SELECT processed_rows FROM households_importjob WHERE id = %s", [job.pk])
                seen["processed"] = cursor.fetchone()[0]
                cursor.execute("SELECT count(*) FROM households_household")
                seen["households"] = cursor.fetchone()[0]
        finally:
            other.close()
        return result

    monkeypatch.setattr(importing, "_write", spying)
    monkeypatch.setattr(importing, "BATCH", 2)
    monkeypatch.setattr(importing, "PROGRESS_SECONDS", 0)
    rows = [household_row(A, n) for n in range(1, 6)]
    job = services.start_import(
        by=county_reviewer, area=areas.yanting, filename="a.xlsx", data=xlsx_bytes(rows), language="en"
    )

    job.refresh_from_db()
    assert job.status == "done" and job.created_count == 5
    assert seen["job"] == ("running", "importing", 5)
    assert seen["processed"] >= 2  # at least the first batch's progress was written meanwhile
    assert seen["households"] == 0  # …while the import's own transaction was still open
