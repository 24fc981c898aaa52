"""The layering docs/ARCHITECTURE.md draws, checked on the installed package: the compiled kernels
(``velostream/_core``) never import the Python package above them, and no two modules of the
package import each other, directly or around a loop (at load or late, inside a function)."""
from __future__ import annotations

import ast
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
def _module_imports(path: Path, name: str) -> set[str]:
    """The package modules ``name`` imports anywhere: at load, inside functions (a late import
    is still a dependency) and for type checking."""
    tree = ast.parse(path.read_text())
    out = set()
    parts = name.split(".")
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[:len(parts) - node.level] if path.name != "__init__.py" else \
                    parts[:len(parts) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            if mod.startswith("velostream"):
                out.add(mod)
                for a in node.names:  # ``from . import x`` imports the submodule x
                    if (PACKAGE.parent / (mod.replace(".", "/") + f"/{a.name}.py")).exists():
                        out.add(f"{mod}.{a.name}")
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("velostream")}
    return out


def test_no_import_cycle_between_modules():
    modules = {}
    for p in PACKAGE.rglob("*.py"):
        rel = p.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = p
    graph = {m: {d for d in _module_imports(p, m) if d in modules and d != m}
             for m, p in modules.items()}
    # a package's __init__ importing its own submodules is how packages re-export: not a cycle
    for m in graph:
        graph[m] = {d for d in graph[m] if not d.startswith(m + ".")}
    seen, on_stack, cycles = set(), [], []

    def visit(m):
        if m in on_stack:
            cycles.append(on_stack[on_stack.index(m):] + [m])
            return
        if m in seen:
            return
        seen.add(m)
        on_stack.append(m)
        for d in sorted(graph[m]):
            visit(d)
        on_stack.pop()

    for m in sorted(graph):
        visit(m)
    assert not cycles, "import cycles at module level:\n" + "\n".join(" -> ".join(c) for c in cycles)
