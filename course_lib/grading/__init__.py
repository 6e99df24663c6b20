"""Grading: friendly checks for test cells, and the trusted runner that scores submissions.

In a notebook, ``setup_notebook()`` configures ipytest so that a ``%%ipytest`` test cell raises
(fails the nbgrader cell) exactly when one of its tests fails. The hidden tests are re-run by the
trusted grader (``course autograde``) in a process that never executes student code.
"""
from .checks import as_plain_array, check_close, check_finite, check_shape, check_true

__all__ = ["setup_notebook", "check_close", "check_shape", "check_finite", "check_true", "as_plain_array"]


def setup_notebook() -> None:
    """Configure the student's kernel so that a failing visible test shows its teaching message, not machinery.

    ipytest raises when a test fails (so nbgrader marks the cell failed), pytest prints short tracebacks
    (``--tb=short``: the test line and the message of :mod:`~course_lib.grading.checks`, whose own frames
    are hidden) and no summary, and the ipytest exception itself prints one line instead of its traceback.
    """
    import os

    if os.environ.get("COURSE_GRADING_WORKER") == "1":
        return  # the trusted grader runs the tests itself; the sandbox needs no pytest
    import ipytest

    # no third-party plugin discovery (--disable-plugin-autoload): the test cells use none, and loading every
    # installed plugin (xdist, anyio ...) on the first %%ipytest cell cost each kernel ~0.3 s of CPU; no
    # unraisable-exception plugin either: it runs gc.collect() five times at the end of every session (~0.1 s each
    # in a kernel that holds NumPy and the notebook's data)
    ipytest.autoconfig(raise_on_error=True, addopts=["-q", "-p", "no:cacheprovider", "--color=no", "--tb=short",
                                                     "-rN", "--disable-plugin-autoload", "-p", "no:unraisableexception"])
    # IPython renders an exception with ``_render_traceback_`` as the lines it returns: the cell still ends in an
    # error (nbgrader and "Run All" see a failed cell) but shows one line instead of ipytest's internals.
    ipytest.Error._render_traceback_ = _visible_tests_failed


def _visible_tests_failed(error) -> list[str]:
    return ["Visible tests failed: read the messages above, fix your code and run this cell again."]
