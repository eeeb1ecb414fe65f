"""Listings of the DynamoDB store: keyset pagination on a GSI, the port's order and cursors exactly.

Every listing GSI ranges on `OSK` (`<created_at>#<id>` or `<position>#<id>`),
so the port's order is the string order of `OSK`. A cursor (`after`/`before`,
an id of the same kind) becomes a key condition on its `OSK` (one `GetItem`);
both together are a `BETWEEN` whose ends are dropped. Other filters are a
`FilterExpression`; since DynamoDB applies `Limit` before filtering, pages
are read until `limit` items matched or the partition ends.
"""

from __future__ import annotations

from typing import Any

from chorus.errors import NotFound
from chorus.store import dynamodb_keys as keys
from chorus.store.dynamodb_keys import ORDER_KEY, Item, s
from chorus.store.dynamodb_wire import DynamoDBTable
from chorus.store.records import Page


def list_page(
    table: DynamoDBTable, kind: str, tenant_id: str, page: Page, index: str, partition: str, filters: dict[str, Any]
) -> list[str]:
    """Keyset pagination on `OSK` within one GSI partition; cursors are ids of the same kind."""
    bounds: dict[str, str] = {}
    for cursor_id, op in (
        (page.after, ">" if page.order == "asc" else "<"),
        (page.before, "<" if page.order == "asc" else ">"),
    ):
        if cursor_id is None:
            continue
        cursor = table.get(keys.record_key(kind, tenant_id, cursor_id), projection=[ORDER_KEY])
        if cursor is None:
            raise NotFound(f"{kind} not found: {cursor_id}")
        bounds[op] = cursor[ORDER_KEY]["S"]
    names = {"#p": keys.INDEXES[index]}
    if bounds:
        names["#o"] = ORDER_KEY
    values: Item = {":p": s(partition)}
    key_condition = "#p = :p"
    if len(bounds) == 2:
        if bounds[">"] >= bounds["<"]:
            return []
        key_condition += " AND #o BETWEEN :lo AND :hi"
        values.update({":lo": s(bounds[">"]), ":hi": s(bounds["<"])})
    elif bounds:
        op, bound = next(iter(bounds.items()))
        key_condition += f" AND #o {op} :b"
        values[":b"] = s(bound)
    excluded = set(bounds.values())
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
        if item[ORDER_KEY]["S"] in excluded:
            continue
        out.append(table.body(item))
        if len(out) >= page.limit:
            break
    return out
