"""The pruning kit: its studies load, a quick starter runs through the harness (IHT never ends above its magnitude
start), the sweep command writes valid JSON on a tiny case, and the cached sweep holds the README's finding."""
import json
import re
from pathlib import Path

import pytest

from course_lib import pruning_workloads
from course_lib.experiments import load_study, loads_study, run_study
from course_lib.pruning import METHODS

KIT = Path(__file__).resolve().parents[1] / "projects" / "pruning"


@pytest.mark.parametrize("name", ["starter.toml", "full.toml"])
def test_kit_studies_load(name):
    study = load_study(KIT / name)
    assert study.unit == "gradients"
    assert {m.name for m in study.methods} == {"magnitude", "iht", "accelerated_iht"}
    assert all(w.target is not None for w in study.workloads)


@pytest.mark.slow
def test_quick_starter_iht_never_above_magnitude(tmp_path):
    text = (KIT / "starter.toml").read_text()
    text = re.sub(r"(?m)^amount = .*$", "amount = 12", text)
    text = re.sub(r"(?m)^trials = \d+", "trials = 1", text)
    text = re.sub(r"(?m)^seeds = \d+\n(baseline)", r"seeds = 2\n\1", text)
    (tmp_path / "starter.toml").write_text(text)
    with pytest.warns(UserWarning, match="fewer than 5 final seeds"):
        study = loads_study(text, path=tmp_path / "starter.toml")
    records = run_study(study, jobs=0, report=False)
    assert all(r["status"] == "ok" for r in records), [r["message"] for r in records if r["status"] != "ok"]
    assert len(records) == 2 * (2 + 2 * 3)            # magnitude: 2 finals; IHT methods: 1 trial + 2 finals
    for w in {r["workload"] for r in records}:
        start = {r["final_metric"] for r in records if r["workload"] == w and r["method"] == "magnitude"}
        assert len(start) == 1
        start = start.pop()
        for r in (r for r in records if r["workload"] == w and r["method"] != "magnitude"):
            assert r["spent"]["gradients"] <= 12
            assert r["final_metric"] <= start * (1 + 1e-12)
            if r["method"] == "iht":                  # plain IHT's gradients are at its iterates: monotone
                curve = r["curve"]["metric"]
                assert all(b <= a * (1 + 1e-12) for a, b in zip(curve, curve[1:]))
                assert curve[0] == pytest.approx(start, rel=1e-12)


@pytest.mark.slow
def test_sweep_command_on_a_tiny_case(tmp_path, capsys):
    out = tmp_path / "sweep.json"
    assert pruning_workloads.main(["--source", "mlp_digits", "--sparsity", "0.9", "--method", "magnitude",
                                   "--method", "admm", "--max-rows", "256", "--out", str(out)]) == 0
    data = json.loads(out.read_text())["mlp_digits"]
    assert [(r["method"], r["sparsity"]) for r in data["rows"]] == [("magnitude", 0.9), ("admm", 0.9)]
    err = {r["method"]: r["mean_reconstruction_error"] for r in data["rows"]}
    assert 0 < err["admm"] < err["magnitude"] < 1
    assert 0 < data["dense_accuracy"] <= 1 and "written" in capsys.readouterr().out


def test_cached_sweep_holds_the_readme_finding():
    sweep = json.loads((KIT / "results" / "sweep.json").read_text())
    digits = sweep["mlp_digits"]
    assert {r["method"] for r in digits["rows"]} == set(METHODS)
    at90 = {r["method"]: r for r in digits["rows"] if r["sparsity"] == 0.9}
    assert round(at90["admm"]["accuracy"], 3) == 0.907 and round(at90["magnitude"]["accuracy"], 3) == 0.417
    assert round(digits["dense_accuracy"], 3) == 0.965
    for s in {r["sparsity"] for r in digits["rows"]}:
        rows = {r["method"]: r for r in digits["rows"] if r["sparsity"] == s}
        assert rows["admm"]["mean_reconstruction_error"] < rows["magnitude"]["mean_reconstruction_error"]
