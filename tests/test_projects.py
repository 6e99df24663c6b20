"""course_lib.projects: `course project new` makes a team repository whose `make reproduce` reruns a (tiny) study
and rebuilds the report's figures; `course project review`; the kits' shape; bad input gets one clear line."""
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from course_lib import projects
from course_lib.cli import main
from course_lib.validation import CourseError

REPO = Path(__file__).resolve().parents[1]
PY = sys.executable

TINY_STUDY = """
[study]
name = "tiny"
seeds = 2
baseline = "sgd"
[study.budget]
unit = "gradients"
amount = 12
[study.tuning]
trials = 1

[[workload]]
name = "softmax-digits"
factory = "course_lib.kit_workloads:softmax_regression"
args = { eval_every = 4 }
metric = "val_loss"
target = 2.0

[[method]]
name = "sgd"
kind = "optimizer"
target = "torch.optim.SGD"
fixed = { lr = 0.1 }
tune = false

[[method]]
name = "team"
kind = "optimizer"
target = "src.team_methods:sgd_with_momentum"
fixed = { lr = 0.1 }
tune = false
"""


def test_kits_are_listed_and_follow_the_documented_shape():
    topics = projects.list_topics()
    assert {"adam_variants", "sam_variants"} <= set(topics)
    for t in topics:
        files = projects.check_kit(t)
        headings = re.findall(r"^## .+$", files["README.md"].read_text(), re.M)
        for heading in ("## What a strong project measures", "## Reading list",
                        "## The finding the notebook reproduces"):
            assert any(h.startswith(heading) for h in headings), f"{t}: README lacks {heading!r} (docs/PROJECTS.md)"


def test_new_project_creates_a_committed_repository(tmp_path):
    dest = projects.new_project(tmp_path / "team", "adam_variants", "Falcons")
    for rel in ("README.md", "KIT.md", "study.toml", "full.toml", "src/__init__.py", "src/team_methods.py",
                "results/.gitkeep", "report/report.md", "report/figures/.gitkeep", "slides.ipynb", "Makefile",
                "adam_variants.ipynb", "tests/test_team_methods.py"):
        assert (dest / rel).is_file(), rel
    res = subprocess.run([PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=dest, capture_output=True,
                         text=True, timeout=300, env=dict(os.environ, PYTHONPATH=f"{dest}{os.pathsep}{REPO}"))
    assert res.returncode == 0, res.stdout[-1500:]  # the team's example test passes out of the box
    assert "Reproducibility checklist" in (dest / "README.md").read_text()
    report = (dest / "report" / "report.md").read_text()
    assert [h.split(" (")[0] for h in re.findall(r"^## (.+)$", report, re.M)] == \
        ["Problem setup", "Methods", "Experimental design", "Results", "Analysis", "Limitations", "Takeaways"]
    assert sum(p for _, p in projects.REPORT_SECTIONS) == 7
    assert 'name = "falcons-adam_variants"' in (dest / "study.toml").read_text()
    slides = nbformat.read(dest / "slides.ipynb", 4)
    nbformat.validate(slides)
    assert all(c.metadata["slideshow"]["slide_type"] in ("slide", "subslide") for c in slides.cells)
    log = subprocess.run(["git", "log", "--oneline"], cwd=dest, capture_output=True, text=True, check=True).stdout
    assert len(log.splitlines()) == 1 and "adam_variants" in log
    status = subprocess.run(["git", "status", "--porcelain"], cwd=dest, capture_output=True, text=True).stdout
    assert status == ""  # everything is in the first commit


@pytest.mark.slow
def test_make_reproduce_runs_the_study_and_rebuilds_the_figures(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    dest = projects.new_project(tmp_path / "team", "sam_variants", "owls")
    (dest / "study.toml").write_text(TINY_STUDY)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    res = subprocess.run(["make", "reproduce", f"PYTHON={PY}", "JOBS=0"], cwd=dest, env=env, capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-2000:]
    runs = [json.loads(line) for line in (dest / "results" / "study" / "runs.jsonl").read_text().splitlines()]
    assert len(runs) == 4 and {r["status"] for r in runs} == {"ok"}  # 2 methods x 2 final seeds, no tuning
    assert {r["method"] for r in runs} == {"sgd", "team"}  # the team's own method from src/ ran
    figures = dest / "report" / "figures"
    assert (figures / "curves_softmax-digits.png").stat().st_size > 1000
    assert "softmax-digits" in (figures / "results.md").read_text()
    # figures are rebuilt from the stored results (nothing is recomputed)
    (figures / "curves_softmax-digits.png").unlink()
    res = subprocess.run(["make", "figures", f"PYTHON={PY}"], cwd=dest, env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert (figures / "curves_softmax-digits.png").is_file()
    assert len((dest / "results" / "study" / "runs.jsonl").read_text().splitlines()) == 4


def test_review_notebook_has_the_journal_club_sections(tmp_path):
    path = projects.new_review(tmp_path / "jc", "Sharpness-Aware Minimization for Efficiently Improving "
                                                "Generalization", presenters="A. and B.")
    nb = nbformat.read(path, 4)
    nbformat.validate(nb)
    heads = [c.source.splitlines()[0] for c in nb.cells]
    assert heads[0].startswith("# Sharpness-Aware Minimization")
    assert heads[1:] == ["## Motivation", "## Approach", "## Main results", "## Critical review", "## Questions"]
    assert sum(m for _, m in projects.REVIEW_SECTIONS) == 18
    res = subprocess.run([PY, "-m", "jupyter", "nbconvert", "--to", "slides", str(path)], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-1000:]
    assert path.with_suffix(".slides.html").is_file()


def test_unknown_topic_lists_the_known_ones(tmp_path, capsys):
    with pytest.raises(CourseError, match=r"unknown topic 'quantum'; the kits are: .*adam_variants.*sam_variants"):
        projects.new_project(tmp_path / "x", "quantum", "t")
    assert main(["project", "new", str(tmp_path / "x"), "--topic", "quantum", "--team", "t"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("course project: unknown topic 'quantum'")
    assert not (tmp_path / "x").exists()


def test_existing_non_empty_folder_is_refused(tmp_path, capsys):
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    assert main(["project", "new", str(tmp_path / "busy"), "--topic", "adam_variants", "--team", "t"]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "busy").iterdir()) == ["notes.txt"]
    assert main(["project", "review", str(tmp_path / "busy"), "--paper", "X"]) == 2
    (tmp_path / "empty").mkdir()
    assert main(["project", "new", str(tmp_path / "empty"), "--topic", "adam_variants", "--team", "t",
                 "--no-git"]) == 0
    assert not (tmp_path / "empty" / ".git").exists()


@pytest.mark.parametrize("kw,match", [
    (dict(team="  "), "team must be a non-empty name"),
    (dict(team="!!!"), "has no letters or digits"),
    (dict(team="a", study="huge"), "study must be 'starter' or 'full'"),
])
def test_bad_arguments(tmp_path, kw, match):
    with pytest.raises(CourseError, match=match):
        projects.new_project(tmp_path / "x", "adam_variants", **kw)
    with pytest.raises(CourseError, match="--paper must be"):
        projects.new_review(tmp_path / "y", " ")
