"""Listings of the DynamoDB store: keyset pagination on a GSI, the port's order and cursors exactly.

Every listing GSI ranges on `OSK` (`<created_at>#<id>` or `<position>#<id>`),
so the port's order is the string order of `OSK`. A cursor (`after`/`before`,
an id of the same kind) becomes a key condition on its `OSK` (one `GetItem`);
both together are a `BETWEEN` whose ends are dropped. Other filters are a
`FilterExpression`; since DynamoDB applies `Limit` before filtering, pages
are read until `limit` items matched or the partition ends.

A listing may also name an inclusive `floor` and `ceiling` on `OSK` (a window
within the partition) and a `keep` predicate on each item: filters a
`FilterExpression` cannot express, since one cannot read a key attribute such
as `OSK` (a run's messages read from its group's partition keep the rows
whose position names the run). Such rows are dropped as read, after `Limit`,
so pages are read on in the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from chorus.errors import NotFound
from chorus.store import dynamodb_keys as keys
from chorus.store.dynamodb_keys import ORDER_KEY, Item, s
from chorus.store.dynamodb_wire import DynamoDBTable
from chorus.store.records import Page


def list_page(
    table: DynamoDBTable,
    kind: str,
    tenant_id: str,
    page: Page,
    index: str,
    partition: str,
    filters: dict[str, Any],
    *,
    floor: str | None = None,
    ceiling: str | None = None,
    keep: Callable[[Item], bool] | None = None,
) -> list[str]:
    """Keyset pagination on `OSK` within one GSI partition; cursors are ids of the same kind.

    `floor` and `ceiling` bound `OSK` (inclusive) in either order; `keep` drops the items it refuses."""
    lower, upper = floor, ceiling
    excluded: set[str] = set()
    for cursor_id, above in ((page.after, page.order == "asc"), (page.before, page.order != "asc")):
        if cursor_id is None:
            continue
        cursor = table.get(keys.record_key(kind, tenant_id, cursor_id), projection=[ORDER_KEY])
        if cursor is None:
            raise NotFound(f"{kind} not found: {cursor_id}")
        bound = cursor[ORDER_KEY]["S"]
        excluded.add(bound)
        if above:
            lower = bound if lower is None else max(lower, bound)
        else:
            upper = bound if upper is None else min(upper, bound)
    if lower is not None and upper is not None and lower >= upper:
        return []
    # both ends inclusive: a cursor's own item is dropped as read (`excluded`)
    key_condition, names, values = partition_range(index, partition, lower, upper)
    query: dict[str, Any] = {
        "IndexName": index,
        "KeyConditionExpression": key_condition,
        "ScanIndexForward": page.order == "asc",
        "Limit": page.limit + len(excluded),
    }
    clauses = []
    for i, (name, value) in enumerate(filters.items()):
        if value is None:
            continue
        names[f"#f{i}"] = name
        if isinstance(value, list):
            if not value:
                return []
            marks = [f":f{i}_{j}" for j in range(len(value))]
            values.update({m: s(v) for m, v in zip(marks, value, strict=True)})
            clauses.append(f"#f{i} IN ({', '.join(marks)})")
        else:
            values[f":f{i}"] = {"BOOL": value} if isinstance(value, bool) else s(value)
            clauses.append(f"#f{i} = :f{i}")
    if clauses:
        query["FilterExpression"] = " AND ".join(clauses)
    query.update(ExpressionAttributeNames=names, ExpressionAttributeValues=values)
    out: list[str] = []
    for item in table.query(**query):
        if item[ORDER_KEY]["S"] in excluded or (keep is not None and not keep(item)):
            continue
        out.append(table.body(item))
        if len(out) >= page.limit:
            break
    return out


def partition_range(
    index: str, partition: str, lower: str | None, upper: str | None
) -> tuple[str, dict[str, str], Item]:
    """The key condition of one partition of `index`, its `OSK` bounded (inclusive) by those given:
    the expression, its attribute names and its values."""
    names = {"#p": keys.INDEXES[index]}
    values: Item = {":p": s(partition)}
    condition = "#p = :p"
    if lower is not None or upper is not None:
        names["#o"] = ORDER_KEY
    if lower is not None and upper is not None:
        condition += " AND #o BETWEEN :lo AND :hi"
        values.update({":lo": s(lower), ":hi": s(upper)})
    elif lower is not None:
        condition += " AND #o >= :lo"
        values[":lo"] = s(lower)
    elif upper is not None:
        condition += " AND #o <= :hi"
        values[":hi"] = s(upper)
    return condition, names, values
