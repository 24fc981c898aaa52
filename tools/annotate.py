"""Check that the compiled hot loops never touch Python: ``python tools/annotate.py [module ...]``.

Runs ``cython -a`` (with the directives setup.py uses) on ``velostream/_core/*.pyx`` and reads the
annotation: every line inside a ``with nogil:`` block or a ``nogil`` function must be white (score
0, no Python C-API calls). Lists offending lines and exits 1 when there are any; ``--html DIR``
keeps the annotated HTML for a look in a browser.
"""
from __future__ import annotations

import argparse
import html
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "velostream" / "_core"
# Same as setup.py's release build.
DIRECTIVES = "language_level=3,boundscheck=False,wraparound=False,initializedcheck=False,cdivision=True"

_LINE = re.compile(r'<pre class="cython line score-(\d+)"[^>]*>(?:.*?)<span class="">(\d+)</span>: (.*?)</pre>',
                   re.S)


def nogil_lines(source: list[str]) -> set[int]:
    """1-based numbers of the lines that run without the GIL: bodies of ``with nogil:`` blocks and
    of functions declared ``nogil`` (also when the signature wraps over several lines)."""
    inside: set[int] = set()
    stack: list[int] = []  # indentation of the open nogil headers
    header: list[str] = []  # a cdef signature still being read, and its indentation
    header_indent = 0
    for no, raw in enumerate(source, 1):
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            if stack:
                inside.add(no)
            continue
        indent = len(line) - len(stripped)
        if header:  # continuation of a wrapped signature
            header.append(stripped)
            if stripped.endswith(":"):
                if "nogil" in " ".join(header):
                    stack.append(header_indent)
                header = []
            continue
        while stack and indent <= stack[-1]:
            stack.pop()
        if stack:
            inside.add(no)
        if re.match(r"with\s+nogil\s*:", stripped):
            stack.append(indent)
        elif stripped.startswith(("cdef ", "cpdef ")) and "(" in stripped:
            if stripped.endswith(":"):
                if "nogil" in stripped:
                    stack.append(indent)
            elif stripped.count("(") > stripped.count(")"):
                header, header_indent = [stripped], indent
    return inside


def check(module: Path, html_dir: Path | None) -> list[str]:
    with tempfile.TemporaryDirectory() as tmp:
        out_cpp = Path(tmp) / (module.stem + ".cpp")
        cmd = [sys.executable, "-m", "cython", "-3", "--cplus", "-a", "-X", DIRECTIVES,
               "-I", str(CORE), str(module), "-o", str(out_cpp)]
        subprocess.run(cmd, check=True, capture_output=True, text=True)
        page = (Path(tmp) / (module.stem + ".html")).read_text()
        if html_dir is not None:
            html_dir.mkdir(parents=True, exist_ok=True)
            shutil.copy(Path(tmp) / (module.stem + ".html"), html_dir / (module.stem + ".html"))
    source = module.read_text().splitlines()
    hot = nogil_lines(source)
    problems = []
    for m in _LINE.finditer(page):
        score, no = int(m.group(1)), int(m.group(2))
        if score and no in hot:
            text = html.unescape(re.sub(r"<[^>]+>", "", m.group(3))).strip()
            if re.match(r"(with\s+nogil|cdef\b.*\bnogil)", text):
                continue  # the header line itself (GIL release/acquire bookkeeping)
            problems.append(f"{module.name}:{no}: score {score}: {text}")
    return problems


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("modules", nargs="*", help="module names (default: every .pyx in _core)")
    ap.add_argument("--html", type=Path, help="keep the annotated HTML in this folder")
    args = ap.parse_args(argv)
    mods = [CORE / f"{m}.pyx" for m in args.modules] if args.modules else sorted(CORE.glob("*.pyx"))
    problems = []
    for mod in mods:
        found = check(mod, args.html)
        print(f"{mod.name}: {'white' if not found else f'{len(found)} line(s) touch Python'}")
        problems += found
    for p in problems:
        print("  " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
