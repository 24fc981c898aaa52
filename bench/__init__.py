"""velostream benchmark suite: the original engine's five benchmark scenarios (bench/README.md), run by velostream and by its peers.

Run ``python -m bench --help``. Each scenario is also a pyperf program of its own,
``bench/<scenario>/run_benchmark.py``; see ``bench/README.md``.
"""
