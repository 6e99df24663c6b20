"""The LMS route: nbgrader zip_collect of Blackboard/Canvas/Moodle archives, grade CSVs, late penalties."""
from __future__ import annotations

import csv
import subprocess
import sys
import zipfile

import nbformat
import pytest

from course_lib.grading.late import penalty_share
from course_lib.grading.lms import read_grade_csv, zip_collect
from tests.coursedir import REPO, make_course

HW = "hw00_preliminaries"
NB = f"{HW}.ipynb"


def course_cli(course, *args, timeout=900):
    proc = subprocess.run([sys.executable, "-m", "course_lib.cli", *args, "--course-dir", str(course)],
                          capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout


def notebook_bytes(student: str, attempt: str) -> bytes:
    nb = nbformat.read(REPO / "examples" / "submissions" / student / HW / NB, 4)
    nb.metadata["attempt"] = attempt
    return nbformat.writes(nb).encode()


def write_zip(path, members):
    """members: (name, bytes, (Y, M, D, h, m, s)) -> a zip as the LMS writes it."""
    with zipfile.ZipFile(path, "w") as zf:
        for name, data, when in members:
            zf.writestr(zipfile.ZipInfo(name, date_time=when), data)
    return path


def write_roster(path, rows):
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["student_id", "first_name", "last_name", "email", "lms_id"])
        w.writeheader()
        w.writerows(rows)
    return path


ROSTER = [
    {"student_id": "alice", "first_name": "Alice", "last_name": "Liddell", "email": "alice@uni.example",
     "lms_id": "101"},
    {"student_id": "bob", "first_name": "Bob", "last_name": "Builder", "email": "bob@uni.example", "lms_id": "102"},
]
EARLY, LATE = (2026, 3, 1, 10, 0, 0), (2026, 3, 2, 9, 30, 0)


def archive_members(lms: str):
    """Each LMS's names: alice twice (an older and a newer attempt), bob once, one stray notebook, one receipt."""
    a_old, a_new, b = notebook_bytes("alice", "old"), notebook_bytes("alice", "new"), notebook_bytes("bob", "only")
    if lms == "blackboard":  # the user name is the LMS id here
        return [(f"HW 0_101_attempt_2026-03-01-10-00-00_{NB}", a_old, EARLY),
                (f"HW 0_101_attempt_2026-03-02-09-30-00_{NB}", a_new, LATE),
                ("HW 0_101_attempt_2026-03-02-09-30-00.txt", b"receipt", LATE),
                (f"HW 0_102_attempt_2026-03-01-11-00-00_{NB}", b, EARLY),
                ("notes_from_someone.ipynb", b, EARLY)]
    if lms == "canvas":
        return [(f"liddellalice_101_9001_{NB}", a_old, EARLY),
                (f"liddellalice_LATE_101_9002_{HW}-1.ipynb", a_new, LATE),
                (f"builderbob_102_9003_{NB}", b, EARLY),
                (f"strangerdanger_999_9004_{NB}", b, EARLY)]
    return [(f"Alice Liddell_101_assignsubmission_file_{NB}", a_old, EARLY),  # flat download
            (f"Alice Liddell_101_assignsubmission_file_/{NB}", a_new, LATE),  # "in folders" download
            (f"Bob Builder_102_assignsubmission_file_/{NB}", b, EARLY),
            ("Bob Builder_102_assignsubmission_file_/scratch.ipynb", b, EARLY)]


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    course = make_course(tmp_path_factory.mktemp("lms") / "course", [HW])
    course_cli(course, "release", HW, "--no-publish")
    return course


def test_penalty_share_closed_form():
    day = 86400
    assert penalty_share(0, 0.1) == 0.0 and penalty_share(-5, 0.1) == 0.0
    assert penalty_share(1, 0.1) == pytest.approx(0.1)  # a started day counts
    assert penalty_share(day, 0.1) == pytest.approx(0.1)
    assert penalty_share(day + 1, 0.1) == pytest.approx(0.2)
    assert penalty_share(30 * day, 0.1) == 1.0  # never more than the score
    assert penalty_share(2 * day, 0.0, cutoff_days=3) == 0.0
    assert penalty_share(3 * day + 1, 0.0, cutoff_days=3) == 1.0
    with pytest.raises(ValueError, match="late_penalty_per_day"):
        penalty_share(day, 1.5)


@pytest.mark.slow
@pytest.mark.parametrize("lms", ["blackboard", "canvas", "moodle"])
def test_zip_collect_per_lms(released, tmp_path, lms):
    """nbgrader's zip_collect with each LMS's names: latest attempt wins and is reported; strays are reported."""
    archive = write_zip(tmp_path / f"{lms}-submissions.zip", archive_members(lms))
    roster = write_roster(tmp_path / "roster.csv", ROSTER)
    report = zip_collect(released, HW, archive, lms=lms, roster=roster)
    assert report["collected"] == {"alice": [NB], "bob": [NB]}
    assert len(report["duplicates"]) == 1
    dup = report["duplicates"][0]
    assert dup["student"] == "alice" and len(dup["dropped"]) == 1
    got = nbformat.read(released / "submitted" / "alice" / HW / NB, 4)
    assert got.metadata["attempt"] == "new", "the latest resubmission must win"
    assert nbformat.read(released / "submitted" / "bob" / HW / NB, 4).metadata["attempt"] == "only"
    assert len(report["unmatched"]) == 1, report["unmatched"]
    stamp = (released / "submitted" / "alice" / HW / "timestamp.txt").read_text()
    assert stamp.startswith("2026-03-02 09:30:00"), stamp
    # the CLI prints the same report
    out = course_cli(released, "collect", HW, "--zip", str(archive), "--lms", lms, "--students", str(roster))
    assert "DUPLICATE alice" in out and "UNMATCHED" in out and "2 student(s) collected" in out


@pytest.mark.slow
def test_late_penalty_and_lms_grade_csvs(tmp_path):
    """Blackboard archive -> autograde: bob, under a day late, loses exactly 10 %; manual scores untouched;
    the three LMS grade CSVs parse back to nbgrader's grade table."""
    course = make_course(tmp_path / "course", [HW])
    toml = (course / "grading.toml").read_text().replace(
        f"[{HW}]\n", f"[{HW}]\ndue = 2026-03-01T10:30:00Z\nlate_penalty_per_day = 0.1\nlate_cutoff_days = 3\n", 1)
    (course / "grading.toml").write_text(toml)
    course_cli(course, "release", HW, "--no-publish")
    members = [(f"HW 0_alice_attempt_2026-03-01-10-00-00_{NB}", notebook_bytes("alice", "1"), EARLY),
               (f"HW 0_bob_attempt_2026-03-02-09-00-00_{NB}", notebook_bytes("bob", "1"), EARLY)]
    zip_collect(course, HW, write_zip(tmp_path / "bb.zip", members), lms="blackboard")
    course_cli(course, "autograde", HW)
    from nbgrader.api import Gradebook

    url = f"sqlite:///{course / 'gradebook.db'}"
    with Gradebook(url, "optimization-for-ai") as gb:
        alice, bob = gb.find_submission(HW, "alice"), gb.find_submission(HW, "bob")
        assert alice.late_submission_penalty == 0.0
        assert bob.total_seconds_late == pytest.approx(23 * 3600 - 1800)
        assert bob.late_submission_penalty == pytest.approx(0.1 * 5.0)  # bob's autograded score is 5
        grade = gb.find_grade("written_step_size", HW, HW, "bob")
        grade.manual_score = 2.0  # the TA grades the written answer in formgrader
        gb.db.commit()
    out = course_cli(course, "grades", "--format", "canvas")
    with Gradebook(url, "optimization-for-ai") as gb:
        bob = gb.find_submission(HW, "bob")
        assert gb.find_grade("written_step_size", HW, HW, "bob").manual_score == 2.0
        assert bob.score == pytest.approx(7.0)
        assert bob.late_submission_penalty == pytest.approx(0.7)  # recomputed on the current score
    assert "6.3 / 16 (late -0.7)" in out
    rows = list(csv.DictReader(open(course / "grades.csv")))
    table = {(r["student_id"], r["assignment"]): float(r["score"]) for r in rows}
    assert table == {("alice", HW): 13.0, ("bob", HW): pytest.approx(6.3)}
    roster = write_roster(tmp_path / "roster.csv", [dict(ROSTER[0], lms_id="alice"), dict(ROSTER[1], lms_id="bob")])
    for lms in ("blackboard", "canvas", "moodle"):
        course_cli(course, "grades", "--format", lms, "--students", str(roster))
        back = read_grade_csv(course / f"grades-{lms}.csv", lms)
        assert back == pytest.approx(table), lms
