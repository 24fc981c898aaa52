"""The layering docs/ARCHITECTURE.md draws, checked on the installed package: the compiled kernels
(``velostream/_core``) never import the Python package above them."""
from __future__ import annotations

import re
from pathlib import Path

import velostream

PACKAGE = Path(velostream.__file__).parent
# an import statement (not a doctest line, which starts with >>>) reaching above _core; a
# kernel's compile-time cimport of another kernel is within the layer
_UP = re.compile(r"^\s*(from\s+\.\.|from\s+velostream(?!\._core\b)|import\s+velostream\b)")


def test_kernels_never_import_the_package():
    sources = sorted((PACKAGE / "_core").glob("*.pyx")) + sorted((PACKAGE / "_core").glob("*.py"))
    assert len(sources) >= 9  # the wheel ships the kernels' sources
    bad = [f"{p.name}:{i}: {line.strip()}" for p in sources
           for i, line in enumerate(p.read_text().splitlines(), 1) if _UP.match(line)]
    assert not bad, "kernels importing the package:\n" + "\n".join(bad)
