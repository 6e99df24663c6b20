"""course_lib.progress: a tqdm bar on a terminal, one line per finished item in a log, a summary at the end."""
from __future__ import annotations

import io

import pytest

from course_lib.progress import Progress, status_kind, summary_line


def test_log_mode_prints_one_line_per_item_and_a_summary():
    out = io.StringIO()  # not a TTY
    with Progress(3, "autograde hw00", unit="submission", stream=out) as bar:
        bar.done("alice", "graded", "13 / 16")
        bar.done("corrupt", "failed", "corrupt notebook")
        bar.done("john smith", "skipped")
    lines = out.getvalue().splitlines()
    assert len(lines) == 4
    assert lines[0].startswith("[1/3 ") and lines[0].endswith("alice: graded 13 / 16")
    assert lines[2].endswith("john smith: skipped")
    assert lines[3].startswith("autograde hw00: 1 graded, 1 failed, 1 skipped in ")
    assert lines[3].endswith("s per submission)")
    assert bar.failures == [("corrupt", "failed", "corrupt notebook")]


def test_tty_mode_draws_a_tqdm_bar_with_count_rate_and_eta():
    out = io.StringIO()
    with Progress(4, "check hw01", unit="mutant", stream=out, tty=True) as bar:
        bar.done("batch", "graded", count=2)
        bar.done("batch", "error", "runner failed", count=2)
    text = out.getvalue()
    assert "check hw01" in text and "4/4" in text and "mutant/s" in text and "<" in text  # elapsed<remaining
    assert "batch: error runner failed" in text  # failures are written above the bar
    assert text.rstrip().splitlines()[-1].startswith("check hw01: 2 graded, 2 failed, 0 skipped")


def test_no_summary_when_the_block_raises():
    out = io.StringIO()
    with pytest.raises(RuntimeError):
        with Progress(2, "x", stream=out):
            raise RuntimeError
    assert "graded" not in out.getvalue()


@pytest.mark.parametrize("status,kind", [("graded", "graded"), ("graded; cells missing: a", "graded"),
                                         ("skipped", "skipped"), ("failed: corrupt notebook", "failed"),
                                         ("error", "failed"), ("weird", "failed")])
def test_status_kind(status, kind):
    assert status_kind(status) == kind


def test_summary_line_rate_counts_only_finished_work():
    assert summary_line("demo", {"graded": 3, "failed": 1, "skipped": 6}, 40.0, "submission") == (
        "demo: 3 graded, 1 failed, 6 skipped in 40 s (10.0 s per submission)")
    assert summary_line("demo", {"skipped": 2}, 1.0) == "demo: 0 graded, 0 failed, 2 skipped in 1 s"


def test_check_progress_adapter_counts_mutant_batches():
    from course_lib.cli_support import check_progress

    out = io.StringIO()
    progress = check_progress("hw00", stream=out)
    progress("hw00 mutants", 40, 97)
    progress("hw00 mutants", 57, 97)
    progress.close()
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[40/97 ") and lines[1].startswith("[97/97 ")
    assert lines[2].startswith("check hw00: hw00 mutants: 97 graded in ")


def test_jobs_type_rejects_zero_and_negatives():
    import argparse

    from course_lib.cli_support import positive_int

    assert positive_int("3") == 3
    for bad in ("0", "-3", "two", "1.5"):
        with pytest.raises(argparse.ArgumentTypeError, match=">= 1"):
            positive_int(bad)


@pytest.mark.parametrize("tty", [False, True])
def test_time_counts_from_the_given_start(tty):
    import time

    out = io.StringIO()
    with Progress(1, "check", stream=out, tty=tty, start=time.monotonic() - 30) as bar:
        bar.done("batch", "graded")
    assert out.getvalue().rstrip().splitlines()[-1].startswith("check: 1 graded, 0 failed, 0 skipped in 30 s")
    if tty:
        assert "00:30" in out.getvalue()  # tqdm's elapsed time
