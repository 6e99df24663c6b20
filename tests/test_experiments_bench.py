"""The experiments benchmark runs and writes its results (timings are recorded, never asserted)."""
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repo root holds the benchmarks package

from benchmarks import __main__ as runner  # noqa: E402


@pytest.mark.slow
def test_experiments_benchmark_quick_writes_json_and_markdown(tmp_path):
    assert "experiments" in runner.discover()
    assert runner.main(["--only", "experiments", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "experiments_quick.json").read_text())
    ov, par = result["overhead"], result["parallel"]
    assert set(ov["median_s"]) == {"direct", "harness_exact", "harness_log_every"}
    assert all(len(v) == ov["repeats"] for v in ov["seconds"].values())
    assert par["runs"] == 20 and par["speedup_jobs2"] > 0 and result["machine"]["load_before"]
    md = (tmp_path / "experiments_quick.md").read_text()
    assert "| jobs=2 (2 spawned workers) |" in md and "Load average" in md
