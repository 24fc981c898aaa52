"""Build compiled modules in place for development: ``python tools/build.py [module ...]``.

With no module names every ``velostream/_core/*.pyx`` is built. Each module builds in its own
temporary folder and its ``.so`` is then renamed into ``velostream/_core``: a rename never
disturbs a process that has the old file loaded (overwriting it in place would crash that process).
"""
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CORE = ROOT / "velostream" / "_core"


def build(modules):
    targets = modules or sorted(p.stem for p in CORE.glob("*.pyx"))
    for name in targets:
        env = dict(os.environ, VELOSTREAM_BUILD_ONLY=name)
        print("building", name, flush=True)
        with tempfile.TemporaryDirectory(dir=ROOT / "build" if (ROOT / "build").exists() else None) as lib:
            cmd = [sys.executable, "setup.py", "-q", "build_ext", "--build-lib", lib,
                   "--build-temp", f"build/tmp-{name}"]
            subprocess.run(cmd, cwd=ROOT, env=env, check=True)
            for so in Path(lib).rglob(f"{name}.*.so"):
                tmp = CORE / (so.name + ".new")
                tmp.write_bytes(so.read_bytes())
                os.replace(tmp, CORE / so.name)


if __name__ == "__main__":
    build(sys.argv[1:])
