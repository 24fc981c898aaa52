"""The annotation check finds Python inside nogil code, and the kernels have none."""
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import CHECKOUT, load_from_checkout

ROOT = Path(__file__).resolve().parent.parent
annotate = load_from_checkout("tools/annotate", CHECKOUT)

pytest.importorskip("Cython")


def test_kernels_are_white():
    r = subprocess.run([sys.executable, str(ROOT / "tools" / "annotate.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "strings.pyx: white" in r.stdout and "aggregate.pyx: white" in r.stdout


def test_detects_python_inside_nogil(tmp_path):
    bad = tmp_path / "bad.pyx"
    bad.write_text(
        "def f(double[::1] x):\n"
        "    cdef Py_ssize_t i\n"
        "    cdef double s = 0\n"
        "    with nogil:\n"
        "        for i in range(x.shape[0]):\n"
        "            s += x[i]\n"
        "            with gil:\n"
        "                print(s)\n"
        "    return s\n")
    problems = annotate.check(bad, None)
    assert any("print(s)" in p for p in problems)


def test_detects_python_in_a_nogil_function_with_a_wrapped_signature(tmp_path):
    bad = tmp_path / "wrapped.pyx"
    bad.write_text(
        "cdef double g(double a,\n"
        "              double b) noexcept nogil:\n"
        "    with gil:\n"
        "        print(a)\n"
        "    return a + b\n"
        "def f():\n"
        "    return g(1.0, 2.0)\n")
    problems = annotate.check(bad, None)
    assert any("print(a)" in p for p in problems)
