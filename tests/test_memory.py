"""peak_memory measures a known allocation in a fresh process."""
import pytest

from course_lib.memory import peak_memory
from course_lib.validation import CourseError


def test_peak_memory_sees_a_known_allocation():
    out = peak_memory("course_lib.memory:allocate", mb=300, setup_mb=100)
    assert 95 <= out["setup_mb"] <= 130
    # the step's peak holds the set-up's 100 MiB plus the 300 MiB block (bytearray zeroes the pages: resident)
    assert 395 <= out["peak_mb"] <= 460


def test_failures_are_reported():
    with pytest.raises(CourseError, match="module:factory"):
        peak_memory("no_colon")
    with pytest.raises(CourseError, match="failed in the child"):
        peak_memory("course_lib.memory:no_such_factory")
