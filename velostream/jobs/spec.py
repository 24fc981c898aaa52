"""Job files: a ``CREATE STREAM|TABLE name AS SELECT ... WITH (...)`` statement that names its
source and sink and configures both, or several statements forming a pipeline (docs/SQL.md §8:
its sources, the result relation's sink, and a sink for every other relation with sink
properties).

Properties prefixed by a connector's name configure that connector (the prefix is removed)::

    CREATE STREAM trade_stats AS
    SELECT symbol, COUNT(*) AS trades FROM market_data GROUP BY symbol WINDOW TUMBLING(1m)
    WITH ('market_data.type' = 'kafka_source', 'market_data.topic' = 'trades',
          'market_data.bootstrap.servers' = '${BROKERS:-localhost:9092}',
          'trade_stats.type' = 'file_sink', 'trade_stats.path' = 'out/stats.jsonl',
          'allowed.lateness' = '5s', 'failure.strategy' = 'LogAndContinue',
          'dead.letter.path' = 'out/rejected.jsonl')

The source is the FROM name; the sink is the CREATE name (a plain SELECT, or a sink without a
``type``, writes a table to stdout). Properties without a connector prefix configure the job:
``allowed.lateness``, ``partitioning.strategy``, ``failure.strategy``, ``commit.interval.ms``,
``dead.letter.path`` (a JSON-lines file) or ``dead.letter.topic`` (a Kafka topic, on the source's
brokers unless ``dead.letter.bootstrap.servers`` says otherwise).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

from ..errors import SqlError
from ..io.base import ConfigError, Properties
from ..exec.graph import needs_graph
from ..sql import ast
from ..sql.parser import parse_script

SOURCE_TYPES = ("kafka_source", "file_source")
SINK_TYPES = ("kafka_sink", "file_sink", "stdout")
REQUIRED = {"kafka_source": ("topic", "bootstrap.servers"), "file_source": ("path",),
            "kafka_sink": ("topic", "bootstrap.servers"), "file_sink": ("path",), "stdout": ()}
JOB_KEYS = ("allowed.lateness", "partitioning.strategy", "failure.strategy", "commit.interval.ms",
            "dead.letter.path", "dead.letter.topic", "dead.letter.bootstrap.servers",
            "fault.tolerance", "checkpoint.dir", "checkpoint.replay.max.ms", "udf.modules")


@dataclass
class JobSpec:
    """A parsed job file: the SQL after ``${VAR}`` substitution, and the properties split by owner."""
    statement: ast.Statement
    source_name: str
    sink_name: Optional[str]
    source: Properties
    sink: Properties
    job: dict[str, str] = field(default_factory=dict)
    # a job file of several statements (docs/SQL.md §8): its whole text, and the relations other
    # than the result that write to a sink of their own: name -> (properties, key columns)
    script: Optional[str] = None
    side_sinks: dict = field(default_factory=dict)
    other_sources: dict = field(default_factory=dict)  # name -> Properties
    table_sources: set = field(default_factory=set)
    explicit_key: Optional[list] = None

    @property
    def sql(self) -> str:
        return self.script if self.script is not None else self.statement.sql

    @property
    def source_type(self) -> Optional[str]:
        return self.source.values.get("type")

    @property
    def sink_type(self) -> str:
        return self.sink.values.get("type", "stdout")

    @property
    def key_columns(self) -> list[str]:
        """Output columns that key the sink's messages: the sink's ``key.columns`` property if
        given, else the output columns that are GROUP BY expressions (in GROUP BY order)."""
        explicit = self.sink.values.get("key.columns")
        if explicit is not None:
            return [c.strip() for c in explicit.split(",") if c.strip()]
        if self.explicit_key is not None:
            return list(self.explicit_key)
        sel = self.statement.select
        out = []
        for g in sel.group_by:
            for item in sel.items:
                if item.expr == g:
                    name = item.alias or (item.expr.name if isinstance(item.expr, ast.Column) else None)
                    if name is not None:
                        out.append(name)
                    break
        return out

    @classmethod
    def load(cls, path_or_sql: str, env: Optional[Mapping[str, str]] = None) -> "JobSpec":
        """From a ``.sql`` file path or the SQL text itself."""
        p = Path(path_or_sql)
        if p.suffix.lower() == ".sql" or (len(path_or_sql) < 4096 and "\n" not in path_or_sql
                                          and p.is_file()):
            try:
                text = p.read_text()
            except OSError as exc:
                raise ConfigError(f"cannot read job file {path_or_sql}: {exc.strerror or exc}") from None
        else:
            text = path_or_sql
        return cls.from_sql(text, env)

    @classmethod
    def from_sql(cls, sql: str, env: Optional[Mapping[str, str]] = None) -> "JobSpec":
        statements = parse_script(sql, env)
        for stmt in statements:  # Python functions first: planning the job may call them
            modules = stmt.props.get("udf.modules")
            if modules:
                from ..udf import load_modules
                try:
                    load_modules(modules)
                except ValueError as exc:
                    raise ConfigError(str(exc)) from None
        if needs_graph(statements):
            return cls._pipeline(statements)
        stmt = statements[0]
        props = stmt.props
        src = stmt.select.source.name
        sink = stmt.create_name
        named = {src.lower(), (sink or "").lower()} | {
            k.rsplit(".", 1)[0].lower() for k in props if k.lower().endswith(".type")}
        by_owner: dict[str, dict[str, str]] = {}
        job: dict[str, str] = {}
        for key, value in props.items():
            owner, _, rest = key.partition(".")
            if rest and owner.lower() in named and key not in JOB_KEYS:
                by_owner.setdefault(owner.lower(), {})[rest] = value
            else:
                job[key] = value
        extra = set(by_owner) - {src.lower(), (sink or "").lower()}
        if extra:
            raise SqlError(f"properties for '{sorted(extra)[0]}', which is neither the source "
                           f"('{src}') nor the sink ('{sink or 'stdout'}')", stmt.sql)
        spec = cls(stmt, src, sink, Properties(src, by_owner.get(src.lower(), {})),
                   Properties(sink or "stdout", by_owner.get((sink or "").lower(), {})), job)
        spec._check()
        return spec

    @classmethod
    def _pipeline(cls, statements: list) -> "JobSpec":
        """A job file of several statements (docs/SQL.md §8): its sources (the first is
        ``source``, the others ``other_sources``), the result relation's sink (stdout for a final
        plain SELECT), and a sink for each other relation whose name has sink properties
        (``side_sinks``)."""
        from ..exec.graph import Dataflow
        sql = statements[0].sql
        flow = Dataflow(statements, sql)
        props = flow.properties
        sources = list(flow.sources.values())
        src = sources[0].name
        result = flow.result
        sink = result.name if result.name and result.name.lower() in flow.named_outputs else None
        by_owner: dict[str, dict[str, str]] = {}
        job: dict[str, str] = {}
        owners = ({src.lower(), (sink or "").lower()} | set(flow.named_outputs)
                  | {n.name.lower() for n in sources})
        for key, value in props.items():
            owner, _, rest = key.partition(".")
            if rest and owner.lower() in owners and key not in JOB_KEYS:
                by_owner.setdefault(owner.lower(), {})[rest] = value
            else:
                job[key] = value
        for node in sources:  # a name nothing defines and nothing configures: a typo?
            if node.declared is None and node.name.lower() not in by_owner:
                from ..errors import nearest
                known = [n.name for n in flow.relations.values()] + [n.name for n in sources
                                                                      if n is not node]
                hint = nearest(node.name, known)
                raise SqlError.at(sql, node.pos, f"unknown source '{node.name}': no statement "
                                  f"defines it and no '{node.name}.type' property configures it"
                                  + (f"; did you mean '{hint}'?" if hint else ""))
        last = next(s for s in reversed(statements) if not s.declared)
        spec = cls(last, src, sink, Properties(src, by_owner.get(src.lower(), {})),
                   Properties(sink or "stdout", by_owner.get((sink or "").lower(), {})), job)
        spec.script = sql
        for node in sources[1:]:  # the other sources of a pipeline reading several
            spec.other_sources[node.name] = Properties(node.name,
                                                       by_owner.get(node.name.lower(), {}))
        spec.table_sources = flow.table_sources()
        for name, node in flow.named_outputs.items():
            if node is not result and "type" in by_owner.get(name, {}):
                spec.side_sinks[node.name] = (Properties(node.name, by_owner[name]),
                                              node.group_key or [])
        spec._check()
        for name in spec.other_sources:
            spec.source_spec(name)._check()
        for name, (p, _) in spec.side_sinks.items():
            t = p.values.get("type")
            if t not in SINK_TYPES:
                raise ConfigError(f"'{name}.type' = '{t}' is not a sink type "
                                  f"(one of {', '.join(SINK_TYPES)})")
            for key in REQUIRED.get(t, ()):
                if key not in p:
                    raise ConfigError(f"'{name}.{key}' is required for a {t}")
        return spec

    def source_spec(self, name: str) -> "JobSpec":
        """This spec with source ``name`` as its source (for ``open_source``)."""
        if name == self.source_name:
            return self
        return dataclasses.replace(self, source_name=name, source=self.other_sources[name])

    def side_sink_spec(self, name: str) -> "JobSpec":
        """This spec with relation ``name``'s sink as its sink (for ``open_sink``)."""
        props, key = self.side_sinks[name]
        spec = dataclasses.replace(self, sink_name=name, sink=props)
        spec.explicit_key = key
        return spec

    def _check(self) -> None:
        from .failure import SendToDLQ, parse_strategy
        try:
            strategy = parse_strategy(self.job.get("failure.strategy"))
        except ValueError as exc:
            raise ConfigError(f"failure.strategy: {exc}") from None
        if isinstance(strategy, SendToDLQ) and not (self.job.get("dead.letter.path")
                                                    or self.job.get("dead.letter.topic")):
            raise ConfigError("failure.strategy SendToDLQ needs dead.letter.path or dead.letter.topic")
        t = self.source_type
        if t is not None and t not in SOURCE_TYPES:
            raise ConfigError(f"'{self.source_name}.type' = '{t}' is not a source type "
                              f"(one of {', '.join(SOURCE_TYPES)})")
        if self.sink_type not in SINK_TYPES:
            raise ConfigError(f"'{self.sink_name}.type' = '{self.sink_type}' is not a sink type "
                              f"(one of {', '.join(SINK_TYPES)})")
        for props, kind in ((self.source, t), (self.sink, self.sink_type)):
            for key in REQUIRED.get(kind or "", ()):
                if key not in props:
                    raise ConfigError(f"'{props.name}.{key}' is required for a {kind}")
        for key in self.job:
            if "." in key and key not in JOB_KEYS:
                raise ConfigError(f"unknown property '{key}': connector properties start with the "
                                  f"source name ('{self.source_name}.') or the sink name "
                                  f"('{self.sink_name or 'stdout'}.'); job properties are "
                                  f"{', '.join(JOB_KEYS)}")

    def describe(self) -> str:
        """The sources, sinks and job properties, for ``velostream explain``."""
        def show(p: Properties) -> str:
            return ", ".join(f"{k}={v}" for k, v in sorted(p.values.items()) if k != "type") or "-"
        src_type = self.source_type or f"no type: give '{self.source_name}.type'"
        lines = [f"Source: {self.source_name} ({src_type}) {show(self.source)}",
                 f"Sink: {self.sink_name or 'stdout'} ({self.sink_type}) {show(self.sink)}"]
        if self.key_columns and self.sink_type == "kafka_sink":
            lines.append(f"  message key: {' | '.join(self.key_columns)}")
        if self.job:
            lines.append("Job: " + ", ".join(f"{k}={v}" for k, v in sorted(self.job.items())))
        return "\n".join(lines)
