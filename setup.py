"""Build the compiled core: every ``velostream/_core/*.pyx`` becomes one C++ extension.

Compiler directives live here, once. ``VELOSTREAM_DEBUG=1`` turns bounds, wraparound and
initialisation checks back on (use it for a debugging run of the test suite);
``VELOSTREAM_ANNOTATE=1`` writes the ``cython -a`` HTML next to each ``.pyx``;
``VELOSTREAM_BUILD_ONLY=a,b`` restricts the build to some modules (``tools/build.py`` uses it);
``VELOSTREAM_RECYTHONIZE=1`` regenerates every ``.cpp`` whatever the timestamps say.

Build time: Cython translates the modules in parallel and the C++ compiler runs one job per core
(``build_ext --parallel`` defaults to the core count). A rebuild of an unchanged tree reuses what
the previous build left: the generated ``.cpp`` next to each ``.pyx`` (regenerated only when a
``.pyx``/``.pxd`` of ``velostream/_core`` is newer) and the compiled objects in ``build/`` (pip
builds in the source tree). The wheel ships the ``.pyx``/``.pxd``/``.pyi`` sources, never the
generated C++ (``exclude-package-data`` in pyproject.toml).
"""
import glob
import os

import numpy as np
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

DEBUG = os.environ.get("VELOSTREAM_DEBUG") == "1"
ANNOTATE = os.environ.get("VELOSTREAM_ANNOTATE") == "1"
ONLY = {m for m in os.environ.get("VELOSTREAM_BUILD_ONLY", "").split(",") if m}
RECYTHONIZE = os.environ.get("VELOSTREAM_RECYTHONIZE") == "1"
CORE = "velostream/_core"
JOBS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

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


def _extension(name: str, source: str) -> Extension:
    return Extension(
        f"velostream._core.{name}",
        [source],
        include_dirs=[np.get_include(), CORE],
        language="c++",
        extra_compile_args=["-O3", "-std=c++17"] + (["-O0", "-g"] if DEBUG else []),
        define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
        # a changed declaration recompiles the modules that cimport it
        depends=sorted(glob.glob(f"{CORE}/*.pxd")),
    )


def _current_cpp(pyx: str):
    """The generated ``.cpp`` of ``pyx`` if it is newer than every source of ``velostream/_core``
    it can depend on, else None. Cython's own check also looks at the numpy and Cython ``.pxd``
    files of the build environment, which pip's build isolation installs afresh for every build:
    they would look newer each time and regenerate (and recompile) everything."""
    cpp = pyx[:-4] + ".cpp"
    if RECYTHONIZE or DEBUG or ANNOTATE or not os.path.exists(cpp):
        return None
    local = [pyx] + glob.glob(f"{CORE}/*.pxd") + glob.glob(f"{CORE}/*.pxi") + [__file__]
    built = os.path.getmtime(cpp)
    return cpp if all(os.path.getmtime(p) <= built for p in local) else None


def extensions():
    ready, to_cythonize = [], []
    for pyx in sorted(glob.glob(f"{CORE}/*.pyx")):
        name = os.path.splitext(os.path.basename(pyx))[0]
        if ONLY and name not in ONLY:
            continue
        cpp = _current_cpp(pyx)
        if cpp is not None:
            ready.append(_extension(name, cpp))
        else:
            to_cythonize.append(_extension(name, pyx))
    if to_cythonize:
        ready += cythonize(to_cythonize, compiler_directives=DIRECTIVES, annotate=ANNOTATE,
                           include_path=[CORE], nthreads=JOBS if len(to_cythonize) > 1 else 0)
    return ready


class ParallelBuildExt(build_ext):
    """``build_ext`` compiling the extensions one per core unless ``--parallel`` says otherwise;
    an extension whose ``.so`` is newer than its sources is not compiled again (setuptools' own
    check, which the reused ``.cpp`` files keep valid)."""

    def finalize_options(self):
        super().finalize_options()
        if not self.parallel:
            self.parallel = JOBS


setup(ext_modules=extensions(), cmdclass={"build_ext": ParallelBuildExt})
