"""Filters and paging shared by the results model's list routes (battles, games, trials): the
optional filters as one WHERE clause, and a page with its total read in one round trip."""

from __future__ import annotations

from typing import Any

from psycopg import sql

from .snapshot import Rows, Snapshot, where_all
from .snapshot import results_table as _s

__all__ = ["Filter", "filtered", "read_page", "voided_filter"]


def voided_filter(voided: bool | None) -> list[sql.Composable]:
    """The condition of a ``voided`` filter (none when absent)."""
    if voided is None:
        return []
    return [sql.SQL("voided_by IS NOT NULL" if voided else "voided_by IS NULL")]


Filter = tuple[str, Any, str]
"""(parameter name, value, SQL clause): the clause applies when the value is given."""


def filtered(
    base: dict[str, Any], filters: tuple[Filter, ...], conditions: list[sql.Composable]
) -> tuple[sql.Composable, dict[str, Any]]:
    """The WHERE clause and parameters of a list route from its optional filters."""
    params = dict(base)
    for name, value, clause in filters:
        if value:
            conditions.append(sql.SQL(clause))
            params[name] = value
    return where_all(conditions), params


async def read_page(
    snap: Snapshot,
    table: str,
    columns: sql.Composable,
    where: sql.Composable,
    params: dict[str, Any],
    order: str,
) -> tuple[int, Rows]:
    """A list route's total and page, in the request's snapshot (one round trip for both)."""
    total, page = await snap.many(
        (sql.SQL("SELECT count(*) FROM {} {}").format(_s(table), where), params),
        (
            sql.SQL(f"SELECT {{}} FROM {{}} {{}} ORDER BY {order} "
                    "LIMIT %(limit)s OFFSET %(offset)s").format(columns, _s(table), where),
            params,
        ),
    )  # fmt: skip
    return int(total[0][0]), page
