"""manage.py load_demo: load the Mianyang demo data. Safe to run again: what
exists already is left alone and nothing is counted twice."""

import time

from django.core.management.base import BaseCommand
from django.db import transaction

from donations import downloads
from portal.demo.loader import DEMO_PASSWORD, DemoLoader, build_plan, summary

LOGINS = (
    ("admin", "superuser (Django admin)"),
    ("secretary", "first secretary of 金鹿村 Jinlu (Huang Guoji's village)"),
    ("secretary_langan", "first secretary of 兰干村 Langan"),
    ("secretary_yangwugou", "first secretary of 杨武沟村 Yangwugou"),
    ("reviewer", "bureau staff of 盐亭县 Yanting county"),
    ("city_staff", "bureau staff of 绵阳市 Mianyang city"),
    ("coop_manager", "manager of 梓潼县兰干养殖专业合作社, the Langan breeding cooperative"),
    ("donor", "donor 陈晓梅 (person)"),
    ("staff_zitong / staff_anzhou / staff_santai / staff_yanting", "bureau staff of each county"),
    ("secretary_<village pinyin>", "first secretary of each generated village"),
    ("donor_lijianguo, donor_fengsui, donor_yangguang, …", "generated donors"),
)


class Command(BaseCommand):
    help = (
        "Load the Mianyang demo: the places and people named in the 2017 account, plus generated "
        "villages, households, needs and pledges (fixed random seed). Running it again changes nothing."
    )

    def handle(self, *args, **options):
        started = time.monotonic()
        plan = build_plan()
        with transaction.atomic():
            created = DemoLoader(plan=plan).run()
        downloads.write_files()  # the ledger's downloads exist before the web server starts
        elapsed = time.monotonic() - started
        if options["verbosity"] < 1:
            return

        if created.any():
            made = ", ".join(f"{n} {what}" for what, n in vars(created).items() if n)
            self.stdout.write(self.style.SUCCESS(f"Demo loaded in {elapsed:.1f} s: created {made}."))
        else:
            self.stdout.write(self.style.SUCCESS(f"Demo already loaded; nothing changed ({elapsed:.1f} s)."))

        counts = summary(plan.city_code)
        self.stdout.write("Areas: " + ", ".join(f"{label} {n}" for label, n in counts["areas"].items()))
        self.stdout.write(f"Households: {counts['households']}")
        self.stdout.write("Needs: " + _by_status(counts["needs"]))
        self.stdout.write("Pledges: " + _by_status(counts["pledges"]))
        self.stdout.write(f"Audit entries: {counts['audit_entries']}")
        self.stdout.write(f"\nDemo logins (password {DEMO_PASSWORD!r}, set only when load_demo created the user):")
        for username, what in LOGINS:
            self.stdout.write(f"  {username:<58} {what}")


def _by_status(counts: dict) -> str:
    total = sum(counts.values())
    return f"{total} (" + ", ".join(f"{status} {n}" for status, n in sorted(counts.items())) + ")"
