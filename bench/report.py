"""Markdown table and PNG chart of a pyperf result suite written by ``python -m bench``.

Throughput is ``records / mean wall time`` of the verified runs. Ratios: to DuckDB in the same
run, and to the original Rust engine's published V2 figure (``original_v2`` in bench/data.py; 4 partitions, 5,000
records, machine unstated: an orientation, not a controlled comparison).
"""
from __future__ import annotations

from dataclasses import dataclass

from bench._harness import split_benchmark_name
from bench.data import SCENARIOS


@dataclass
class Row:
    scenario: str
    system: str
    records: int
    mean_s: float | None = None
    stdev_s: float | None = None
    values: int = 0
    status: str = "ok"            # "ok", or why there is no number

    @property
    def rec_per_s(self) -> float | None:
        return self.records / self.mean_s if self.mean_s else None


def rows_from_suite(suite, statuses: dict | None = None, systems=()) -> list[Row]:
    """One Row per benchmark in ``suite``, plus the skipped / failed ones from ``statuses``
    (``{(scenario, system): reason}``), in scenario order, then in the order of ``systems``."""
    rows = []
    seen = set()
    for bench in suite.get_benchmarks() if suite is not None else ():
        scenario, system = split_benchmark_name(bench.get_name())
        md = bench.get_metadata()
        values = bench.get_values()
        stdev = bench.stdev() if len(values) > 1 else None
        rows.append(Row(scenario, system, int(md["records"]), bench.mean(), stdev, len(values)))
        seen.add((scenario, system))
    for (scenario, system), reason in (statuses or {}).items():
        if (scenario, system) not in seen and reason != "ok":
            rows.append(Row(scenario, system, 0, status=reason))
    order = {name: i for i, name in enumerate(SCENARIOS)}
    sys_order = {name: i for i, name in enumerate(systems)}
    rows.sort(key=lambda r: (order.get(r.scenario, 99), r.scenario,
                             sys_order.get(r.system, 99), r.system))
    return rows


def _fmt_rate(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 1e6:
        return f"{x / 1e6:.2f} M"
    if x >= 1e3:
        return f"{x / 1e3:.0f} K"
    return f"{x:.0f}"


def _fmt_ratio(x: float | None) -> str:
    if x is None:
        return "—"
    return f"{x:.2f}×" if x < 10 else f"{x:.0f}×"


def markdown(rows: list[Row], *, title: str, host: str, notes: list[str] = ()) -> str:
    systems = list(dict.fromkeys(r.system for r in rows))
    scenarios = list(dict.fromkeys(r.scenario for r in rows))
    by_key = {(r.scenario, r.system): r for r in rows}
    records = sorted({r.records for r in rows if r.records})
    out = [f"# {title}", "", f"Machine: {host}", ""]
    if records:
        out += [f"Input: {', '.join(f'{n:,}' for n in records)} records per scenario, "
                "Arrow record batches of 65,536 rows. Throughput = records / mean wall time of "
                "the verified runs (output checked against DuckDB before a time counts).", ""]
    out += list(notes) + ([""] if notes else [])

    out += ["## Records per second", "",
            "| scenario | " + " | ".join(systems) + " | original V2 |",
            "|---|" + "---:|" * (len(systems) + 1)]
    for name in scenarios:
        sc = SCENARIOS.get(name)
        cells = []
        for system in systems:
            r = by_key.get((name, system))
            if r is None:
                cells.append("")
            elif r.rec_per_s is None:
                cells.append("failed" if r.status.startswith("failed") else "n/a")
            else:
                cells.append(_fmt_rate(r.rec_per_s))
        orig = _fmt_rate(sc.original_v2) if sc and sc.original_v2 else "—"
        label = f"{sc.label} {name}" if sc else name
        out.append(f"| {label} | " + " | ".join(cells) + f" | {orig} |")

    out += ["", "## Detail", "",
            "| scenario | system | rec/s | mean time | ± std dev | values | vs DuckDB "
            "| vs original V2 |",
            "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r.rec_per_s is None:
            continue
        duck = by_key.get((r.scenario, "duckdb"))
        vs_duck = (r.rec_per_s / duck.rec_per_s) if duck and duck.rec_per_s else None
        sc = SCENARIOS.get(r.scenario)
        vs_orig = (r.rec_per_s / sc.original_v2) if sc and sc.original_v2 else None
        std = f"{r.stdev_s * 1e3:.1f} ms" if r.stdev_s is not None else "—"
        out.append(f"| {r.scenario} | {r.system} | {r.rec_per_s:,.0f} | {r.mean_s * 1e3:.1f} ms "
                   f"| {std} | {r.values} | {_fmt_ratio(vs_duck)} | {_fmt_ratio(vs_orig)} |")

    missing = [r for r in rows if r.rec_per_s is None]
    if missing:
        out += ["", "## Not measured", ""]
        grouped: dict[tuple[str, str], list[str]] = {}
        for r in missing:
            grouped.setdefault((r.system, r.status), []).append(r.scenario)
        for (system, status), names in grouped.items():
            where = "every scenario" if len(names) == len(scenarios) else ", ".join(names)
            out.append(f"- {system} ({where}): {status}")
    return "\n".join(out) + "\n"


def chart(rows: list[Row], path, *, title: str) -> None:
    """Grouped bar chart of rec/s per scenario and system (log scale), written to ``path``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r.rec_per_s]
    systems = list(dict.fromkeys(r.system for r in measured))
    scenarios = list(dict.fromkeys(r.scenario for r in measured))
    if not measured:
        return
    by_key = {(r.scenario, r.system): r.rec_per_s for r in measured}
    width = 0.8 / (len(systems) + 1)
    fig, ax = plt.subplots(figsize=(max(8, 1.6 * len(scenarios)), 5))
    for i, system in enumerate(systems):
        xs = [j + i * width for j, name in enumerate(scenarios) if (name, system) in by_key]
        ys = [by_key[(name, system)] for name in scenarios if (name, system) in by_key]
        ax.bar(xs, ys, width, label=system)
    orig = [(j + len(systems) * width, SCENARIOS[name].original_v2)
            for j, name in enumerate(scenarios) if name in SCENARIOS
            and SCENARIOS[name].original_v2]
    if orig:
        ax.bar([x for x, _ in orig], [y for _, y in orig], width, label="original V2 (published)",
               color="lightgrey", hatch="//", edgecolor="grey")
    ax.set_yscale("log")
    ax.set_ylabel("records / second (log)")
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(scenarios))])
    ax.set_xticklabels([SCENARIOS[n].label if n in SCENARIOS else n for n in scenarios])
    ax.set_title(title)
    ax.legend(fontsize="small", ncol=2)
    ax.grid(axis="y", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
