"""The learning proof's statistics: mean ± sd over seeds and the verdict on each claimed direction."""

from __future__ import annotations

import statistics

import pytest

from loclip.eval.proof_stats import Claim, claims_table, fmt, results_table, summarize, verdict


def test_summarize_is_mean_and_sample_sd_over_the_seeds_that_have_the_metric() -> None:
    per_seed = {0: {"a": 0.1, "b": None}, 1: {"a": 0.3, "b": 0.5}, 2: {"a": 0.2, "b": 0.7}}
    stats = summarize(per_seed)
    assert stats["a"] == pytest.approx({"mean": 0.2, "sd": statistics.stdev([0.1, 0.3, 0.2]), "n": 3})
    assert stats["b"] == pytest.approx({"mean": 0.6, "sd": statistics.stdev([0.5, 0.7]), "n": 2})
    assert summarize({0: {"a": 0.4}})["a"]["sd"] == 0.0
    assert "c" not in summarize({0: {"c": None}})


def test_verdict_needs_the_gap_to_exceed_both_spreads() -> None:
    a = {"mean": 0.5, "sd": 0.05, "n": 3}
    assert verdict(a, {"mean": 0.3, "sd": 0.05, "n": 3}) == "holds"  # gap 0.2 > 0.1
    assert verdict(a, {"mean": 0.42, "sd": 0.05, "n": 3}) == "within the spread"  # gap 0.08 < 0.1
    assert verdict(a, {"mean": 0.6, "sd": 0.0, "n": 3}) == "does not hold"
    assert verdict(a, None) == "n/a"


def test_tables_show_mean_and_sd() -> None:
    stats = {"x": {"m": {"mean": 0.5, "sd": 0.01, "n": 3}}, "y": {"m": {"mean": 0.2, "sd": 0.02, "n": 3}}}
    assert fmt(stats["x"]["m"]) == "0.500 ± 0.010" and fmt({"mean": 0.5, "sd": 0.0, "n": 1}) == "0.500"
    assert "| x | 0.500 ± 0.010 |" in results_table(("m",), stats)
    row = claims_table([Claim("x", "y", "m", "")], stats).splitlines()[-1]
    assert row == "| `x` > `y` on `m` | 0.500 ± 0.010 | 0.200 ± 0.020 | holds |"


def test_one_seed_has_no_spread_to_beat() -> None:
    one = {"mean": 0.5, "sd": 0.0, "n": 1}
    assert verdict(one, {"mean": 0.3, "sd": 0.0, "n": 1}) == "in order (one seed)"
    assert verdict({"mean": 0.2, "sd": 0.0, "n": 1}, one) == "does not hold"
