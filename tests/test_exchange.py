"""One-machine exchange helpers: the lab's environment and the half-built gradebook repair."""
from __future__ import annotations

import os
import sqlite3
import sys

from course_lib.grading.exchange import lab_command, lab_env, repair_gradebook


def test_lab_env_puts_the_venv_first_once():
    env = lab_env({"PATH": "/usr/bin"})
    bin_dir = os.path.dirname(sys.executable)
    assert env["PATH"].split(os.pathsep)[0] == bin_dir
    assert lab_env(env)["PATH"] == env["PATH"]  # idempotent
    assert os.path.exists(os.path.join(bin_dir, "alembic"))  # what formgrader runs by name


def test_lab_command_serves_the_course(tmp_path):
    cmd = lab_command(tmp_path, port=9999, open_browser=False)
    assert cmd[1] == "lab" and f"--ServerApp.root_dir={tmp_path.resolve()}" in cmd and "--no-browser" in cmd
    assert ("--allow-root" in cmd) == (os.geteuid() == 0)


def test_repair_half_built_gradebook(tmp_path):
    """nbgrader's tables without alembic_version (alembic missing from PATH) get nbgrader's own head."""
    from nbgrader.api import Base
    from sqlalchemy import create_engine

    db = tmp_path / "gradebook.db"
    Base.metadata.create_all(bind=create_engine(f"sqlite:///{db}"))
    assert repair_gradebook(db)
    with sqlite3.connect(db) as con:
        (version,) = con.execute("SELECT version_num FROM alembic_version").fetchone()
    from nbgrader.api import get_alembic_version

    os.environ["PATH"] = lab_env()["PATH"]
    assert version == get_alembic_version() and len(version) >= 8
    assert not repair_gradebook(db)  # complete now: left alone
    assert not repair_gradebook(tmp_path / "missing.db")
