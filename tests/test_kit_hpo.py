"""The HPO kit: its studies load, a quick starter study runs with every run ok and exactly its epoch budget."""
import re
from pathlib import Path

import pytest

pytest.importorskip("optuna")
from course_lib.experiments import load_study, run_study  # noqa: E402

KIT = Path(__file__).resolve().parents[1] / "projects" / "hpo"


def test_studies_load_and_share_workloads():
    starter, full = load_study(KIT / "starter.toml"), load_study(KIT / "full.toml")
    assert {m.name for m in starter.methods} == {m.name for m in full.methods}
    assert full.amount > starter.amount and full.seeds >= 5
    assert starter.unit == full.unit == "epochs"


@pytest.mark.slow
def test_quick_starter_study_spends_exactly_its_epochs(tmp_path):
    text = (KIT / "starter.toml").read_text()
    text = re.sub(r"(?m)^seeds = \d+", "seeds = 1", text)
    text = re.sub(r"(?m)^amount = \d+", "amount = 6", text)
    text = text.replace('name = "hpo-starter"', 'name = "hpo-quick"')
    path = tmp_path / "starter.toml"
    path.write_text(text)
    records = run_study(path, jobs=0, out=tmp_path / "out")
    assert len(records) == 2 * 8
    assert all(r["status"] == "ok" for r in records), [(r["key"], r["message"]) for r in records if r["status"] != "ok"]
    for r in records:
        grid = r["method"] == "grid"
        assert r["spent"]["unit"] == "epochs"
        assert r["spent"]["spent"] == (3 if grid else 6)  # grid: 6 // 3 = 2 trials -> a 1-point 4-D grid
        assert 0.0 <= r["final_metric"] <= 1.0
