"""The gradebook's schema revision without alembic's subprocess (course_lib.grading.gradebook_schema)."""
from __future__ import annotations

import os
import sqlite3
import sys

from course_lib.grading.gradebook_schema import alembic_head, recorded_version, stamp_new_sqlite


def _schema(db) -> tuple[list, list]:
    with sqlite3.connect(db) as con:
        tables = sorted(con.execute("SELECT name, sql FROM sqlite_master WHERE type IN ('table', 'index')"))
        version = con.execute("SELECT version_num FROM alembic_version").fetchall()
    return tables, version


def test_the_head_read_from_the_scripts_is_what_alembic_heads_says(monkeypatch):
    from nbgrader.api import get_alembic_version

    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    assert alembic_head() == get_alembic_version()  # nbgrader's own `alembic heads` subprocess


def test_a_stamped_new_gradebook_is_the_gradebook_nbgrader_makes_alone(tmp_path, monkeypatch):
    from nbgrader import api

    monkeypatch.setenv("PATH", os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", ""))
    alone, stamped = tmp_path / "alone.db", tmp_path / "stamped.db"
    api.Gradebook(f"sqlite:///{alone}", course_id="c").close()  # nbgrader runs `alembic heads` itself
    stamped.touch()  # what `course autograde` leaves before it stamps: an empty file
    assert stamp_new_sqlite(stamped, alembic_head())
    calls = []
    monkeypatch.setattr(api, "get_alembic_version", lambda: calls.append(1) or "never used")
    api.Gradebook(f"sqlite:///{stamped}", course_id="c").close()
    assert calls == []  # the subprocess was skipped
    assert _schema(stamped) == _schema(alone)
    assert recorded_version(f"sqlite:///{stamped}") == alembic_head()


def test_a_gradebook_with_tables_is_never_restamped(tmp_path):
    db = tmp_path / "gradebook.db"
    with sqlite3.connect(db) as con:
        con.execute("CREATE TABLE grade (id TEXT)")
    assert not stamp_new_sqlite(db, "e43177bfe90b")
    assert not stamp_new_sqlite(tmp_path / "other.db", None)
    assert recorded_version(f"sqlite:///{db}") is None  # tables but no version: nbgrader decides
    assert recorded_version(f"sqlite:///{tmp_path / 'missing.db'}") is None
    assert not (tmp_path / "missing.db").exists()
