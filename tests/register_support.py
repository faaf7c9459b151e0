"""Helpers for the register tests: valid ID numbers, import files, clients."""

import csv
import io

from django.test import Client
from django.urls import reverse
from openpyxl import Workbook

from households.crypto import id_check_digit
from households.models import ImportJob

HEADERS_ZH = [
    "村代码",
    "户主姓名",
    "身份证号",
    "家庭人口",
    "联系电话",
    "住址",
    "状态",
    "脱贫年度",
    "致贫原因",
    "住房",
    "健康状况",
]
HEADERS_EN = [
    "Village code",
    "Head of household",
    "ID number",
    "Household size",
    "Phone",
    "Address",
    "Status",
    "Lifted out in",
    "Poverty causes",
    "Housing",
    "Health notes",
]
MEMBER_HEADERS_ZH = ["户主身份证号", "姓名", "与户主关系", "出生年份", "劳动能力", "健康状况"]


def valid_id(n: int, region: str = "510723", born: str = "19700101") -> str:
    """A resident ID number with a correct GB 11643 check digit."""
    first17 = f"{region}{born}{n % 1000:03d}"
    return first17 + id_check_digit(first17)


def household_row(village_code: str, n: int, **overrides) -> list:
    row = {
        "village_code": village_code,
        "head_name": f"王建{n}",
        "id_number": valid_id(n),
        "size": 3,
        "phone": f"1380000{n:04d}",
        "address": f"三组{n}号",
        "status": "贫困户",
        "lifted_out_year": "",
        "poverty_causes": "因病、缺技术",
        "housing": "安全",
        "health_notes": "",
    }
    row.update(overrides)
    return list(row.values())


def xlsx_bytes(rows: list[list], *, headers=HEADERS_ZH, members: list[list] | None = None, id_as_number=False) -> bytes:
    book = Workbook()
    sheet = book.active
    sheet.title = "户信息"
    sheet.append(headers)
    for row in rows:
        sheet.append(row)
    if id_as_number:
        for cells in sheet.iter_rows(min_row=2):
            cells[2].value = float(cells[2].value)
    if members is not None:
        member_sheet = book.create_sheet("家庭成员")
        member_sheet.append(MEMBER_HEADERS_ZH)
        for row in members:
            member_sheet.append(row)
    stream = io.BytesIO()
    book.save(stream)
    return stream.getvalue()


def csv_bytes(rows: list[list], *, headers=HEADERS_ZH, encoding="utf-8-sig") -> bytes:
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(headers)
    writer.writerows(rows)
    return text.getvalue().encode(encoding)


def english(user=None) -> Client:
    client = Client(HTTP_ACCEPT_LANGUAGE="en")
    if user is not None:
        client.force_login(user)
    return client


def upload(client, area, name: str, data: bytes, capture) -> ImportJob:
    """Upload a file for ``area`` and run its import (the task runs eagerly
    after commit); returns the finished job."""
    from django.core.files.uploadedfile import SimpleUploadedFile

    with capture(execute=True):
        response = client.post(
            reverse("households:import-create"), {"area": area.code, "file": SimpleUploadedFile(name, data)}
        )
    assert response.status_code == 302, response.context["form"].errors if response.context else response
    return ImportJob.objects.get(pk=int(response["Location"].rstrip("/").split("/")[-1]))


def messages_of(job: ImportJob) -> list[str]:
    return [f"{e['row']}:{e['column']}:{e['message']}" for e in job.errors]
