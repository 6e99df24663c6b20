"""Progress of long commands: a tqdm bar on a terminal, one line per finished item in a log, and a summary.

Used by ``course autograde``, ``course check`` and ``course demo`` (and reusable by any long loop)::

    with Progress(total=len(students), desc="autograde hw01", unit="submission") as bar:
        for result in results_as_they_finish:
            bar.done(result["student"], result["status"], f"{result['score']:g} / {result['max_score']:g}")
    # on exit: "autograde hw01: 5 graded, 1 failed, 0 skipped in 37 s (7.4 s per submission)"

On a TTY the bar shows count, rate and ETA (tqdm); otherwise (CI, ``make demo > log``) each finished
item prints one line ``[3/7 21s] carol: graded 13 / 16`` (21 s since the start). Bar, lines and summary go to stderr
unless ``stream`` says otherwise, so a command's result on stdout stays clean to parse.
"""
from __future__ import annotations

import sys
import time
from collections import Counter

from tqdm import tqdm

__all__ = ["Progress", "summary_line", "status_kind"]

KINDS = ("graded", "failed", "skipped")


def status_kind(status: str) -> str:
    """Which summary bucket a status belongs to: "graded", "failed" or "skipped" (anything else is failed).

    "error", "failed: corrupt notebook" and the like count as failed; "passed"/"ok"/"caught"/"survived"
    count as graded (a result was obtained).
    """
    head = str(status).split(":")[0].split(";")[0].strip().lower()
    if head in ("graded", "passed", "ok", "done", "caught", "survived"):
        return "graded"
    if head == "skipped":
        return "skipped"
    return "failed"


def summary_line(desc: str, counts: Counter | dict, seconds: float, unit: str = "item") -> str:
    """``"<desc>: 5 graded, 1 failed, 0 skipped in 37 s (7.4 s per submission)"``."""
    counts = Counter(counts)
    parts = ", ".join(f"{counts.get(k, 0)} {k}" for k in KINDS)
    done = counts.get("graded", 0) + counts.get("failed", 0)
    rate = f" ({seconds / done:.1f} s per {unit})" if done else ""
    return f"{desc}: {parts} in {seconds:.0f} s{rate}"


class Progress:
    """Report items of a long command as they finish.

    Args:
        total: the number of items expected.
        desc: what is being done (the bar's label and the summary's start), e.g. "autograde hw01".
        unit: what one item is ("submission", "mutant").
        stream: where to write (default ``sys.stderr``).
        tty: force the bar (True) or the one-line-per-item log (False); default: ``stream.isatty()``.
        summary: print the summary line when the block ends.
        start: ``time.monotonic()`` at which the work began, if before this object was made (default: now).
    Attributes:
        counts: Counter of "graded"/"failed"/"skipped" so far.
        failures: [(label, status, detail)] of the items that failed, for the caller's report.
    """

    def __init__(self, total: int, desc: str, unit: str = "item", stream=None, tty: bool | None = None,
                 summary: bool = True, start: float | None = None):
        self.total, self.desc, self.unit = int(total), desc, unit
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)()) if tty is None else bool(tty)
        self.print_summary = summary
        self.counts: Counter = Counter()
        self.failures: list[tuple[str, str, str]] = []
        self.n = 0
        self.start = time.monotonic() if start is None else float(start)
        self.bar = (tqdm(total=self.total, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True,
                         bar_format="{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]{postfix}")
                    if self.tty else None)
        if self.bar is not None and start is not None:  # tqdm's clock is time.time()
            self.bar.start_t -= time.monotonic() - self.start

    def done(self, label: str, status: str, detail: str = "", count: int = 1) -> None:
        """One item (or ``count`` items of a batch) finished with ``status``; ``detail`` is shown after it."""
        now = time.monotonic()
        kind = status_kind(status)
        self.counts[kind] += count
        self.n += count
        if kind == "failed":
            self.failures.append((label, status, detail))
        if self.bar is not None:
            self.bar.set_postfix_str(", ".join(f"{self.counts[k]} {k}" for k in KINDS if self.counts[k]),
                                     refresh=False)
            self.bar.update(count)
            if kind == "failed":
                self.bar.write(f"  {label}: {status} {detail}".rstrip(), file=self.stream)
        else:
            width = len(str(self.total))
            text = f"[{self.n:>{width}}/{self.total} {now - self.start:.0f}s] {label}: {status}"
            if detail:
                text += f" {detail}"
            print(text, file=self.stream, flush=True)

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def summary(self) -> str:
        """The summary line (counts and time so far)."""
        return summary_line(self.desc, self.counts, self.elapsed, self.unit)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
        if self.print_summary and exc[0] is None:
            print(self.summary(), file=self.stream, flush=True)
