"""The README's example study, the runnable example of docs/EXPERIMENTS.md and lecture 06's claim hold as printed."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _block(text: str, heading: str, lang: str) -> str:
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    found = re.findall(rf"```{lang}\n(.*?)```", section, flags=re.S)
    assert found, f"no ```{lang} block under {heading!r}"
    return found[0]


@pytest.mark.slow
def test_readme_example_study_runs_as_printed(tmp_path):
    study = _block((ROOT / "README.md").read_text(), "## Phase II: projects", "toml")
    (tmp_path / "study.toml").write_text(study)
    out = tmp_path / "results" / "first-order"
    res = subprocess.run([sys.executable, "-m", "course_lib.cli", "experiment", "run", "study.toml", "--out",
                          str(out), "--jobs", "2"], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    summary = json.loads((out / "summary.json").read_text())
    methods = {r["method"] for r in summary["rows"]}
    workloads = {r["workload"] for r in summary["rows"]}
    assert methods == {"gd", "heavy-ball", "nesterov"} and workloads == {"quadratic-k100", "quadratic-k1000"}
    assert all(r["final_runs"] == 5 and r["tuning_trials"] == 8 for r in summary["rows"])
    assert "profile" in summary and (out / "profile.png").exists()
    assert (out / "curves_quadratic-k1000.png").exists()
    report = (out / "report.md").read_text()
    assert "## Paired comparison against `gd`" in report and "| quadratic-k1000 | heavy-ball |" in report
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 2 * 3 * (8 + 5)
    assert all(r["spent"]["gradients"] <= 500 for r in runs if r["spent"])
    assert all(r["spent"]["gradients"] == 500 for r in runs if r["status"] == "ok")


def test_docs_runnable_example(tmp_path):
    code = _block((ROOT / "docs" / "EXPERIMENTS.md").read_text(), "### A runnable example", "python")
    res = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("18 runs;") and "# Study `team-example`" in res.stdout


@pytest.mark.slow
def test_lecture_06_ranking_flip_holds(tmp_path, monkeypatch):
    """The lecture's claim: with 4 trials each Nesterov wins; heavy ball with 32 trials beats Nesterov with 4."""
    import matplotlib

    matplotlib.use("Agg")
    import nbformat

    nb = nbformat.read(ROOT / "lectures" / "06_fair_comparisons.ipynb", 4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    setup = next(c for c in code if "def study(" in c).replace("%matplotlib inline", "")
    flip = next(c for c in code if "TEMPLATE = " in c)
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(setup, env)  # noqa: S102 - the lecture's own cells
    exec(flip, env)  # noqa: S102
    final = env["final"]

    def median(name, trials):
        return float(np.median([v for _, v in final[name, trials]]))

    assert median("nesterov", 4) < median("heavy-ball", 4) / 10
    assert median("heavy-ball", 32) < median("nesterov", 4) / 10
    assert median("heavy-ball", 32) < median("nesterov", 32) / 10
