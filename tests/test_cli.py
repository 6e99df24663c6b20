"""The `course` command: --help on every command, clear errors on a wrong course directory or assignment."""
from __future__ import annotations

import subprocess
import sys

import pytest

from coursedir import REPO, make_course

COMMANDS = ["release", "autograde", "feedback", "grades", "check", "demo"]


def _course(*args, cwd=REPO):
    return subprocess.run([sys.executable, "-m", "course_lib.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


@pytest.mark.parametrize("command", COMMANDS)
def test_help(command):
    out = _course(command, "--help")
    assert out.returncode == 0 and "usage: course" in out.stdout and "--course-dir" in out.stdout


def test_top_level_help_lists_commands():
    out = _course("--help")
    assert out.returncode == 0 and all(c in out.stdout for c in COMMANDS)


def test_outside_a_course_dir(tmp_path):
    out = _course("grades", cwd=tmp_path)
    assert out.returncode != 0 and "nbgrader_config.py" in out.stderr


def test_unknown_assignment(tmp_path):
    course = make_course(tmp_path / "c", ["hw00_preliminaries"])
    out = _course("release", "hw99_nope", "--course-dir", str(course))
    assert out.returncode != 0 and "hw99_nope" in out.stderr and "hw00_preliminaries" in out.stderr


def test_autograde_without_submissions(tmp_path):
    course = make_course(tmp_path / "c", ["hw00_preliminaries"])
    out = _course("autograde", "hw00_preliminaries", "--course-dir", str(course))
    assert out.returncode == 0 and "nothing to grade" in out.stdout
