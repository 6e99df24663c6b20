"""What `make install` leaves in .venv beyond the pinned packages (Makefile, the $(STAMP) recipe)."""
from __future__ import annotations

import importlib.util
import subprocess
import sys


def test_nbformat_imports_without_rfc3987_syntax_and_still_validates_notebooks():
    """The Makefile removes rfc3987-syntax (0.9 s of parser building at import); nbformat's validation is intact."""
    assert importlib.util.find_spec("rfc3987_syntax") is None, "run `make install` (its last step removes it)"
    code = ("import sys, nbformat\n"
            "nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell('1 + 1')])\n"
            "nbformat.validate(nb)\n"
            "nb.cells[0]['source'] = 3\n"
            "try:\n    nbformat.validate(nb)\nexcept nbformat.ValidationError:\n    print('invalid')\n"
            "print('rfc3987_syntax' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True).stdout
    assert out.split() == ["invalid", "False"]
