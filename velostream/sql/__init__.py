"""The SQL front end: ``parse(sql, env=None) -> ast.Statement`` (docs/SQL.md §1)."""
from . import ast
from .parser import parse

__all__ = ["ast", "parse"]
