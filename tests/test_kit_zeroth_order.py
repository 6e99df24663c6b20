"""The zeroth-order kit: studies load; a quick starter study spends exactly its function evaluations."""
import json
import re
from pathlib import Path

import pytest

from course_lib.experiments import load_study, run_study

KIT = Path(__file__).resolve().parents[1] / "projects" / "zeroth_order"


def test_studies_load():
    starter, full = load_study(KIT / "starter.toml"), load_study(KIT / "full.toml")
    assert starter.unit == full.unit == "function_values"
    assert {w.name for w in starter.workloads} < {w.name for w in full.workloads} and full.seeds >= 5


def test_committed_memory_table_is_complete():
    mem = json.loads((KIT / "results" / "memory.json").read_text())
    ratio = mem["backprop AdamW, full fine-tuning"]["peak_mb"] / mem["MeZO, all parameters"]["peak_mb"]
    assert mem["ratio backprop/MeZO"] == pytest.approx(ratio) and ratio > 1.5
    assert mem["inference (no grad)"]["peak_mb"] < mem["MeZO, all parameters"]["peak_mb"]


@pytest.mark.slow
def test_quick_starter_study_spends_exactly_its_evaluations(tmp_path):
    text = (KIT / "starter.toml").read_text()
    text = re.sub(r"(?m)^seeds = \d+", "seeds = 1", text)
    text = re.sub(r"(?m)^trials = \d+", "trials = 1", text)
    text = re.sub(r"(?m)^amount = \d+", "amount = 60", text)
    path = tmp_path / "starter.toml"
    path.write_text(text.replace('name = "zeroth-order-starter"', 'name = "zo-quick"'))
    records = run_study(path, jobs=0, out=tmp_path / "out")
    assert len(records) == 3 * 5 * 2
    assert all(r["status"] == "ok" for r in records), [(r["key"], r["message"]) for r in records if r["status"] != "ok"]
    assert all(r["spent"]["function_values"] == 60 and r["spent"]["gradients"] == 0 for r in records)
