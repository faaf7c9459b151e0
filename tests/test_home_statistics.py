"""The home page's figures: computed at most once a minute, and when the
minute is up only one request computes them while the others show the
figures of the minute before (found by `make bench`: at a province's size
the computation takes about a second)."""

import pytest
from django.core.cache import cache

from portal.views import STATS_FRESH_KEY, STATS_KEY, site_statistics


@pytest.fixture
def no_figures():
    cache.delete_many([STATS_KEY, STATS_FRESH_KEY])
    yield
    cache.delete_many([STATS_KEY, STATS_FRESH_KEY])


@pytest.mark.django_db
def test_the_figures_are_computed_once_a_minute(no_figures, django_assert_num_queries):
    first = site_statistics()
    with django_assert_num_queries(0):
        assert site_statistics() == first


@pytest.mark.django_db
def test_while_one_request_refreshes_the_others_show_the_last_figures(no_figures, django_assert_num_queries):
    first = site_statistics()
    cache.delete(STATS_FRESH_KEY)  # the minute is up ...
    assert cache.add(STATS_FRESH_KEY, 1, 60)  # ... and another process claimed the refresh
    with django_assert_num_queries(0):
        assert site_statistics() == first


@pytest.mark.django_db
def test_the_first_request_after_the_minute_computes_them_again(no_figures, django_assert_max_num_queries):
    site_statistics()
    cache.delete(STATS_FRESH_KEY)
    with django_assert_max_num_queries(10) as ctx:
        site_statistics()
    assert len(ctx.captured_queries) > 0
