"""The benchmark harness runs and writes its results (no timing assertions: timings are not tests)."""
import json
import os
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root holds the benchmarks package

from benchmarks import __main__ as runner  # noqa: E402
from benchmarks import gd_logistic  # noqa: E402


def test_discovery_finds_modules_with_main():
    found = runner.discover()
    assert "gd_logistic" in found and all(callable(m.main) for m in found.values())


def test_unknown_benchmark_is_refused(capsys):
    with pytest.raises(SystemExit):
        runner.main(["--only", "no_such_benchmark"])
    assert "unknown benchmark(s) no_such_benchmark" in capsys.readouterr().err


def test_gd_logistic_quick_writes_json_and_markdown(tmp_path):
    argv = ["--only", "gd_logistic", "--quick", "--n", "3000", "--d", "40", "--repeats", "2", "--out", str(tmp_path)]
    assert runner.main(argv) == 0
    result = json.loads((tmp_path / "gd_logistic_quick.json").read_text())
    assert (result["n"], result["d"], result["quick"]) == (3000, 40, True)
    assert set(result["seconds"]) == {"course_lib", "numpy_loop", "course_lib_torch", "torch_plain"}
    assert all(t > 0 for t in result["seconds"].values())
    assert "course_lib / numpy_loop" in result["ratios"] and result["bandwidth_GBps"]["used"] > 0
    # the four variants compute the same GD iterate
    assert max(result["agreement_rel_max_diff_vs_numpy_loop"].values()) < 1e-10
    assert result["machine"]["numpy"] and result["machine"]["cores"] >= 1
    md = (tmp_path / "gd_logistic_quick.md").read_text()
    assert "| (b) hand-written NumPy loop |" in md and "bandwidth bound" in md
    assert gd_logistic.BEGIN not in md


def test_gd_tiny_quick_writes_json_and_markdown(tmp_path):
    assert runner.main(["--only", "gd_tiny", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "gd_tiny_quick.json").read_text())
    assert (result["iters"], result["repeats"], result["quick"]) == (2000, 3, True)
    assert set(result["us_per_iter_cpu"]) == {"course_lib", "numpy_loop"}
    assert all(len(v) == 3 for v in result["samples_us_wall"].values())
    # the library's run and the bare loop take the same steps: the same f, gradient norms and iterates
    assert max(result["agreement_max_abs_diff"].values()) < 1e-12
    assert result["machine"]["load_before"] and result["machine"]["load_after"]
    md = (tmp_path / "gd_tiny_quick.md").read_text()
    assert "| (b) bare NumPy loop recording the same |" in md and "Load average" in md


def test_readme_section_is_replaced_between_its_markers(tmp_path):
    from benchmarks._readme import markers, update_readme

    begin, end = markers("demo")
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{begin}\nold table\n{end}\noutro\n")
    assert update_readme("demo", "new table\n", readme)
    assert readme.read_text() == f"intro\n{begin}\nnew table\n{end}\noutro\n"
    assert not update_readme("other", "x", readme)  # no markers for "other": nothing written
    assert readme.read_text() == f"intro\n{begin}\nnew table\n{end}\noutro\n"


@pytest.mark.slow
def test_grading_quick_grades_alike_and_records_the_cores_each_variant_kept_busy(tmp_path):
    assert runner.main(["--only", "grading", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "grading_quick.json").read_text())
    assert (result["submissions"], result["rounds"], result["quick"]) == (4, 1, True)
    assert result["scores_disagreeing_with_plain_nbgrader"] == []  # real nbgrader and both pipelines agree
    for variant in ("nbgrader", "course_jobs1", "course_jobs2"):
        assert 0 < result["cpu_s_per_submission"][variant]
        assert 0 < result["cores_busy"][variant] <= os.cpu_count() + 0.05
        assert result["steal_s"][variant] >= 0
    assert [run["variant"] for run in result["runs"]] == ["nbgrader", "course_jobs1", "course_jobs2"]
    md = (tmp_path / "grading_quick.md").read_text()
    assert "cores kept busy" in md and "Scores differing from plain nbgrader's: 0 of 4." in md
