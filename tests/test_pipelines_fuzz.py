"""Metamorphic fuzzing of pipelines (docs/SQL.md §8) over the generated queries of tests/sqlgen.py:
a query reading a CTE, a derived stream or a subquery of the table gives the same rows as the
query over the table itself (and as DuckDB), and ``q UNION ALL q`` gives every row twice. Seeded:
every run checks the same queries; a failure names the seed and the SQL."""
from __future__ import annotations

import re
from collections import Counter

import pytest

import velostream as vs
from velostream.errors import SqlError

import sqlgen
from reference import as_tuples, assert_rows_equal, duck

TABLE = sqlgen.make_fuzz_table(150, seed=11, nan=True)
_FROM = re.compile(r" FROM t(?= WHERE| GROUP| EMIT| LIMIT|$)")

WRAPPERS = {
    "cte": "WITH x AS (SELECT * FROM t) {q}",
    "stream": "CREATE STREAM x AS SELECT * FROM t WHERE TRUE; {q}",
    "subquery": None,  # SELECT * FROM (q) AS s
}


def run(sql: str, partitions: int = 1, seed: int = 0) -> list[tuple]:
    batches = sqlgen.uneven_batches(TABLE, seed)
    return as_tuples(vs.query(sql, {"t": batches}, partitions=partitions).to_pylist())


def queries(first: int, count: int):
    for seed in range(first, first + count):
        q = sqlgen.random_query(seed, nan=True)
        if q.shape in ("projection", "group_by", "global") and _FROM.search(q.eng):
            yield seed, q


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("first", [0, 60])
def test_a_derived_input_gives_the_same_rows(wrapper, first):
    checked, failures = 0, []
    for seed, q in queries(first, 60):
        try:
            want = run(q.eng, seed=seed)
        except SqlError:
            continue
        if wrapper == "subquery":
            sql = f"SELECT * FROM ({q.eng}) AS s"
        else:
            sql = WRAPPERS[wrapper].format(q=_FROM.sub(" FROM x", q.eng, count=1))
        try:
            got = run(sql, partitions=1 + seed % 2, seed=seed + 1)
            assert_rows_equal(got, want)
            if q.duck and q.shape != "projection":
                assert_rows_equal(got, duck(q.duck, t=TABLE))
        except (AssertionError, SqlError) as err:
            failures.append(f"seed {seed}: {sql}\n  {err}")
        checked += 1
    assert not failures, f"{len(failures)} of {checked} differ:\n" + "\n\n".join(failures[:3])
    assert checked >= 20


def test_union_all_of_a_query_with_itself_doubles_every_row():
    checked = 0
    for seed, q in queries(200, 40):
        if q.shape != "projection":
            continue
        try:
            once = run(q.eng, seed=seed)
        except SqlError:
            continue
        twice = run(f"{q.eng} UNION ALL {q.eng}", seed=seed)
        assert Counter(map(repr, twice)) == Counter({k: 2 * v for k, v in
                                                     Counter(map(repr, once)).items()}), q.eng
        checked += 1
    assert checked >= 8


@pytest.mark.parametrize("first", [300, 400])
def test_a_stage_split_over_partitions_gives_the_rows_of_one(first):
    """Each generated query reads a CTE, so its GROUP BY stage runs split over the partitions
    behind the graph's exchange (docs/ARCHITECTURE.md): at 2 and 4 partitions, with other batch
    splits, the same rows as at one, and the same error when it fails."""
    checked, failures = 0, []
    for seed, q in queries(first, 100):
        sql = WRAPPERS["cte"].format(q=_FROM.sub(" FROM x", q.eng, count=1))
        try:
            want = run(sql, seed=seed)
        except vs.VelostreamError as err:
            want = type(err)
        for p in (2, 4):
            try:
                got = run(sql, partitions=p, seed=seed + p)
            except vs.VelostreamError as err:
                got = type(err)
            try:
                if isinstance(want, list) and isinstance(got, list):
                    assert_rows_equal(got, want)
                else:
                    assert got == want
            except AssertionError as err:
                failures.append(f"seed {seed} at {p} partitions: {sql}\n  {err}")
        checked += 1
    assert not failures, f"{len(failures)} differ:\n" + "\n\n".join(failures[:3])
    assert checked >= 60
