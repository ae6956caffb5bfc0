"""Claims: three verdicts, each with its reason and margin; carried to the page; two builds compared."""

import json

import pytest

from nst_lib import claims
from nst_lib.claims import FAILS, HOLDS, UNJUDGED, above, below, every, judge


def test_a_claim_that_holds_states_its_margin():
    claim = judge("the seeds agree", below(0.026, 0.055), "0.026 between them", otherwise="-")
    assert claim.verdict == HOLDS
    assert claim.margin == pytest.approx((0.055 - 0.026) / 0.055)
    assert claim.reason == "margin 53% (0.026, limit: below 0.055)"


def test_a_claim_that_fails_says_why_and_by_how_much():
    claim = judge("conv1_1 recovers at least 90%", above(0.85, 0.9), "85%",
                  otherwise="at 30 evaluations the loss was still falling 20% in the last tenth")
    assert claim.verdict == FAILS
    assert claim.reason == ("at 30 evaluations the loss was still falling 20% in the last tenth; "
                            "it misses by 5.6% (0.85, limit: above 0.9)")


def test_a_failing_claim_without_a_reason_is_refused():
    with pytest.raises(ValueError, match="does not hold and says not why"):
        judge("conv5 fails", below(0.8, 0.5), "0.8", otherwise=" ")
    with pytest.raises(ValueError, match="has no reason"):
        claims.Claim("x", "1", FAILS, "")


def test_a_claim_this_run_cannot_judge_says_what_is_missing():
    claim = judge("timing", below(1.0, 2.0), "1 s", otherwise="-", unless="the profile runs 3 evaluations")
    assert (claim.verdict, claim.reason) == (UNJUDGED, "the profile runs 3 evaluations")
    close = judge("less style", above(0.192, 0.189), "0.192 against 0.189", otherwise="-", within=0.05,
                  noise="that two seeds differ by")
    assert close.verdict == UNJUDGED
    assert close.reason == "the margin, 1.6%, is less than the 5.0% that two seeds differ by"


def test_every_is_decided_by_its_weakest_test():
    rising = every(below(a, b) for a, b in [(1, 2), (2, 2.1), (2.1, 5)])
    assert (rising.value, rising.limit, rising.holds) == (2, 2.1, True)
    assert not every([below(1, 2), above(1, 2)]).holds


def test_a_claims_table_carries_its_claims_to_the_page_and_refuses_bare_booleans():
    table = claims.Claims([judge("a", below(1, 2), "1", otherwise="-", figure="grid")])
    data, metadata = table._repr_mimebundle_()
    assert "<td data-label='verdict'>holds</td>" in data["text/html"]
    assert metadata[claims.METADATA][0]["figure"] == "grid"
    assert claims.Claim.from_dict(metadata[claims.METADATA][0]) == table.claims[0]
    with pytest.raises(TypeError, match="takes Claim objects"):
        claims.Claims([("conv5_1 does", "0.8", False)])


def test_still_falling_measures_the_last_tenth_of_a_run():
    flat = [10, 5, 2] + [1.0] * 17
    falling = [100 / (i + 1) for i in range(20)]
    falls = claims.still_falling({"flat": flat, "falling": falling})
    assert falls["flat"] == 0
    assert falls["falling"] == pytest.approx((100 / 18 - 100 / 20) / (100 / 18))


def test_two_builds_are_compared_claim_by_claim(tmp_path, capsys):
    first = [{"section": "1", "claim": "a", "verdict": HOLDS}, {"section": "3", "claim": "b", "verdict": HOLDS}]
    second = [{"section": "1", "claim": "a", "verdict": HOLDS}, {"section": "3", "claim": "b", "verdict": FAILS}]
    assert claims.differences(first, first) == []
    assert claims.differences(first, second) == ["3: b: holds / does not hold"]
    for name, listed in (("a.json", first), ("b.json", second)):
        (tmp_path / name).write_text(json.dumps({"claims": listed}))
    assert claims.main([str(tmp_path / "a.json"), str(tmp_path / "a.json")]) == 0
    assert claims.main([str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 1
    assert "3: b: holds / does not hold" in capsys.readouterr().out
    assert claims.main([str(tmp_path / "a.json"), str(tmp_path / "missing.json")]) == 2
    assert "is not a report's claims.json" in capsys.readouterr().err


def test_a_budget_too_small_leaves_unjudged_the_verdicts_more_evaluations_could_turn():
    falling = {"conv5_1": [1.0] * 18 + [0.8, 0.7]}  # 30% lower over the last tenth
    # A recovery rises with more evaluations: "less than half" that holds could still turn...
    held = judge("conv5 fails", below(0.4, 0.5), "40%", otherwise="-", budget=falling, what="content loss")
    assert held.verdict == UNJUDGED and held.reason == (
        "the content loss of conv5_1 was still falling (30% lower over the last tenth of its 20 evaluations), as "
        "much as the claim's margin of 20%: more evaluations could turn it")
    # ...unless its margin is larger than what the loss still moved; then the reason says so.
    far = judge("conv5 fails", below(0.1, 0.5), "10%", otherwise="-", budget=falling, what="content loss")
    assert far.verdict == HOLDS and far.reason.endswith("(30% lower over the last tenth of its 20 evaluations), "
                                                       "less than the margin")
    # One that fails cannot be turned by more evaluations: it is judged as measured.
    assert judge("conv5 fails", below(0.55, 0.5), "55%", otherwise="it kept more", budget=falling).verdict == FAILS
    # "at least 90%" that fails could still turn; one that holds cannot.
    assert judge("conv1_1 recovers", above(0.8, 0.9), "80%", otherwise="-", budget=falling).verdict == UNJUDGED
    assert judge("conv1_1 recovers", above(0.85, 0.9), "85%", otherwise="-", budget=falling, rising=False).verdict \
        == FAILS
    # A direction nobody knows: either way.
    assert judge("seeds agree", below(0.4, 0.5), "0.4", otherwise="-", budget=falling, rising=None).verdict == UNJUDGED
    # Runs that had settled: judged as measured.
    assert judge("conv5 fails", below(0.4, 0.5), "40%", otherwise="-", budget={"a": [1.0] * 20}).verdict == HOLDS
