"""The LoRA kit: studies load; a quick starter study runs every mode at exactly its budget of examples."""
import re
from pathlib import Path

import pytest

pytest.importorskip("peft")
from course_lib.experiments import load_study, run_study  # noqa: E402

KIT = Path(__file__).resolve().parents[1] / "projects" / "lora"


def test_studies_load():
    starter, full = load_study(KIT / "starter.toml"), load_study(KIT / "full.toml")
    assert starter.unit == full.unit == "examples"
    ranks = {m.fixed.get("r") for m in full.methods if m.fixed.get("mode") == "lora"}
    assert {1, 2, 4, 8, 16, 32, 64} <= ranks and full.seeds >= 5 and full.trials >= 1


@pytest.mark.slow
def test_quick_starter_study_runs_every_mode(tmp_path):
    text = (KIT / "starter.toml").read_text()
    text = re.sub(r"(?m)^seeds = \d+", "seeds = 1", text)
    text = re.sub(r"(?m)^amount = \d+", "amount = 32", text)
    sizes = "n_train = 1024, n_val = 256, n_test = 512, max_length = 32, batch_size = 32"
    assert sizes in text, "the quick study shrinks the starter's workload; update `sizes` to the starter's args"
    text = text.replace(sizes, "n_train = 64, n_val = 16, n_test = 16, max_length = 16, batch_size = 16")
    path = tmp_path / "starter.toml"
    path.write_text(text.replace('name = "lora-starter"', 'name = "lora-quick"'))
    records = run_study(path, jobs=0, out=tmp_path / "out")
    assert len(records) == 7
    assert all(r["status"] == "ok" for r in records), [(r["key"], r["message"]) for r in records if r["status"] != "ok"]
    assert all(r["spent"]["examples"] == 32 and r["spent"]["gradients"] == 2 for r in records)
