"""The second-order kit: its studies load, quick versions of its starters run through the harness."""
import re
from pathlib import Path

import pytest

from course_lib.experiments import load_study, loads_study, run_study

KIT = Path(__file__).resolve().parents[1] / "projects" / "second_order"


def quick(path: Path, tmp_path: Path, amount: float):
    """The study with a shorter budget, one tuning trial and two final seeds, stored in tmp_path."""
    text = path.read_text()
    text = re.sub(r"(?m)^amount = .*$", f"amount = {amount}", text)
    text = re.sub(r"(?m)^trials = \d+", "trials = 1", text)
    text = re.sub(r"(?m)^seeds = \d+\n(baseline)", r"seeds = 2\n\1", text)
    (tmp_path / path.name).write_text(text)
    with pytest.warns(UserWarning, match="fewer than 5 final seeds"):
        return loads_study(text, path=tmp_path / path.name)


@pytest.mark.parametrize("name", ["starter.toml", "starter_mlp.toml", "full.toml"])
def test_kit_studies_load(name):
    study = load_study(KIT / name)
    assert study.unit == "seconds"


def test_quick_convex_starter(tmp_path):
    study = quick(KIT / "starter.toml", tmp_path, 0.3)
    records = run_study(study, jobs=0, report=False)
    final = [r for r in records if r["phase"] == "final"]
    assert len(final) == 5 * 2 and all(r["status"] == "ok" for r in records)
    by = {m: [r for r in final if r["method"] == m] for m in ("gd", "newton-cg", "lbfgs")}
    assert all(r["reached"] for r in by["newton-cg"])          # f - f* <= 1e-8 within 0.3 s
    assert not any(r["reached"] for r in by["gd"])              # gradient descent is far from it
    assert all(r["spent"]["hvps"] > 0 for r in by["newton-cg"])


@pytest.mark.slow
def test_quick_mlp_starter(tmp_path):
    study = quick(KIT / "starter_mlp.toml", tmp_path, 0.3)
    records = run_study(study, jobs=0, report=True)
    assert all(r["status"] == "ok" for r in records), [r["message"] for r in records if r["status"] != "ok"]
    final = [r for r in records if r["phase"] == "final"]
    means = {m: sum(r["final_metric"] for r in final if r["method"] == m) / 2 for m in {r["method"] for r in final}}
    assert len(final) == 4 * 2 and sum(v > 0.9 for v in means.values()) >= 2, means   # one trial: lr is a draw
    assert (tmp_path / "results" / study.name / "report.md").exists()
