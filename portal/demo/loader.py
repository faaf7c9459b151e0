"""Load the Mianyang demo: the places and people named in the 2017 account of
Sun Commune, and a reproducible set of generated villages, households, needs
and pledges around them.

Two steps:

1. :func:`build_plan` turns the data files and ``random.Random(seed)`` into a
   plan. It never looks at the database, so every run produces exactly the
   same plan (only deadlines move with today's date).
2. :class:`DemoLoader` applies the plan through the services, so that every
   change leaves its audit entry. Each household, need and user has a
   deterministic key (village + head of household; village + household +
   title; username); whatever already exists is skipped, together with the
   pledges that belong to it. Running the loader again changes nothing.

The caller runs :meth:`DemoLoader.run` inside one transaction, so a failure
leaves nothing half-loaded.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta
from decimal import Decimal
from pathlib import Path

from django.contrib.auth.hashers import make_password
from django.db.models import Count
from django.utils import timezone

from cooperatives import demo as cooperatives_demo
from donations.models import Donor, Need, Pledge
from donations.services import donors as donor_services
from donations.services import needs as need_services
from donations.services import pledges as pledge_services
from households import services as household_services
from households.crypto import id_check_digit
from households.models import Area, Household
from sun_commune.ids import is_valid as is_valid_id_number  # noqa: F401 - used by tests
from sun_commune.models import AuditEntry, RoleGrant, User
from sun_commune.services import grant_role

DATA_DIR = Path(__file__).resolve().parent
DEMO_PASSWORD = "sun-commune-demo"
REFERENCE_PREFIX = "DEMO-"


def read_data(name: str) -> dict:
    with open(DATA_DIR / name, encoding="utf-8") as f:
        return json.load(f)


def fake_id_number(county_code: str, birth: date, sequence: int, male: bool) -> str:
    """An 18-character ID number of the right shape: county, birth date, a
    sequence whose last digit is odd for men and even for women, check digit."""
    sequence = sequence - sequence % 2 + (1 if male else 0)
    first17 = f"{county_code}{birth:%Y%m%d}{sequence:03d}"
    return first17 + id_check_digit(first17)


def pinyin_join(*syllables: str) -> str:
    """Join pinyin syllables: ("xi", "an") → "Xi'an", with an apostrophe before a vowel."""
    out = syllables[0]
    for s in syllables[1:]:
        out += ("'" if s[0] in "aoe" else "") + s
    return out.capitalize()


def plain_number(value: Decimal) -> str:
    """159.00 → "159", 3.50 → "3.5" (for descriptions)."""
    text = f"{value:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


# --- The plan ----------------------------------------------------------------


@dataclass
class AreaPlan:
    code: str
    name: str
    name_en: str
    level: int
    parent: str | None
    is_poor_village: bool = False


@dataclass
class HouseholdPlan:
    key: str  # village code + "/" + head name
    village: str  # village code
    created_by: str  # username
    fields: dict


@dataclass
class PledgePlan:
    donor: str  # username
    size: int | Decimal
    message: str = ""
    sent: bool = False
    arrived: int | Decimal | None = None
    note: str = ""
    reference: str = ""
    thanks: str = ""


@dataclass
class NeedPlan:
    village: str  # village code
    household: str | None  # household key
    created_by: str
    reviewer: str | None
    status: str  # the status the plan ends in before pledges: draft, submitted, rejected, published
    fields: dict  # need fields, with deadline_days instead of deadline
    rejection_reason: str = ""
    pledges: list[PledgePlan] = field(default_factory=list)


@dataclass
class UserPlan:
    username: str
    email: str
    is_superuser: bool = False
    is_staff: bool = False
    language: str = ""
    role: str = ""
    area: str = ""  # area code
    donor: dict | None = None


@dataclass
class Plan:
    areas: list[AreaPlan] = field(default_factory=list)
    users: list[UserPlan] = field(default_factory=list)
    households: list[HouseholdPlan] = field(default_factory=list)
    needs: list[NeedPlan] = field(default_factory=list)
    city_code: str = ""


def _weighted(rng: random.Random, pairs):
    values = [p[0] for p in pairs]
    weights = [p[1] for p in pairs]
    return rng.choices(values, weights=weights, k=1)[0]


def _entry_weighted(rng: random.Random, entries: list[dict]) -> dict:
    return rng.choices(entries, weights=[e.get("weight", 1) for e in entries], k=1)[0]


def _range(rng: random.Random, spec) -> int:
    low, high, step = spec
    return rng.randrange(low, high + 1, step)


def build_plan(named: dict | None = None, gen: dict | None = None) -> Plan:
    """Everything the demo holds, from the data files and the fixed seed alone."""
    named = named or read_data("mianyang.json")
    gen = gen or read_data("generation.json")
    rng = random.Random(gen["seed"])
    plan = Plan(city_code=named["city"]["code"])
    city = named["city"]
    plan.areas.append(AreaPlan(city["code"], city["name"], city["name_en"], Area.Level.CITY, None))

    # Named places.
    villages: list[AreaPlan] = []
    county_of: dict[str, dict] = {}
    town_of: dict[str, AreaPlan] = {}
    named_towns: dict[str, list[AreaPlan]] = {}
    for county in named["counties"]:
        plan.areas.append(
            AreaPlan(
                county["code"],
                county["name"],
                county["name_en"],
                Area.Level.COUNTY,
                city["code"],
            )
        )
        named_towns[county["code"]] = []
        for town in county["towns"]:
            t = AreaPlan(town["code"], town["name"], town["name_en"], Area.Level.TOWNSHIP, county["code"])
            plan.areas.append(t)
            named_towns[county["code"]].append(t)
            for village in town["villages"]:
                v = AreaPlan(
                    village["code"],
                    village["name"],
                    village["name_en"],
                    Area.Level.VILLAGE,
                    town["code"],
                    is_poor_village=village.get("is_poor_village", True),
                )
                plan.areas.append(v)
                villages.append(v)
                county_of[v.code] = county
                town_of[v.code] = t

    # Named users; each named village's secretary posts its needs.
    secretary_of: dict[str, str] = {}
    staff_of: dict[str, str] = {}
    for u in named["users"]:
        plan.users.append(
            UserPlan(
                username=u["username"],
                email=u["email"],
                is_superuser=u.get("is_superuser", False),
                is_staff=u.get("is_staff", False),
                language=u.get("language", ""),
                role=u.get("role", ""),
                area=u.get("area", ""),
                donor=u.get("donor"),
            )
        )
        if u.get("role") == RoleGrant.Role.SECRETARY:
            secretary_of.setdefault(u["area"], u["username"])
    for county in named["counties"]:
        username = f"staff_{county['slug']}"
        staff_of[county["code"]] = username
        plan.users.append(UserPlan(username, f"{username}@example.com", role=RoleGrant.Role.STAFF, area=county["code"]))

    # Generated towns and villages.
    used_names = {v.name for v in villages}
    used_pinyin = {v.name_en.lower() for v in villages}

    def new_village(town: AreaPlan, county: dict, index: int) -> AreaPlan:
        while True:
            first = rng.choice(gen["village_first"])
            second = rng.choice(gen["village_second"])
            name = f"{first[0]}{second[0]}村"
            name_en = pinyin_join(first[1], second[1])
            if first[0] != second[0] and name not in used_names and name_en.lower() not in used_pinyin:
                break
        used_names.add(name)
        used_pinyin.add(name_en.lower())
        v = AreaPlan(
            f"{town.code}{230 + index:03d}",
            name,
            name_en,
            Area.Level.VILLAGE,
            town.code,
            is_poor_village=rng.random() < 0.85,
        )
        plan.areas.append(v)
        villages.append(v)
        county_of[v.code] = county
        town_of[v.code] = town
        username = "secretary_" + name_en.lower().replace("'", "")
        secretary_of[v.code] = username
        plan.users.append(UserPlan(username, f"{username}@example.com", role=RoleGrant.Role.SECRETARY, area=v.code))
        return v

    for county in named["counties"]:
        choices = [t for t in gen["towns"][county["slug"]] if t[0] not in {n.name for n in named_towns[county["code"]]}]
        picked = rng.sample(choices, rng.choice(gen["towns_per_county"]))
        for i, (name, name_en) in enumerate(picked):
            base = 220 if name.endswith("乡") else 120
            town = AreaPlan(f"{county['code']}{base + i:03d}", name, name_en, Area.Level.TOWNSHIP, county["code"])
            plan.areas.append(town)
            for j in range(rng.choice(gen["villages_per_generated_town"])):
                new_village(town, county, j)
        for town in named_towns[county["code"]]:
            for j in range(gen["villages_per_named_town"]):
                new_village(town, county, j)

    # Households, spread evenly over all villages (named ones included).
    named_heads = {h["head_name"] for h in named["households"]}
    head_names: set[str] = set(named_heads)
    for h in named["households"]:
        plan.households.append(
            HouseholdPlan(
                key=h["key"],
                village=h["village"],
                created_by=h["created_by"],
                fields={
                    k: v for k, v in h.items() if k in household_services.FIELDS or k in household_services.CONSENTS
                },
            )
        )
    per_village = [gen["households_total"] // len(villages)] * len(villages)
    for i in rng.sample(range(len(villages)), gen["households_total"] % len(villages)):
        per_village[i] += 1
    generated: list[HouseholdPlan] = []
    sequence = 0
    for village, count in zip(villages, per_village, strict=True):
        county = county_of[village.code]
        town = town_of[village.code]
        for _ in range(count):
            male = rng.random() < 0.62
            while True:
                surname = _weighted(rng, gen["surnames"])
                given_chars = gen["given_male"] if male else gen["given_female"]
                given = "".join(rng.choice(given_chars) for _ in range(1 if rng.random() < 0.25 else 2))
                head = surname + given
                if head not in head_names and len(set(given)) == len(given):
                    break
            head_names.add(head)
            size = _weighted(rng, gen["sizes"])
            causes: list[str] = []
            for _ in range(rng.choice([1, 1, 2, 2, 3])):
                cause = _weighted(rng, gen["causes"])
                if cause not in causes:
                    causes.append(cause)
            if size == 1 and "labour" not in causes and rng.random() < 0.5:
                causes.append("labour")
            birth_year = rng.randint(1935, 1962) if size == 1 else rng.randint(1948, 1990)
            birth = date(birth_year, rng.randint(1, 12), rng.randint(1, 28))
            sequence += 7
            group = rng.randint(1, 8)
            roll = rng.random()
            alias, alias_consent = "", False
            if roll < 0.5:
                alias, alias_consent = surname + "家", True
            elif roll < 0.6:
                alias = surname + "家"
            story, story_consent = "", False
            roll = rng.random()
            if roll < 0.45:
                opening = (
                    rng.choice(gen["story_alone"])
                    if size == 1
                    else rng.choice(gen["story_openings"]).format(size="一二三四五六"[size - 1])
                )
                story = opening + "".join(gen["stories"][c] for c in causes[:2]) + rng.choice(gen["story_closings"])
                story_consent = roll < 0.35
            notes = [rng.choice(gen["health_notes"][c]) for c in causes if c in gen["health_notes"]]
            phone = (
                "1"
                + rng.choice(["38", "39", "58", "59", "87", "88", "36", "35", "80", "89", "33", "53"])
                + "".join(str(rng.randint(0, 9)) for _ in range(8))
            )
            address = (
                f"四川省{named['city']['name']}{county['name']}{town.name}{village.name}{group}组{rng.randint(1, 60)}号"
            )
            hp = HouseholdPlan(
                key=f"{village.code}/{head}",
                village=village.code,
                created_by=secretary_of[village.code],
                fields={
                    "head_name": head,
                    "alias": alias,
                    "alias_consent": alias_consent,
                    "size": size,
                    "poverty_causes": causes,
                    "story": story,
                    "story_consent": story_consent,
                    "id_number": fake_id_number(county["code"], birth, 100 + sequence % 890, male),
                    "phone": phone,
                    "address": address,
                    "health_notes": "".join(notes),
                },
            )
            plan.households.append(hp)
            generated.append(hp)

    # Named needs.
    for n in named["needs"]:
        household = next(h for h in plan.households if h.key == n["household"])
        plan.needs.append(
            NeedPlan(
                village=household.village,
                household=household.key,
                created_by=n["created_by"],
                reviewer=n["published_by"],
                status=Need.Status.PUBLISHED,
                fields={
                    k: v
                    for k, v in n.items()
                    if k != "household" and (k in need_services.NEED_FIELDS or k == "deadline_days")
                },
            )
        )

    # Generated needs: never for the named households, never naming anyone.
    village_by_code = {v.code: v for v in villages}
    keys = {(n.village, n.household, n.fields["title"]) for n in plan.needs}
    donors = [d["username"] for d in gen["donors"]]
    reference = 0

    def public_text_ok(*texts: str) -> bool:
        return not any(head in text for text in texts for head in head_names)

    for _ in range(gen["needs_total"]):
        for _attempt in range(50):
            category = _weighted(rng, gen["category_weights"])
            entry = _entry_weighted(rng, gen["items"][category])
            if entry.get("scope") == "village":
                village = rng.choice(villages)
                household = None
                who = village.name
            else:
                household = rng.choice(generated)
                village = village_by_code[household.village]
                f = household.fields
                if f["alias"] and f["alias_consent"]:
                    who = f["alias"]
                elif f["size"] == 1:
                    who = rng.choice(gen["who_alone"]).format(village=village.name)
                else:
                    who = rng.choice(gen["who_without_alias"]).format(village=village.name)
            title = rng.choice(entry["titles"]).format(who=who, village=village.name, group=rng.choice(gen["groups"]))
            key = (village.code, household.key if household else None, title)
            if key not in keys and len(title) <= 80 and public_text_ok(title, entry["why"]):
                break
        else:  # pragma: no cover - the data files leave plenty of room
            raise RuntimeError("could not find a fresh title for a generated need")
        keys.add(key)
        kind = entry["kind"]
        fields = {
            "title": title,
            "category": category,
            "kind": kind,
            "item": entry["item"],
            "deadline_days": rng.randint(20, 120),
        }
        if kind == Need.Kind.MONEY:
            target = Decimal(_range(rng, entry["target"]))
            fields["target_amount"] = target
            description = gen["description"]["money"].format(why=entry["why"], target=plain_number(target))
        else:
            quantity = _range(rng, entry["quantity"])
            price = Decimal(entry["unit_price"])
            fields.update(quantity=quantity, unit=entry["unit"], unit_price=price)
            description = gen["description"][kind].format(
                why=entry["why"],
                item=entry["item"],
                quantity=quantity,
                unit=entry["unit"],
                unit_price=plain_number(price),
            )
        fields["description"] = description
        roll = rng.random()
        status = (
            Need.Status.DRAFT
            if roll < 0.03
            else Need.Status.REJECTED
            if roll < 0.045
            else Need.Status.SUBMITTED
            if roll < 0.15
            else Need.Status.PUBLISHED
        )
        county = county_of[village.code]
        need = NeedPlan(
            village=village.code,
            household=household.key if household else None,
            created_by=secretary_of[village.code],
            reviewer=staff_of[county["code"]] if status in (Need.Status.PUBLISHED, Need.Status.REJECTED) else None,
            status=status,
            fields=fields,
        )
        if status == Need.Status.REJECTED:
            need.rejection_reason = rng.choice(gen["rejection_reasons"])
        if status == Need.Status.PUBLISHED:
            need.pledges, reference = _plan_pledges(rng, gen, fields, donors, reference)
        plan.needs.append(need)
    return plan


def _split(rng: random.Random, total, money: bool):
    """A part of ``total`` strictly between nothing and all of it."""
    if money:
        part = (total * Decimal(rng.choice(["0.2", "0.3", "0.5", "0.6"]))).quantize(Decimal("100"))
        return max(Decimal("100"), min(part, total - 100))
    return rng.randint(1, total - 1)


def _plan_pledges(rng: random.Random, gen: dict, fields: dict, donors: list[str], reference: int):
    """What donors do with a published need: fulfil it, pledge part or all of
    it, or nothing yet (about half of them)."""
    money = fields["kind"] == Need.Kind.MONEY
    goods = fields["kind"] == Need.Kind.GOODS
    total = fields["target_amount"] if money else fields["quantity"]
    divisible = total >= 200 if money else total > 1
    roll = rng.random()
    pledges: list[PledgePlan] = []

    def new(size) -> PledgePlan:
        return PledgePlan(donor=rng.choice(donors), size=size, message=rng.choice(gen["pledge_messages"]))

    if roll < 0.22:  # fulfilled: everything pledged and arrived
        sizes = [total]
        if divisible and rng.random() < 0.5:
            first = _split(rng, total, money)
            sizes = [first, total - first]
        for size in sizes:
            p = new(size)
            p.arrived = size
            if money:
                reference += 1
                p.reference = f"{REFERENCE_PREFIX}{reference:06d}"
            else:
                p.note = rng.choice(gen["receipt_notes"])
            if rng.random() < 0.5:
                p.thanks = rng.choice(gen["thanks"])
            pledges.append(p)
    elif roll < 0.38 and divisible:  # partly pledged; some of it may have arrived
        p = new(_split(rng, total, money))
        r = rng.random()
        if r < 0.4:
            p.arrived = p.size
            if money:
                reference += 1
                p.reference = f"{REFERENCE_PREFIX}{reference:06d}"
            else:
                p.note = rng.choice(gen["receipt_notes"])
        elif goods and r < 0.7:
            p.sent = True
        pledges.append(p)
    elif roll < 0.48:  # fully pledged, on its way
        p = new(total)
        p.sent = goods and rng.random() < 0.5
        pledges.append(p)
    return pledges, reference


# --- Applying the plan --------------------------------------------------------


@dataclass
class Created:
    areas: int = 0
    users: int = 0
    grants: int = 0
    donors: int = 0
    households: int = 0
    needs: int = 0
    pledges: int = 0

    def any(self) -> bool:
        return any(vars(self).values())


class DemoLoader:
    def __init__(self, *, today: date | None = None, plan: Plan | None = None):
        self.today = today or timezone.localdate()
        self.plan = plan or build_plan()
        self.gen = read_data("generation.json")
        self.created = Created()
        self.areas: dict[str, Area] = {}
        self.users: dict[str, User] = {}
        self.donors: dict[str, Donor] = {}
        self.households: dict[str, Household] = {}
        self._password_hash: str | None = None

    # Call inside transaction.atomic().
    def run(self) -> Created:
        self.load_areas()
        self.load_users()
        self.load_donors()
        self.load_households()
        self.load_needs()
        cooperatives_demo.load(self)
        return self.created

    # Areas -------------------------------------------------------------------

    def load_areas(self) -> None:
        existing = {a.code: a for a in Area.objects.filter(code__in=[a.code for a in self.plan.areas])}
        for ap in self.plan.areas:  # parents come before their children
            area = existing.get(ap.code)
            if area is None:
                area = Area(
                    code=ap.code,
                    name=ap.name,
                    name_en=ap.name_en,
                    level=ap.level,
                    parent=self.areas[ap.parent] if ap.parent else None,
                    is_poor_village=ap.is_poor_village,
                )
                area.save()
                self.created.areas += 1
            self.areas[ap.code] = area

    # Users -------------------------------------------------------------------

    def password_hash(self) -> str:
        # Hashing is deliberately slow; every demo user has the same password,
        # so hash it once per run.
        if self._password_hash is None:
            self._password_hash = make_password(DEMO_PASSWORD)
        return self._password_hash

    def user(self, username: str, email: str, **extra) -> User:
        user = User.objects.filter(username=username).first()
        if user is None:
            user = User.objects.create(username=username, email=email, password=self.password_hash(), **extra)
            self.created.users += 1
        self.users[username] = user
        return user

    def load_users(self) -> None:
        for up in self.plan.users:
            extra = {"is_superuser": up.is_superuser, "is_staff": up.is_staff}
            if up.language:
                extra["language"] = up.language
            user = self.user(up.username, up.email, **extra)
            if up.role:
                area = self.areas[up.area]
                new = not RoleGrant.objects.filter(user=user, role=up.role, area=area, active=True).exists()
                if new:
                    grant_role(by=None, user=user, role=up.role, area=area)
                self.created.grants += new
            if up.donor:
                self.donor(user, up.donor)

    def donor(self, user: User, spec: dict) -> Donor:
        donor = Donor.objects.filter(user=user).first()
        if donor is None:
            donor = donor_services.register_donor(
                user=user,
                kind=spec["kind"],
                name=spec["name"],
                show_name=spec["show_name"],
                phone=spec.get("phone", ""),
            )
            self.created.donors += 1
        if not donor.email_verified:
            # The demo's donors have followed their verification link.
            Donor.objects.filter(pk=donor.pk).update(verified_email=user.email.lower(), verified_at=timezone.now())
            donor.refresh_from_db()
        self.donors[user.username] = donor
        return donor

    def load_donors(self) -> None:
        for spec in self.gen["donors"]:
            user = self.user(spec["username"], f"{spec['username']}@example.com")
            self.donor(user, spec)

    # Households --------------------------------------------------------------

    def load_households(self) -> None:
        village_ids = {self.areas[h.village].pk for h in self.plan.households}
        existing = {
            (h.village_id, h.head_name): h for h in Household.objects.filter(village_id__in=village_ids).order_by("-id")
        }  # oldest wins if a name is registered twice
        for hp in self.plan.households:
            village = self.areas[hp.village]
            household = existing.get((village.pk, hp.fields["head_name"]))
            if household is None:
                household = household_services.create_household(
                    by=self.users[hp.created_by], village=village, **hp.fields
                )
                self.created.households += 1
            self.households[hp.key] = household

    # Needs and pledges -------------------------------------------------------

    def load_needs(self) -> None:
        village_ids = {self.areas[n.village].pk for n in self.plan.needs}
        existing = set(
            Need.objects.filter(village_id__in=village_ids).values_list("village_id", "household_id", "title")
        )
        for np in self.plan.needs:
            village = self.areas[np.village]
            household = self.households[np.household] if np.household else None
            if (village.pk, household.pk if household else None, np.fields["title"]) in existing:
                continue  # loaded before, with its pledges
            self.load_need(np, village, household)

    def load_need(self, np: NeedPlan, village: Area, household: Household | None) -> None:
        fields = {k: v for k, v in np.fields.items() if k != "deadline_days"}
        fields["deadline"] = self.today + timedelta(days=np.fields["deadline_days"])
        if "unit_price" in fields and fields["unit_price"] is not None:
            fields["unit_price"] = Decimal(fields["unit_price"])
        secretary = self.users[np.created_by]
        need = need_services.create_need(
            by=secretary, village=village, submit=np.status != Need.Status.DRAFT, household=household, **fields
        )
        self.created.needs += 1
        if np.status == Need.Status.REJECTED:
            need_services.reject_need(need_id=need.pk, by=self.users[np.reviewer], reason=np.rejection_reason)
            return
        if np.status != Need.Status.PUBLISHED:
            return
        staff = self.users[np.reviewer]
        need_services.publish_need(need_id=need.pk, by=staff)
        for pp in np.pledges:
            donor = self.donors[pp.donor]
            size = {"amount": pp.size} if need.kind == Need.Kind.MONEY else {"quantity": pp.size}
            # A history from before today's limits on what a donor holds open.
            p = pledge_services.make_pledge(need_id=need.pk, donor=donor, message=pp.message, exempt="demo", **size)
            self.created.pledges += 1
            if pp.sent:
                pledge_services.mark_sent(pledge_id=p.pk, by=donor.user)
            if pp.arrived is not None:
                if need.kind == Need.Kind.MONEY:
                    pledge_services.record_money_received(
                        pledge_id=p.pk, by=staff, amount=pp.arrived, reference=pp.reference
                    )
                else:
                    pledge_services.confirm_receipt(pledge_id=p.pk, by=secretary, quantity=pp.arrived, note=pp.note)
                if pp.thanks:
                    pledge_services.thank_donor(pledge_id=p.pk, by=secretary, message=pp.thanks)


# --- Summary --------------------------------------------------------------------


def summary(city_code: str) -> dict:
    """Counts over the demo city (whatever loaded them)."""
    city = Area.objects.get(code=city_code)
    areas = Counter(dict(Area.objects.under(city).values_list("level").annotate(n=Count("id")).order_by()))
    needs = Need.objects.filter(village__path__startswith=city.path)
    return {
        "areas": {Area.Level(level).label: n for level, n in sorted(areas.items())},
        "households": Household.objects.within(city).count(),
        "needs": dict(needs.values_list("status").annotate(n=Count("id")).order_by()),
        "pledges": dict(Pledge.objects.filter(need__in=needs).values_list("status").annotate(n=Count("id")).order_by()),
        "audit_entries": AuditEntry.objects.count(),
    }
