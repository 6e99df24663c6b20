"""The LMS route: submissions archives from Blackboard, Canvas or Moodle in, grade-centre CSVs out.

``zip_collect`` puts the archive where nbgrader's ``zip_collect`` looks (``downloaded/HW/archive/``) and runs it
with one of the collector plugins below (subclasses of nbgrader's ``FileNameCollectorPlugin``). nbgrader extracts
the archive, matches each file name, keeps the newest of duplicate files (by timestamp) and copies the result to
``submitted/<student>/HW/`` with a ``timestamp.txt`` (used by the late penalty). The plugins also write what they
decided to a log, from which the report lists unmatched files and duplicate resubmissions.

File-name patterns (as each LMS's "download all submissions" writes them)::

    Blackboard  <Assignment>_<username>_attempt_<YYYY-MM-DD-HH-MM-SS>_<file>.ipynb   (+ a receipt .txt per attempt)
    Canvas      <lastfirst>_[LATE_]<user id>_<submission id>_<file>[-<N>].ipynb      (-N: the N-th resubmission)
    Moodle      <Full Name>_<participant id>_assignsubmission_file_/<file>.ipynb     (or the same without "/")

Timestamps: Blackboard's come from the file name; Canvas and Moodle write none in the name, so the archive
member's modification time is used (Canvas's resubmission number breaks ties). Student ids: the roster CSV
(``--students``; columns ``student_id,first_name,last_name,email,lms_id[,role]``) maps ``lms_id`` -- the Blackboard
user name, the Canvas user id or the Moodle participant id -- to the course's student id. Without a roster the
Blackboard user name is the student id; Canvas and Moodle need one.

Grade CSVs (``write_grade_csv``), one row per student, one column per assignment, score after late penalty::

    blackboard  "Last Name","First Name","Username","<HW> [Total Pts: <max> Score]" ...   (Grade Center upload)
    canvas      "Student","ID","SIS User ID","SIS Login ID","Section","<HW>" ... and a "Points Possible" row
    moodle      "ID number","Email address","<HW>" ...    (Import > CSV file; map "ID number" to the user)
"""
from __future__ import annotations

import csv
import json
import os
import re
import shutil
import zipfile
from datetime import datetime
from pathlib import Path

from nbgrader.plugins import FileNameCollectorPlugin

__all__ = ["LMS_PATTERNS", "read_roster", "zip_collect", "format_zip_report", "write_grade_csv", "read_grade_csv",
           "BlackboardCollector", "CanvasCollector", "MoodleCollector"]

LMS_PATTERNS = {
    "blackboard": r".*/[^/]*_(?P<lms_id>[^_/]+)_attempt_(?P<timestamp>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)_"
                  r"(?P<file_id>[^/]+?)\.ipynb$",
    "canvas": r".*/(?P<name>[^/_]+)_(?:(?P<late>LATE)_)?(?P<lms_id>\d+)_(?P<submission_id>\d+)_"
              r"(?P<file_id>[^/]+?)(?:-(?P<resubmission>\d+))?\.ipynb$",
    "moodle": r".*/(?P<name>[^/_]+)_(?P<lms_id>\d+)_assignsubmission_(?:file|onlinetext)_/?(?P<file_id>[^/]+?)\.ipynb$",
}
_STATE_ENV = "COURSE_LMS_STATE"


def read_roster(path) -> list[dict]:
    """Rows of a roster CSV (``student_id`` required; ``first_name,last_name,email,lms_id,role`` optional)."""
    path = Path(path)
    if not path.exists():
        raise SystemExit(f"course: roster {path} not found (--students takes a CSV with a student_id column)")
    with open(path, newline="") as fh:
        rows = [{k.strip(): (v or "").strip() for k, v in r.items() if k} for r in csv.DictReader(fh)]
    if not rows or "student_id" not in rows[0]:
        raise SystemExit(f"course: roster {path} needs a header with a student_id column (and lms_id for an LMS)")
    return rows


class _Collector(FileNameCollectorPlugin):
    """Match with the LMS's pattern, map the LMS id through the roster, record the decision."""

    lms = ""

    def collect(self, submitted_file: str):
        state = json.loads(Path(os.environ[_STATE_ENV]).read_text())
        rel = os.path.relpath(submitted_file, state["extracted"])
        entry = {"file": rel}
        info = None
        if submitted_file.endswith(".ipynb"):
            m = re.match(LMS_PATTERNS[self.lms], submitted_file)
            if m is None:
                entry["reason"] = f"name does not follow the {self.lms} pattern"
            else:
                gd = m.groupdict()
                ids = state["roster"]
                student = ids.get(gd["lms_id"]) if ids else (gd["lms_id"] if self.lms == "blackboard" else None)
                if student is None:
                    entry["reason"] = f"{self.lms} id {gd['lms_id']!r} is not in the roster"
                else:
                    stamp = self.timestamp(gd, rel, state["times"])
                    info = {"student_id": student, "file_id": gd["file_id"] + ".ipynb", "timestamp": stamp}
                    entry.update(info)
        else:
            entry["reason"] = "not a notebook"
        with open(state["log"], "a") as fh:
            fh.write(json.dumps(entry) + "\n")
        return info

    def timestamp(self, gd: dict, rel: str, times: dict) -> str:
        """The archive member's modification time (ISO), plus the resubmission number in microseconds."""
        stamp = times.get(rel) or times.get(os.path.basename(rel)) or "1980-01-01T00:00:00"
        n = int(gd.get("resubmission") or 0)
        return (datetime.fromisoformat(stamp).replace(microsecond=n)).isoformat()


class BlackboardCollector(_Collector):
    lms = "blackboard"

    def timestamp(self, gd, rel, times):
        return datetime.strptime(gd["timestamp"], "%Y-%m-%d-%H-%M-%S").isoformat()


class CanvasCollector(_Collector):
    lms = "canvas"


class MoodleCollector(_Collector):
    lms = "moodle"


_PLUGINS = {"blackboard": BlackboardCollector, "canvas": CanvasCollector, "moodle": MoodleCollector}


def zip_collect(course, assignment: str, archive, lms: str = "blackboard", roster=None) -> dict:
    """nbgrader ``zip_collect`` of an LMS archive into submitted/<student>/HW (see the module docstring).

    Args:
        course: the course directory.
        assignment: e.g. "hw00_preliminaries".
        archive: the .zip the LMS exported.
        lms: "blackboard", "canvas" or "moodle".
        roster: roster CSV path mapping ``lms_id`` to ``student_id`` (required for canvas and moodle).
    Returns:
        {"collected": {student: [files]}, "unmatched": [{"file", "reason"}], "ignored": [files],
         "duplicates": [{"student", "notebook", "kept", "dropped"}]}
    """
    from .pipeline import _nbgrader

    course = Path(course).resolve()
    archive = Path(archive).resolve()
    if lms not in _PLUGINS:
        raise SystemExit(f"course: --lms must be one of {sorted(_PLUGINS)}; got {lms!r}")
    if not zipfile.is_zipfile(archive):
        raise SystemExit(f"course: --zip {archive} is not a zip archive; download the LMS's 'all submissions' zip.")
    if roster is None and lms != "blackboard":
        raise SystemExit(f"course: {lms} archives name students by LMS id: pass --students roster.csv "
                         "(columns student_id,lms_id).")
    ids = {r["lms_id"]: r["student_id"] for r in read_roster(roster) if r.get("lms_id")} if roster else {}
    base = course / "downloaded" / assignment
    shutil.rmtree(base / "archive", ignore_errors=True)
    (base / "archive").mkdir(parents=True)
    shutil.copy(archive, base / "archive" / archive.name)
    with zipfile.ZipFile(archive) as zf:
        times = {i.filename: datetime(*i.date_time).isoformat() for i in zf.infolist() if not i.is_dir()}
    log = base / "collect-log.jsonl"
    log.unlink(missing_ok=True)
    log.touch()
    state = base / "collect-state.json"
    state.write_text(json.dumps({"roster": ids, "times": times, "log": str(log),
                                 "extracted": str(base / "extracted" / archive.stem)}))
    plugin = f"{__name__}.{_PLUGINS[lms].__name__}"
    env_before = os.environ.get(_STATE_ENV)
    os.environ[_STATE_ENV] = str(state)
    try:
        _nbgrader(course, "zip_collect", assignment, "--force", "--strict",
                  f"--ZipCollectApp.collector_plugin={plugin}")
    finally:
        if env_before is None:
            os.environ.pop(_STATE_ENV, None)
        else:
            os.environ[_STATE_ENV] = env_before
    entries = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    return _report(entries, course, assignment)


def _report(entries: list[dict], course: Path, assignment: str) -> dict:
    released = {p.name for p in (course / "assignments" / assignment).glob("*.ipynb")}
    matched = [e for e in entries if "student_id" in e]
    unmatched = [e for e in entries if "reason" in e and e["reason"] != "not a notebook"]
    for e in list(matched):
        if released and e["file_id"] not in released:  # nbgrader --strict skips it
            matched.remove(e)
            unmatched.append({"file": e["file"], "reason": f"notebook name {e['file_id']!r} is not in the release "
                                                           f"({', '.join(sorted(released))})"})
    groups: dict = {}
    for e in sorted(matched, key=lambda e: e["file"]):  # nbgrader's order: sorted paths, newer-or-equal wins
        groups.setdefault((e["student_id"], e["file_id"]), []).append(e)
    collected, duplicates = {}, []
    for (student, nb), es in sorted(groups.items()):
        best = es[0]
        for e in es[1:]:
            if e["timestamp"] >= best["timestamp"]:
                best = e
        collected.setdefault(student, []).append(nb)
        if len(es) > 1:
            duplicates.append({"student": student, "notebook": nb, "kept": best["file"],
                               "dropped": [e["file"] for e in es if e is not best]})
    return {"collected": collected, "unmatched": unmatched, "duplicates": duplicates,
            "ignored": [e["file"] for e in entries if e.get("reason") == "not a notebook"]}


def format_zip_report(report: dict) -> str:
    """The zip-collect report as text: collected, duplicates (latest kept), unmatched, ignored."""
    lines = [f"collected {s:<20} {', '.join(nbs)}" for s, nbs in sorted(report["collected"].items())]
    for d in report["duplicates"]:
        lines.append(f"DUPLICATE {d['student']:<20} {d['notebook']}: kept the latest, {d['kept']}; "
                     f"dropped {', '.join(d['dropped'])}")
    for u in report["unmatched"]:
        lines.append(f"UNMATCHED {u['file']}: {u['reason']}")
    if report["ignored"]:
        lines.append(f"ignored {len(report['ignored'])} non-notebook file(s) (e.g. LMS receipts)")
    lines.append(f"{len(report['collected'])} student(s) collected, {len(report['duplicates'])} duplicate "
                 f"resubmission(s), {len(report['unmatched'])} unmatched file(s)")
    return "\n".join(lines)


def write_grade_csv(course, rows: list[dict], lms: str, roster=None, output=None) -> Path:
    """The grade-centre CSV of ``lms`` from ``export_grades`` rows (columns in the module docstring).

    Args:
        course: the course directory (default output: grades-<lms>.csv there).
        rows: nbgrader export rows (student_id, assignment, score, max_score, names, email).
        lms: "blackboard", "canvas" or "moodle".
        roster: optional roster CSV for names, e-mail and the LMS id (default: the student id).
        output: path of the CSV.
    Returns:
        The path written.
    """
    if lms not in _PLUGINS:
        raise SystemExit(f"course: --format must be one of {sorted(_PLUGINS)}; got {lms!r}")
    course = Path(course)
    people = {r["student_id"]: r for r in read_roster(roster)} if roster else {}
    hws = sorted({r["assignment"] for r in rows})
    max_of = {r["assignment"]: float(r["max_score"]) for r in rows}
    by_student: dict = {}
    for r in rows:
        by_student.setdefault(r["student_id"], {})[r["assignment"]] = float(r["score"])
    path = Path(output) if output else course / f"grades-{lms}.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, quoting=csv.QUOTE_ALL if lms == "blackboard" else csv.QUOTE_MINIMAL)
        if lms == "blackboard":
            w.writerow(["Last Name", "First Name", "Username"]
                       + [f"{h} [Total Pts: {max_of[h]:g} Score]" for h in hws])
        elif lms == "canvas":
            w.writerow(["Student", "ID", "SIS User ID", "SIS Login ID", "Section"] + hws)
            w.writerow(["Points Possible", "", "", "", ""] + [f"{max_of[h]:g}" for h in hws])
        else:
            w.writerow(["ID number", "Email address"] + hws)
        for s in sorted(by_student):
            p = people.get(s, {})
            scores = [f"{by_student[s][h]:g}" if h in by_student[s] else "" for h in hws]
            lms_id = p.get("lms_id") or s
            if lms == "blackboard":
                w.writerow([p.get("last_name", ""), p.get("first_name", ""), lms_id] + scores)
            elif lms == "canvas":
                name = f"{p.get('last_name', '')}, {p.get('first_name', '')}".strip(", ") or s
                w.writerow([name, lms_id, s, p.get("email", ""), ""] + scores)
            else:
                w.writerow([s, p.get("email", "")] + scores)
    return path


def read_grade_csv(path, lms: str) -> dict[tuple[str, str], float]:
    """Parse a grade CSV written by ``write_grade_csv`` back: {(LMS user key, assignment): score}.

    The user key is the Blackboard Username / Canvas ID / Moodle ID number column.
    """
    with open(path, newline="") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], rows[1:]
    key_col = {"blackboard": "Username", "canvas": "ID", "moodle": "ID number"}[lms]
    first = {"blackboard": 3, "canvas": 5, "moodle": 2}[lms]
    if lms == "canvas":
        body = [r for r in body if r[0] != "Points Possible"]
    names = [re.sub(r" \[Total Pts: .*\]$", "", h) for h in header[first:]]
    out = {}
    for r in body:
        for name, value in zip(names, r[first:]):
            if value != "":
                out[(r[header.index(key_col)], name)] = float(value)
    return out
