"""bench/quality.py at 64 px with random weights: its tables, its yardstick, its snapshots."""

import importlib.util
import json
import sys

import pytest
import torch

from conftest import ROOT, blobs, stripes


@pytest.fixture(scope="module")
def quality():
    spec = importlib.util.spec_from_file_location("bench_quality", ROOT / "bench" / "quality.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def test_the_yardstick_reads_no_layer_that_any_objective_optimizes(quality):
    measured = quality.yardstick_layers()
    for config in quality.CONFIGS:
        read = quality.objective_layers(config)
        assert len(read) == 6 and not read & measured, config.name
    # Both layer conventions are among the configurations, so both are kept apart.
    assert {c.rectified for c in quality.CONFIGS} == {True, False}


@pytest.mark.parametrize("line_search", [False, True])
def test_the_best_image_after_k_evaluations_is_what_a_run_of_k_returns(quality, random_vgg, line_search):
    config = quality.Config("probe", precision="float32", rectified=False, line_search=line_search)
    content, style = blobs(), stripes()
    kept, _, _ = quality.run(config, random_vgg, content, style, 1e4, budgets=[5, 12])
    for budget in (5, 12):
        alone = quality.transfer(content, style, model=random_vgg, steps=budget, progress=False,
                                 **config.options(1e4))
        assert torch.equal(kept[budget], alone.image), budget


def test_the_benchmark_prints_its_tables_and_draws_its_curves(quality, tmp_path, capsys):
    results = quality.main([
        "--quick", "--weights", "random", "--pairs", "1", "--budgets", "2", "4", "--lever-budget", "4",
        "--style-weights", "1e3", "1e5", "--out", str(tmp_path),
    ])
    printed = capsys.readouterr().out
    headline, levers, per_pair = results["tables"].values()
    assert [row["evaluations"] for row in headline] == [2, 4]
    assert [row["configuration"].removesuffix(" (the default)") for row in levers] == [
        c.name for c in quality.CONFIGS]
    assert sum(row["configuration"].endswith("(the default)") for row in levers) == 1
    assert levers[0]["4 evaluations"] == "1.00x"  # the classic recipe against itself
    assert len(per_pair) == 1 and per_pair[0]["content x style"] == "tubingen x starry_night"
    assert all(row["classic: seconds"] > 0 and row["default: seconds"] > 0 for row in headline)
    # README-ready Markdown: a header row and a rule under it for each table.
    rules = [line for line in printed.splitlines() if line.startswith("| --- |")]
    assert len(rules) == 3 and "| evaluations | content error (matched) |" in printed
    for figure in results["figures"].values():
        assert figure and (tmp_path / figure).stat().st_size > 10_000
    records = json.loads((tmp_path / "quality_quick.json").read_text())["records"]
    assert len(records) == len(quality.CONFIGS) * 2 * 2  # configurations x style weights x budgets
    for record in records:  # measured by the yardstick, not the objective that made the picture
        assert record["content_error"] != pytest.approx(record["objective"]["content"], rel=1e-3)
        assert record["style_error"] != pytest.approx(record["objective"]["style"], rel=1e-3)
