"""The user guide (README.md and docs/*.md) runs and says what the code does.

Conventions in the Markdown pages (docs/README.md, "Conventions for examples"):

- A fenced ```python block that contains ``>>>`` prompts is a doctest. The blocks of one page run
  in order in one namespace (so a page can build on its earlier examples), with ELLIPSIS and
  NORMALIZE_WHITESPACE, in a temporary directory holding the page's example files.
- ``<!-- test: file NAME -->`` on the line before a fenced block: the block's text is written to
  NAME in that directory before anything runs (a CSV file, a job file).
- ``<!-- test: run -->`` on the line before a ```console block: every line starting with ``$ `` is
  a command (``velostream`` runs as ``python -m velostream``); the lines up to the next command
  are its expected standard output. The command must exit 0.

Besides running the examples, two checks keep the reference pages from drifting:

- every ``--flag`` named in a ``velostream <command>`` section of docs/CLI.md exists in that
  command's ``--help`` (or the global one), and every flag of every ``--help`` is documented;
- every property in the tables of docs/CONNECTORS.md is read by the code (velostream/io/*.py,
  velostream/jobs/spec.py), and every property the sources and sinks read is in a table.
"""
from __future__ import annotations

import doctest
import os
import re
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from conftest import subprocess_env

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md"] + sorted(DOCS.glob("*.md"))
#: pages that must hold at least one tested example
MUST_RUN = {"README.md", "docs/SQL.md", "docs/PYTHON_API.md", "docs/CLI.md", "docs/CONNECTORS.md",
            "docs/FUNCTIONS.md"}
FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
MARK = re.compile(r"<!--\s*test:\s*(file|run)\s*([^\s>]*)\s*-->\s*\n$")


def _blocks(text: str):
    """(language, body, marker, line number) of every fenced block."""
    for m in FENCE.finditer(text):
        before = text[:m.start()]
        mark = MARK.search(before[-200:])
        yield m.group(1), m.group(2), (mark.groups() if mark else None), before.count("\n") + 1


def _env() -> dict:
    return subprocess_env()


def _run_console(body: str, cwd: Path, where: str) -> None:
    commands: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            commands.append((line[2:], []))
        elif commands:
            commands[-1][1].append(line)
        elif line.strip():
            raise AssertionError(f"{where}: output before the first '$ ' command")
    assert commands, f"{where}: a 'test: run' block without commands"
    for cmd, expected in commands:
        argv = shlex.split(cmd)
        if argv[0] == "velostream":
            argv = [sys.executable, "-m", "velostream"] + argv[1:]
        p = subprocess.run(argv, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=120)
        assert p.returncode == 0, f"{where}: `{cmd}` exited {p.returncode}\n{p.stderr}"
        got = [ln.rstrip() for ln in p.stdout.rstrip("\n").splitlines()]
        want = [ln.rstrip() for ln in "\n".join(expected).rstrip("\n").splitlines()]
        assert got == want, (f"{where}: `{cmd}` printed\n" + "\n".join(got) +
                             "\n\nbut the page shows\n" + "\n".join(want))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_run(page: Path, tmp_path: Path, monkeypatch):
    text = page.read_text()
    blocks = list(_blocks(text))
    for lang, body, mark, _ in blocks:
        if mark and mark[0] == "file":
            assert mark[1], f"{page.name}: 'test: file' needs a file name"
            (tmp_path / mark[1]).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / mark[1]).write_text(body)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(ROOT))
    globs: dict = {"__name__": "__docs__"}
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    ran = 0
    for lang, body, mark, line in blocks:
        where = f"{page.relative_to(ROOT)}:{line}"
        if lang == "python" and ">>>" in body:
            test = parser.get_doctest(body, globs, where, str(page), line)
            result = runner.run(test, clear_globs=False)
            globs = test.globs  # DocTest copies its globals: carry them to the next block
            assert result.failed == 0, f"{where}: doctest failed (output above)"
            ran += 1
        elif mark and mark[0] == "run":
            assert lang == "console", f"{where}: 'test: run' marks a ```console block"
            _run_console(body, tmp_path, where)
            ran += 1
    if str(page.relative_to(ROOT)) in MUST_RUN:
        assert ran > 0, f"{page.relative_to(ROOT)} has no runnable example"


# ------------------------------------------------------------------------------ CLI flags

def _help(*command: str) -> str:
    cwd = tempfile.mkdtemp()
    if command == ("bench",):  # the suite runs from a checkout: give it one (its bench/ folder)
        os.symlink(ROOT / "bench", os.path.join(cwd, "bench"))
    p = subprocess.run([sys.executable, "-m", "velostream", *command, "--help"], cwd=cwd,
                       env=_env(), capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def _flags(text: str) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-z])(?![\w-])", text))


def _cli_sections() -> dict[str, str]:
    """docs/CLI.md split by its '## `velostream <command>`' headings ('' = everything else)."""
    out: dict[str, str] = {}
    current = ""
    for line in (DOCS / "CLI.md").read_text().splitlines():
        m = re.match(r"^##\s+`velostream (\w+)", line)
        if line.startswith("## "):
            current = m.group(1) if m else ""
        out[current] = out.get(current, "") + line + "\n"
    return out


def _subcommands() -> list[str]:
    usage = _help()
    m = re.search(r"\{([\w,]+)\}", usage)
    assert m, usage
    return m.group(1).split(",")


def test_cli_flags_documented_exist():
    sections = _cli_sections()
    global_flags = _flags(_help()) - {"-h", "--help"}
    commands = _subcommands()
    for cmd in commands:
        assert cmd in sections, f"docs/CLI.md has no '## `velostream {cmd}`' section"
    for cmd, text in sections.items():
        if not cmd:
            continue
        assert cmd in commands, f"docs/CLI.md documents `velostream {cmd}`, which does not exist"
        allowed = _flags(_help(cmd)) | global_flags
        # flags passed through to another tool (bench forwards its arguments) are that tool's
        documented = _flags(text) if cmd != "bench" else set()
        unknown = sorted(documented - allowed)
        assert not unknown, f"docs/CLI.md, `velostream {cmd}`: {unknown} not in `velostream {cmd} --help`"


def test_cli_flags_all_documented():
    sections = _cli_sections()
    everything = "".join(sections.values())
    for flag in _flags(_help()) - {"-h", "--help"}:
        assert flag in everything, f"global option {flag} is not in docs/CLI.md"
    for cmd in _subcommands():
        missing = sorted(_flags(_help(cmd)) - {"-h", "--help"} - _flags(sections.get(cmd, "")))
        assert not missing, f"`velostream {cmd}` options {missing} are not in its docs/CLI.md section"


def test_exit_codes_documented():
    from velostream import cli
    text = (DOCS / "CLI.md").read_text()
    for code in (cli.EXIT_OK, cli.EXIT_FAILED, cli.EXIT_CANNOT_START, cli.EXIT_UNREACHABLE):
        assert re.search(rf"^\|\s*{code}\s*\|", text, re.M), f"exit code {code} is not in the table"


# ------------------------------------------------------------------------------ properties

CODE = [*sorted((ROOT / "velostream" / "io").glob("*.py")), ROOT / "velostream" / "jobs" / "spec.py"]


def _documented_properties() -> set[str]:
    """The first column of every table row in docs/CONNECTORS.md whose first cell is `code`."""
    props = set()
    for line in (DOCS / "CONNECTORS.md").read_text().splitlines():
        m = re.match(r"^\|\s*`([a-z_][a-z0-9_.]*)`", line)
        if m:
            props.add(m.group(1))
    return props


def test_documented_properties_are_read():
    code = "\n".join(p.read_text() for p in CODE)
    props = _documented_properties()
    assert len(props) > 20, props
    unread = sorted(p for p in props if f'"{p}"' not in code and f"'{p}'" not in code)
    assert not unread, f"docs/CONNECTORS.md lists properties the code never reads: {unread}"


def test_properties_read_are_documented():
    read = set()
    for p in CODE:
        src = p.read_text()
        read |= set(re.findall(r"props\.(?:get|require|get_int|get_bool)\(\s*\"([^\"]+)\"", src))
        read |= set(re.findall(r"\.values\.get\(\s*\"([^\"]+)\"", src))
        read |= set(re.findall(r"spec\.job\.get\(\s*\"([^\"]+)\"", src))
    from velostream.jobs.spec import JOB_KEYS
    read |= set(JOB_KEYS)
    missing = sorted(read - _documented_properties())
    assert not missing, f"properties read by the code but not in docs/CONNECTORS.md tables: {missing}"


def test_metrics_documented():
    """Every metric the collector exposes is in docs/CLI.md, with its exposed name."""
    src = (ROOT / "velostream" / "metrics.py").read_text()
    names = set(re.findall(r'counter\("(\w+)"', src))
    gauges = set(re.findall(r'gauge\("(\w+)"', src)) | set(re.findall(r'MetricFamily\("velostream_(\w+)"', src))
    text = (DOCS / "CLI.md").read_text()
    for n in names:  # prometheus_client exposes counters with a _total suffix
        assert f"velostream_{n}_total" in text, f"metric velostream_{n}_total is not documented"
    for n in gauges:
        assert f"velostream_{n}" in text, f"metric velostream_{n} is not documented"
