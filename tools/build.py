"""Build compiled modules in place for development: ``python tools/build.py [module ...]``.

With no module names every ``velostream/_core/*.pyx`` is built. Each module gets its own
temporary build folder so that several builds can run side by side without clobbering each other.
"""
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build(modules):
    targets = modules or sorted(p.stem for p in (ROOT / "velostream/_core").glob("*.pyx"))
    for name in targets:
        env = dict(os.environ, VELOSTREAM_BUILD_ONLY=name)
        cmd = [sys.executable, "setup.py", "-q", "build_ext", "--inplace",
               "--build-temp", f"build/tmp-{name}"]
        print("building", name, flush=True)
        subprocess.run(cmd, cwd=ROOT, env=env, check=True)


if __name__ == "__main__":
    build(sys.argv[1:])
