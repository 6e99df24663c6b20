"""Grading: friendly checks for test cells, and the trusted runner that scores submissions.

In a notebook, ``setup_notebook()`` configures ipytest so that a ``%%ipytest`` test cell raises
(fails the nbgrader cell) exactly when one of its tests fails. The hidden tests are re-run by the
trusted grader (``course autograde``) in a process that never executes student code.
"""
from .checks import as_plain_array, check_close, check_finite, check_shape, check_true

__all__ = ["setup_notebook", "check_close", "check_shape", "check_finite", "check_true", "as_plain_array"]


def setup_notebook() -> None:
    """Configure the student's kernel: ipytest (raise on failure) and inline plots."""
    import os

    if os.environ.get("COURSE_GRADING_WORKER") == "1":
        return  # the trusted grader runs the tests itself; the sandbox needs no pytest
    import ipytest

    ipytest.autoconfig(raise_on_error=True, addopts=["-q", "-p", "no:cacheprovider", "--color=no"])
