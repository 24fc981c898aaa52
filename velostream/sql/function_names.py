"""Which function names SQL reads as aggregates (``GROUP BY``, windows) and as analytic functions
(``OVER``): the dialect's vocabulary, shared by the planner and the binder's errors ("aggregate X
is not allowed here", "did you mean"). ``vs.udaf`` adds the names it registers to AGGREGATES.
"""

AGGREGATES = {
    "COUNT", "SUM", "AVG", "MIN", "MAX", "STDDEV", "STDDEV_SAMP", "STDDEV_POP", "VARIANCE",
    "VAR_SAMP", "VAR_POP", "COUNT_DISTINCT", "FIRST_VALUE", "LAST_VALUE", "MEDIAN",
    "APPROX_COUNT_DISTINCT", "COUNT_IF", "BOOL_AND", "BOOL_OR", "ARG_MIN", "ARG_MAX", "MIN_BY",
    "MAX_BY", "CORR", "COVAR_POP", "COVAR_SAMP", "REGR_SLOPE", "REGR_INTERCEPT", "REGR_R2",
    "PERCENTILE_CONT", "PERCENTILE_DISC", "APPROX_QUANTILE", "QUANTILE_CONT", "QUANTILE_DISC",
    "QUANTILE", "STRING_AGG", "LISTAGG", "GROUP_CONCAT",
}
# Aggregates of a value and a constant fraction (AggSpec.fraction): f(x, q), or the standard
# f(q) WITHIN GROUP (ORDER BY x), which the parser turns into f(x, q).
QUANTILE_AGGREGATES = {"PERCENTILE_CONT", "PERCENTILE_DISC", "APPROX_QUANTILE"}
# Aggregates of two arguments (AggSpec.arg and AggSpec.arg2).
PAIR_AGGREGATES = {"ARG_MIN", "ARG_MAX", "CORR", "COVAR_POP", "COVAR_SAMP", "REGR_SLOPE",
                   "REGR_INTERCEPT", "REGR_R2"}
ANALYTIC = {
    "AVG", "SUM", "MIN", "MAX", "COUNT", "STDDEV", "STDDEV_SAMP", "STDDEV_POP", "VARIANCE",
    "VAR_SAMP", "VAR_POP", "LAG", "ROW_NUMBER", "FIRST_VALUE", "LAST_VALUE", "RANK",
    "DENSE_RANK",
}
# Flink's group window functions (GROUP BY TUMBLE(ts, size), TUMBLE_START(...), ...): the parser
# reads them as the statement's window (docs/SQL.md §10), so no Python function may take these names
GROUP_WINDOWS = ("TUMBLE", "HOP", "SESSION")
GROUP_WINDOW_AUX_PARTS = ("START", "END", "ROWTIME", "PROCTIME")
GROUP_WINDOW_NAMES = frozenset(GROUP_WINDOWS) | frozenset(
    f"{w}_{part}" for w in GROUP_WINDOWS for part in GROUP_WINDOW_AUX_PARTS)
