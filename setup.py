"""Build the compiled core: every ``velostream/_core/*.pyx`` becomes one C++ extension.

Compiler directives live here, once. ``VELOSTREAM_DEBUG=1`` turns bounds, wraparound and
initialisation checks back on (use it for a debugging run of the test suite);
``VELOSTREAM_ANNOTATE=1`` writes the ``cython -a`` HTML next to each ``.pyx``;
``VELOSTREAM_BUILD_ONLY=a,b`` restricts the build to some modules (``tools/build.py`` uses it).
"""
import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup

DEBUG = os.environ.get("VELOSTREAM_DEBUG") == "1"
ANNOTATE = os.environ.get("VELOSTREAM_ANNOTATE") == "1"
ONLY = {m for m in os.environ.get("VELOSTREAM_BUILD_ONLY", "").split(",") if m}

DIRECTIVES = {
    "language_level": 3,
    "boundscheck": DEBUG,
    "wraparound": DEBUG,
    "initializedcheck": DEBUG,
    # C semantics for / and % on C integers: kernels handle signs themselves (floor division
    # for window starts is written out explicitly), and this keeps Python checks out of loops.
    "cdivision": True,
    "embedsignature": True,
}


def extensions():
    exts = []
    for pyx in sorted(glob.glob("velostream/_core/*.pyx")):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if ONLY and name not in ONLY:
            continue
        exts.append(
            Extension(
                f"velostream._core.{name}",
                [pyx],
                include_dirs=[np.get_include(), "velostream/_core"],
                language="c++",
                extra_compile_args=["-O3", "-std=c++17"] + (["-O0", "-g"] if DEBUG else []),
                define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
            )
        )
    return exts


setup(
    ext_modules=cythonize(
        extensions(),
        compiler_directives=DIRECTIVES,
        annotate=ANNOTATE,
        include_path=["velostream/_core"],
    ),
)
