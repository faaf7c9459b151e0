"""`make bench`: the harness's parsing and report, the results file's shape,
and the cached fragments it led to (never stale). Fast: no gunicorn, no
generated database."""

import json
from datetime import date, timedelta
from decimal import Decimal

from django.template.loader import render_to_string

from bench import generate, run
from bench.env import BENCH_DIR, SCALES, database_name
from donations.models import Need
from households.models import Area, Household
from sun_commune.search import index_terms

WRK_OUTPUT = """Running 10s test @ http://127.0.0.1:8000
  2 threads and 16 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.07ms    5.12ms  80.31ms   71.70%
    Req/Sec   398.90     30.10   470.00     70.00%
  Latency Distribution
     50%   19.32ms
     75%   22.10ms
     90%   26.84ms
     99%    1.20s
  7950 requests in 10.01s, 25.10MB read
  Non-2xx or 3xx responses: 3
Requests/sec:    794.21
Transfer/sec:      2.51MB
"""


def test_it_reads_wrk_figures():
    figures = run.parse_wrk(WRK_OUTPUT)
    assert figures == {
        "rps": 794.2,
        "p50_ms": 19.32,
        "p99_ms": 1200.0,
        "requests": 7950,
        "non_2xx_3xx": 3,
        "socket_errors": None,
    }


def _result(scale, rps):
    page = {"rps": rps, "p50_ms": 10.0, "p99_ms": 40.0, "ratio": 0.8, "queries": 3}
    return {
        "scale": scale,
        "reference": {"rps": 1000.0, "p50_ms": 5.0, "p99_ms": 9.0, "queries": 1},
        "pages": {"supermarket": dict(page), "supermarket_search_2char": dict(page)},
        "writes": {
            "pledge_hot_need": {
                "rps": 300.0,
                "p99_ms": 80.0,
                "ratio": 0.3,
                "pledges_created": 3000,
                "over_pledged_needs": 0,
            },
            "publication": {"entries_per_second": 25000, "entries": 100000, "already_published": 10},
        },
        "generation": {"seconds": 5.0, "bytes": 2**30},
        "measured_at": "2026-01-01T00:00:00+00:00",
        "machine": "2 cores",
    }


def test_the_report_compares_the_scales_against_the_targets():
    results = {"city": _result("city", 800.0), "province": _result("province", 600.0)}
    results["city"]["pages"]["supermarket"]["ratio"] = 0.64  # its floor was faster than the province run's
    text = run.report(results)
    assert "| supermarket | 800 |" in text
    assert "| 0.75 |" in text  # province / city
    lines = run.checks(results)
    assert (
        "MISSED supermarket across scales: queries 3 → 3, province/city throughput 0.75 (≥ 0.8); "
        "1.25 as ratios to the floor"
    ) in lines
    assert any(line.startswith("met province pledge_hot_need") for line in lines)
    assert any(line.startswith("met province publication") for line in lines)


def test_results_files_have_the_issues_shape():
    for path in [BENCH_DIR / "results.json", *BENCH_DIR.glob("results-*.json")]:
        if not path.exists():
            continue
        data = json.loads(path.read_text())
        assert data["scale"] in SCALES
        assert data["reference"]["rps"] > 0
        assert data["pages"], path
        for name, page in data["pages"].items():
            assert {"rps", "p50_ms", "p99_ms", "ratio", "queries"} <= set(page), name
        assert isinstance(data["writes"], dict)


def test_the_generator_builds_terms_as_the_application_does():
    assert database_name("province") == "sun_commune_bench_province"
    for name, terms in generate.name_pool()[:50]:
        assert terms == index_terms(name)
    templates = generate.need_templates()
    assert any("电视" in row[8] for row in templates)
    for row in templates:
        assert row[8] == index_terms(row[3], row[4], row[7])


def _need(**fields):
    county = Area(pk=3, code="510101", name="盐亭县", level=Area.Level.COUNTY)
    township = Area(pk=4, code="510101001", name="黄溪乡", level=Area.Level.TOWNSHIP)
    village = Area(pk=5, code="510101001001", name="金鹿村", level=Area.Level.VILLAGE)
    household = Household(pk=9, public_id="H23456789", alias="黄家", alias_consent=True)
    values = dict(
        pk=7,
        title="过冬的电热毯",
        status=Need.Status.PUBLISHED,
        category="daily",
        kind=Need.Kind.GOODS,
        item="电热毯",
        unit="床",
        quantity=10,
        pledged_quantity=2,
        received_quantity=1,
        unit_price=Decimal("80.00"),
        deadline=date.today() + timedelta(days=9),
    )
    values.update(fields)
    need = Need(village=village, township=township, county=county, household=household, **values)
    return need


def _card(need) -> str:
    return render_to_string("includes/need_card.html", {"need": need})


def test_a_card_shows_the_figures_and_consent_of_now():
    card = _card(_need())
    assert "黄家" in card and 'aria-valuenow="10"' in card  # 1 of 10 arrived
    pledged = _card(_need(received_quantity=2))
    assert 'aria-valuenow="20"' in pledged  # an arrival shows at once
    withdrawn = _need()
    withdrawn.household.alias_consent = False
    hidden = _card(withdrawn)
    assert "黄家" not in hidden and "H23456789" in hidden
