"""The gradebook's rollback journal stays one file during a grading run (course_lib.grading.gradebook_journal).

Real SQLite files, nbgrader's own Gradebook API and real `nbgrader` processes. "The same file" is checked on a
descriptor held open from before the writes: a removed file has no link left (st_nlink 0) even where a new
file of the same name appears. The whole run (a sandbox covering the journal while other submissions are
merged) is checked in tests/test_tamper.py.
"""
from __future__ import annotations

import os
import sqlite3
import subprocess
import sys

import pytest
from nbgrader.api import Gradebook

from course_lib.grading import gradebook_journal
from course_lib.grading.gradebook_journal import apply, journal_path, kept
from course_lib.grading.gradebook_schema import alembic_head, stamp_new_sqlite
from course_lib.grading.sandbox import python_module


def _hold(path) -> int:
    return os.open(path, os.O_RDONLY)


def _gone(fd) -> bool:
    """Whether the file held by ``fd`` was removed (it has no name left)."""
    return os.fstat(fd).st_nlink == 0


def _add_students(db, *names):
    stamp_new_sqlite(db, alembic_head())  # a new file: stamped without nbgrader's `alembic heads` subprocess
    with Gradebook(f"sqlite:///{db}", "course101") as gb:
        for name in names:
            gb.update_or_create_student(name)


def test_a_gradebook_write_empties_the_kept_journal_where_sqlite_alone_removes_it(tmp_path):
    db = tmp_path / "gradebook.db"
    _add_students(db, "setup")  # nbgrader creates the tables
    journal = journal_path(db)
    assert journal == tmp_path / "gradebook.db-journal" and not journal.exists()  # SQLite's default: removed

    with kept(db) as made:
        assert made == journal and journal.exists() and journal.stat().st_size == 0  # before any sandbox starts
        fd = _hold(journal)
        try:
            _add_students(db, "alice", "bob")
            _add_students(db, "carol")
            assert not _gone(fd) and os.path.samestat(os.fstat(fd), os.stat(journal))
            assert os.fstat(fd).st_size == 0  # emptied at each commit
        finally:
            os.close(fd)
    with Gradebook(f"sqlite:///{db}", "course101") as gb:
        assert sorted(s.id for s in gb.students) == ["alice", "bob", "carol", "setup"]

    fd = _hold(journal)  # after the run, other writers are left in SQLite's default mode
    try:
        _add_students(db, "dave")
        assert _gone(fd) and not journal.exists()
    finally:
        os.close(fd)


def test_only_the_kept_gradebook_changes_mode_and_wal_is_left_alone(tmp_path):
    kept_db, other, wal = tmp_path / "kept.db", tmp_path / "other.db", tmp_path / "wal.db"
    with sqlite3.connect(wal) as conn:
        assert conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal"
    with kept(kept_db), kept(wal):
        for path, mode in ((kept_db, "truncate"), (other, "delete"), (wal, "wal")):
            conn = sqlite3.connect(path)
            try:
                assert apply(conn) == (path == kept_db)
                assert conn.execute("PRAGMA journal_mode").fetchone()[0] == mode, path
            finally:
                conn.close()
        with kept(kept_db):  # nested: the inner block does not end the outer one's keeping
            pass
        conn = sqlite3.connect(kept_db)
        assert apply(conn)
        conn.close()
    conn = sqlite3.connect(kept_db)
    assert not apply(conn) and conn.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    conn.close()
    with kept(None) as nothing:  # a PostgreSQL gradebook: no file, nothing to keep
        assert nothing is None


def test_a_write_cut_off_with_the_kept_journal_is_rolled_back_like_sqlites_default(tmp_path):
    """TRUNCATE keeps SQLite's crash safety: a process killed inside a transaction leaves a journal with
    content, and the next connection rolls the half-written transaction back."""
    db = tmp_path / "gradebook.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE grade (student TEXT, score REAL)")
        conn.executemany("INSERT INTO grade VALUES (?, ?)", [(f"s{i}", float(i)) for i in range(20000)])
    cut = f"""
import os, sqlite3
from course_lib.grading.gradebook_journal import apply, kept
with kept({str(db)!r}):
    conn = sqlite3.connect({str(db)!r})
    conn.execute("PRAGMA cache_size=10")  # a small cache: changed pages reach the file before the commit
    assert apply(conn)
    conn.execute("UPDATE grade SET score = -1")
    os._exit(0)  # killed before COMMIT
"""
    subprocess.run([sys.executable, "-c", cut], check=True, timeout=60)
    assert journal_path(db).stat().st_size > 0  # a hot journal: the old pages
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*), min(score) FROM grade").fetchone() == (20000, 0.0)
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def _nbgrader_student_add(course, name, keep=None):
    args = ["db", "student", "add", name, f"--CourseDirectory.root={course}"]
    argv = (python_module("course_lib.grading.gradebook_journal", keep, "nbgrader", *args) if keep
            else python_module("nbgrader", *args))
    return subprocess.run(argv, cwd=course, capture_output=True, text=True, timeout=120)


def test_nbgrader_run_through_the_module_keeps_the_journal_and_exits_as_nbgrader(tmp_path):
    course = tmp_path / "course"
    course.mkdir()
    (course / "nbgrader_config.py").write_text("c = get_config()\nc.CourseDirectory.course_id = 'course101'\n")
    db = course / "gradebook.db"
    _add_students(db, "setup")
    journal = journal_path(db)
    journal.touch()
    fd = _hold(journal)
    try:
        proc = _nbgrader_student_add(course, "alice", keep=db)
        assert proc.returncode == 0, proc.stderr
        assert not _gone(fd)
        proc = _nbgrader_student_add(course, "bob")  # nbgrader alone: SQLite's default removes the file
        assert proc.returncode == 0, proc.stderr
        assert _gone(fd)
    finally:
        os.close(fd)
    with Gradebook(f"sqlite:///{db}", "course101") as gb:
        assert sorted(s.id for s in gb.students) == ["alice", "bob", "setup"]
    args = ["db", "student", "remove", "nobody", f"--CourseDirectory.root={course}"]  # nbgrader: exit 1
    through = subprocess.run(python_module("course_lib.grading.gradebook_journal", db, "nbgrader", *args),
                             cwd=course, capture_output=True, text=True, timeout=120)
    alone = subprocess.run(python_module("nbgrader", *args), cwd=course, capture_output=True, text=True, timeout=120)
    assert through.returncode == alone.returncode == 1, (through.stderr, alone.stderr)


def test_the_module_needs_a_database_and_a_module():
    with pytest.raises(SystemExit, match="usage"):
        gradebook_journal.main(["gradebook.db"])
