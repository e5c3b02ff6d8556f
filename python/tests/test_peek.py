"""Issue 19, one contract per operation: `Limiter.peek` answers what a check of the same cost
would answer now (allowed or not, remaining, retry-after within 1 ms), and spends nothing; on
the in-process store, on Redis and on a Redis Cluster (docs/DESIGN.md §2)."""

import math
import time

import pytest

from pacer import Limiter, Policy, Rate

POLICY = Policy([Rate(10, "1m", burst=3), Rate(1000, "1s", burst=999)], name="peeked")


def same(limiter, cost, when):
    started = time.monotonic()
    peeked = limiter.peek("u", POLICY, cost=cost)
    again = limiter.peek("u", POLICY, cost=cost)
    checked = limiter.check_blocking("u", POLICY, cost=cost)
    # Within 1 ms, plus the time that passed between the peek and the check (a loaded machine
    # takes milliseconds per Redis round trip).
    slack = 1 + math.ceil((time.monotonic() - started) * 1000)
    for result in (peeked, again):
        assert (result.allowed, result.outcome, result.remaining, result.matched_rate_index) == (
            checked.allowed, checked.outcome, checked.remaining, checked.matched_rate_index), when
        assert abs(result.retry_after_ms - checked.retry_after_ms) <= slack, when
        assert abs(result.reset_ms - checked.reset_ms) <= slack, when


async def test_peek_is_the_next_check_and_spends_nothing(store_url, app_name):
    limiter = Limiter(redis_url=store_url, app_name=app_name)
    await limiter.startup()
    same(limiter, 1, "fresh")
    same(limiter, 2, "busy")
    same(limiter, 5, "cost above capacity")
    assert limiter.peek("u", POLICY, cost=0).remaining == 1  # cost 0: the state as it is
    same(limiter, 1, "the last permit")
    exhausted = limiter.peek("u", POLICY)
    assert not exhausted.allowed and exhausted.outcome == "denied"
    assert 5_000 <= exhausted.retry_after_ms <= 6_000
    same(limiter, 1, "exhausted")
    # Peeks are no decisions: the metrics count the five checks only (3 allowed, 2 refused).
    metrics = limiter.metrics
    assert (metrics.requests_allowed, metrics.requests_blocked) == (3, 2)
    await limiter.shutdown()


def test_peek_refuses_a_negative_cost_naming_it():
    limiter = Limiter(app_name="peekcost")
    with pytest.raises(ValueError, match="-1"):
        limiter.peek("u", POLICY, cost=-1)
