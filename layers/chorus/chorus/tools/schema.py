"""A custom tool's JSON schema, read from its Python source without running it.

Letta clients register a tool by sending the function's source
(`client.tools.upsert_from_function` sends `dedent(inspect.getsource(func))`)
and leave the server to derive the schema the model sees. That source is user
code, so it is never imported or executed here: the schema comes from the
syntax tree alone. Annotations are read as written, never evaluated, and one
the model could not be told about is an error when the tool is registered
rather than a confusing call later.

Which function is the tool: the top-level `def` called `name` when a name is
given, else the last top-level public `def` (`getsource` sends one function;
hand-written sources put helpers first, and `_private` helpers are never the
tool unless nothing else is defined). Nested functions are never candidates.
When a name is defined twice the last definition wins, as it does at runtime.

Only Google-style docstrings are read (`Args:` entries as `name (type): text`,
continuation lines indented deeper); other styles leave the parameters
without descriptions rather than failing.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from dataclasses import dataclass
from typing import Any

__all__ = ["SKIPPED_PARAMETERS", "ToolSchema", "schema_from_json", "schema_from_source"]

SKIPPED_PARAMETERS = frozenset({"self", "agent_state"})
"""Parameters the runtime supplies (Letta injects `agent_state`), so the model is never asked for them."""

_FunctionDef = ast.FunctionDef | ast.AsyncFunctionDef
_SECTION = re.compile(r"(Args|Arguments|Parameters|Params|Returns?|Yields?|Raises):", re.IGNORECASE)
_ARG_SECTIONS = frozenset({"args", "arguments", "parameters", "params"})
_ARG_ENTRY = re.compile(r"\*{0,2}(?P<name>\w+)\s*(?:\([^)]*\))?\s*:\s*(?P<text>.*)")
_TOOL_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SCALARS = {"str": "string", "int": "integer", "float": "number", "bool": "boolean"}
_ARRAYS = frozenset({"list", "List", "tuple", "Tuple", "set", "Set", "frozenset", "FrozenSet", "Sequence"})
_OBJECTS = frozenset({"dict", "Dict", "Mapping"})
_BARE: dict[str, dict[str, str]] = {
    **{name: {"type": json_type} for name, json_type in _SCALARS.items()},
    **{name: {"type": "array"} for name in _ARRAYS},
    **{name: {"type": "object"} for name in _OBJECTS},
    **{name: {} for name in ("Any", "object")},  # any JSON value: the empty schema
}
_NO_DEFAULT = object()


@dataclass(frozen=True)
class ToolSchema:
    """What the model is told about a tool, plus how the sandbox must call it."""

    name: str
    description: str
    parameters: dict[str, Any]
    """A JSON schema object: `{"type": "object", "properties": {...}, "required": [...]}`."""
    is_async: bool = False
    """The tool is an `async def`: the sandbox awaits the call's coroutine."""

    def to_json(self) -> dict[str, Any]:
        """Letta's `json_schema` shape; a copy, so callers may edit it without touching this schema."""
        return {"name": self.name, "description": self.description, "parameters": copy.deepcopy(self.parameters)}


def schema_from_source(source_code: str, name: str | None = None) -> ToolSchema:
    """The schema of the tool defined in `source_code` (see the module docstring for which function that is).

    Raises `ValueError` when the source does not parse, defines no such function, or
    annotates a parameter with a type JSON schema cannot express.
    """
    try:
        tree = ast.parse(source_code, filename="<tool>")
    except (SyntaxError, ValueError) as exc:  # ValueError: null bytes on 3.11
        line = f" (line {exc.lineno})" if isinstance(exc, SyntaxError) and exc.lineno else ""
        message = exc.msg if isinstance(exc, SyntaxError) else str(exc)
        raise ValueError(f"tool source is not valid Python: {message}{line}") from exc
    fn = _pick(tree, name)
    description, arg_docs = _read_docstring(ast.get_docstring(fn) or "")
    return ToolSchema(
        name=fn.name,
        description=description,
        parameters=_parameters(fn, arg_docs),
        is_async=isinstance(fn, ast.AsyncFunctionDef),
    )


def schema_from_json(json_schema: dict[str, Any]) -> ToolSchema:
    """A client-given `json_schema`, checked before any model sees it.

    Providers reject a malformed tool only when a run sends it, far from the request
    that registered it; failing here names the field that is wrong.
    """
    if not isinstance(json_schema, dict):
        raise ValueError(f"json_schema must be an object, got {type(json_schema).__name__}")
    name = json_schema.get("name")
    if not isinstance(name, str) or not _TOOL_NAME.fullmatch(name):
        raise ValueError(f"json_schema.name must be 1-64 letters, digits, '_' or '-', got {name!r}")
    description = json_schema.get("description", "")
    if not isinstance(description, str):
        raise ValueError(f"json_schema.description must be a string, got {type(description).__name__}")
    parameters = json_schema.get("parameters")
    if not isinstance(parameters, dict):
        raise ValueError(f"json_schema.parameters must be an object, got {type(parameters).__name__}")
    if parameters.get("type") != "object":
        raise ValueError(f"json_schema.parameters.type must be 'object', got {parameters.get('type')!r}")
    properties = parameters.get("properties", {})
    if not isinstance(properties, dict) or not all(isinstance(p, dict) for p in properties.values()):
        raise ValueError("json_schema.parameters.properties must map each parameter name to a schema object")
    required = parameters.get("required", [])
    if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
        raise ValueError("json_schema.parameters.required must be a list of parameter names")
    unknown = [r for r in required if r not in properties]
    if unknown:
        raise ValueError(f"json_schema.parameters.required names {unknown} that are not in parameters.properties")
    return ToolSchema(name=name, description=description, parameters=copy.deepcopy(parameters))


def _pick(tree: ast.Module, name: str | None) -> _FunctionDef:
    defs = [node for node in tree.body if isinstance(node, _FunctionDef)]
    if name is not None:
        for node in reversed(defs):
            if node.name == name:
                return node
        found = f" (it defines: {', '.join(sorted({d.name for d in defs}))})" if defs else ""
        raise ValueError(f"tool source defines no top-level function {name!r}{found}")
    if not defs:
        raise ValueError("tool source defines no top-level function")
    public = [node for node in defs if not node.name.startswith("_")]
    return (public or defs)[-1]


def _parameters(fn: _FunctionDef, arg_docs: dict[str, str]) -> dict[str, Any]:
    args = fn.args
    positional_only = [a.arg for a in args.posonlyargs if a.arg not in SKIPPED_PARAMETERS]
    if positional_only:
        raise ValueError(f"{fn.name}: positional-only parameters {positional_only} cannot be passed by name")
    positional = args.posonlyargs + args.args
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    pairs = list(zip(positional, defaults, strict=True)) + list(zip(args.kwonlyargs, args.kw_defaults, strict=True))
    properties: dict[str, Any] = {}
    required: list[str] = []
    for arg, default in pairs:
        if arg.arg in SKIPPED_PARAMETERS:
            continue
        if arg.annotation is None:  # the model has to send something; text is what it sends best
            schema: dict[str, Any] = {"type": "string"}
            nullable = False
        else:
            schema, nullable = _annotation(arg.annotation, f"{fn.name}: parameter {arg.arg!r}")
        if arg.arg in arg_docs:
            schema["description"] = arg_docs[arg.arg]
        if default is not None:
            value = _json_literal(default)
            if value is not _NO_DEFAULT:
                schema["default"] = value
        elif not nullable:
            required.append(arg.arg)
        properties[arg.arg] = schema
    return {"type": "object", "properties": properties, "required": required}


def _annotation(node: ast.expr, where: str) -> tuple[dict[str, Any], bool]:
    """The schema of an annotation, and whether it admits `None` (then the parameter is optional)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):  # a quoted forward reference
        try:
            return _annotation(ast.parse(node.value, mode="eval").body, where)
        except SyntaxError:
            raise ValueError(f"{where}: annotation {node.value!r} is not a valid type expression") from None
    if isinstance(node, ast.Constant) and node.value is None:
        return {"type": "null"}, True
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return _union([node.left, node.right], where)
    head = _dotted_tail(node.value if isinstance(node, ast.Subscript) else node)
    if isinstance(node, ast.Subscript):
        args = list(node.slice.elts) if isinstance(node.slice, ast.Tuple) else [node.slice]
        if head == "Optional" and len(args) == 1:
            return _annotation(args[0], where)[0], True
        if head == "Union":
            return _union(args, where)
        if head == "Literal":
            return _literal(args, where), False
        if head == "Annotated":
            return _annotation(args[0], where)
        if head in _ARRAYS:
            if len(args) == 1 or (len(args) == 2 and isinstance(args[1], ast.Constant) and args[1].value is ...):
                return {"type": "array", "items": _annotation(args[0], where)[0]}, False
            return {"type": "array"}, False
        if head in _OBJECTS:
            return {"type": "object"}, False
    elif head in _BARE:
        return dict(_BARE[head]), False
    supported = "str, int, float, bool, list[X], dict, Optional[X], X | None, Union, Literal, Any"
    raise ValueError(f"{where}: unsupported annotation {ast.unparse(node)!r} (supported: {supported})")


def _dotted_tail(node: ast.expr) -> str | None:
    """`List` for `List`, `typing.List` and `t.List`: how the module was imported does not matter."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _union(members: list[ast.expr], where: str) -> tuple[dict[str, Any], bool]:
    flat: list[ast.expr] = []
    while members:
        member = members.pop(0)
        if isinstance(member, ast.BinOp) and isinstance(member.op, ast.BitOr):
            members[:0] = [member.left, member.right]
        else:
            flat.append(member)
    nullable = any(isinstance(m, ast.Constant) and m.value is None for m in flat)
    schemas = [_annotation(m, where)[0] for m in flat if not (isinstance(m, ast.Constant) and m.value is None)]
    if not schemas:
        return {"type": "null"}, True
    return (schemas[0] if len(schemas) == 1 else {"anyOf": schemas}), nullable


def _literal(args: list[ast.expr], where: str) -> dict[str, Any]:
    values = [a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str | int | float | bool)]
    if len(values) != len(args):
        raise ValueError(f"{where}: Literal values must be strings, numbers or booleans")
    kinds = {type(v) for v in values}
    names = {str: "string", bool: "boolean", int: "integer", float: "number"}
    if len(kinds) == 1:
        return {"type": names[kinds.pop()], "enum": values}
    return {"enum": values}


def _json_literal(node: ast.expr) -> Any:
    """A default the model may be shown, or `_NO_DEFAULT` for computed (`time.time()`) or non-JSON (`{1}`) ones."""
    try:  # the JSON round trip turns tuples into lists and rejects sets, bytes and NaN
        return json.loads(json.dumps(ast.literal_eval(node), allow_nan=False))
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return _NO_DEFAULT


def _read_docstring(doc: str) -> tuple[str, dict[str, str]]:
    """The summary (text before the first section) and each `Args:` entry's text, whitespace-normalised."""
    summary: list[str] = []
    entries: dict[str, list[str]] = {}
    section: str | None = None
    section_indent = 0
    entry: str | None = None
    entry_indent: int | None = None
    for line in doc.splitlines():
        text = line.strip()
        indent = len(line) - len(line.lstrip())
        header = _SECTION.fullmatch(text)
        if header and (section is None or indent <= section_indent):
            section, section_indent, entry, entry_indent = header[1].lower(), indent, None, None
        elif section is None:
            summary.append(text)
        elif section in _ARG_SECTIONS and text:
            if entry_indent is None:
                entry_indent = indent
            match = _ARG_ENTRY.fullmatch(text) if indent <= entry_indent else None
            if match:
                entry = match["name"]
                entries[entry] = [match["text"]]
            elif entry is not None:
                entries[entry].append(text)
    return _normalise(summary), {name: _normalise(lines) for name, lines in entries.items()}


def _normalise(lines: list[str]) -> str:
    return " ".join(" ".join(lines).split())
