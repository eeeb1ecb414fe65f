"""Tool schemas derived from source the way Letta's server derives them, without running the code."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from chorus.tools.schema import ToolSchema, schema_from_json, schema_from_source

HITL_TOOL = '''
def get_secret_code_tool(input_text: str) -> str:
    """
    A tool that returns the secret code based on the input. This tool requires approval before execution.
    Args:
        input_text (str): The input text to process.
    Returns:
        str: The secret code based on the input text.
    """
    return str(abs(hash(input_text)))
'''


def test_letta_hitl_tool() -> None:
    schema = schema_from_source(HITL_TOOL)
    assert schema.to_json() == {
        "name": "get_secret_code_tool",
        "description": (
            "A tool that returns the secret code based on the input. This tool requires approval before execution."
        ),
        "parameters": {
            "type": "object",
            "properties": {"input_text": {"type": "string", "description": "The input text to process."}},
            "required": ["input_text"],
        },
    }
    assert schema.is_async is False


def _param(annotation: str, default: str | None = None) -> tuple[dict[str, Any], bool]:
    """The schema of parameter `x` annotated as given, and whether it is required."""
    signature = f"x: {annotation}" if default is None else f"x: {annotation} = {default}"
    schema = schema_from_source(f"from typing import *\nimport typing\ndef tool({signature}):\n    pass\n")
    return schema.parameters["properties"]["x"], "x" in schema.parameters["required"]


@pytest.mark.parametrize(
    ("annotation", "expected", "required"),
    [
        ("str", {"type": "string"}, True),
        ("int", {"type": "integer"}, True),
        ("float", {"type": "number"}, True),
        ("bool", {"type": "boolean"}, True),
        ("list", {"type": "array"}, True),
        ("List[str]", {"type": "array", "items": {"type": "string"}}, True),
        ("list[int]", {"type": "array", "items": {"type": "integer"}}, True),
        ("typing.List[float]", {"type": "array", "items": {"type": "number"}}, True),
        ("list[list[bool]]", {"type": "array", "items": {"type": "array", "items": {"type": "boolean"}}}, True),
        ("tuple[int, ...]", {"type": "array", "items": {"type": "integer"}}, True),
        ("tuple[int, str]", {"type": "array"}, True),
        ("dict", {"type": "object"}, True),
        ("Dict[str, int]", {"type": "object"}, True),
        ("dict[str, list[int]]", {"type": "object"}, True),
        ("Optional[int]", {"type": "integer"}, False),
        ("int | None", {"type": "integer"}, False),
        ("None | list[str]", {"type": "array", "items": {"type": "string"}}, False),
        ("Union[int, None]", {"type": "integer"}, False),
        ("Union[int, str]", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, True),
        ("int | str | None", {"anyOf": [{"type": "integer"}, {"type": "string"}]}, False),
        ('Literal["a", "b"]', {"type": "string", "enum": ["a", "b"]}, True),
        ("Literal[1, 2]", {"type": "integer", "enum": [1, 2]}, True),
        ('Literal["a", 1]', {"enum": ["a", 1]}, True),
        ('Optional[Literal["c"]]', {"type": "string", "enum": ["c"]}, False),
        ("Any", {}, True),
        ('"list[str]"', {"type": "array", "items": {"type": "string"}}, True),
        ('Annotated[int, "meta"]', {"type": "integer"}, True),
    ],
)
def test_annotations(annotation: str, expected: dict[str, Any], required: bool) -> None:
    assert _param(annotation) == (expected, required)


@pytest.mark.parametrize(
    ("annotation", "default", "expected"),
    [
        ("int", "3", {"type": "integer", "default": 3}),
        ("str", "'hi'", {"type": "string", "default": "hi"}),
        ("float", "-1.5", {"type": "number", "default": -1.5}),
        ("bool", "False", {"type": "boolean", "default": False}),
        ("Optional[str]", "None", {"type": "string", "default": None}),
        ("list[int]", "(1, 2)", {"type": "array", "items": {"type": "integer"}, "default": [1, 2]}),
        ("dict", "{'k': [1]}", {"type": "object", "default": {"k": [1]}}),
        ("float", "time.time()", {"type": "number"}),  # computed: no default shown
        ("set", "{1, 2}", {"type": "array"}),  # no JSON form: no default shown
    ],
)
def test_defaults_make_parameters_optional(annotation: str, default: str, expected: dict[str, Any]) -> None:
    assert _param(annotation, default) == (expected, False)


def test_parameter_kinds() -> None:
    source = "def tool(self, agent_state, a, b: int = 1, *args, c: str, d: bool = True, **kwargs):\n    pass\n"
    params = schema_from_source(source).parameters
    assert list(params["properties"]) == ["a", "b", "c", "d"]
    assert params["properties"]["a"] == {"type": "string"}  # unannotated: the model sends text
    assert params["required"] == ["a", "c"]


def test_docstring_sections_and_multiline_descriptions() -> None:
    source = '''
async def search(query: str, limit: int = 10, *, mode: str = "fast") -> list[str]:
    """Search the archive
    for   matching passages.

    Results are ranked.

    Args:
        query (str): What to look for;
            may span lines.
        limit: How many results.
        mode (str): Either "fast"
            or "thorough".
        unknown (int): Not a parameter, ignored.

    Returns:
        list[str]: The passages.

    Raises:
        ValueError: never.
    """
'''
    schema = schema_from_source(source)
    assert schema.description == "Search the archive for matching passages. Results are ranked."
    props = schema.parameters["properties"]
    assert props["query"]["description"] == "What to look for; may span lines."
    assert props["limit"] == {"type": "integer", "description": "How many results.", "default": 10}
    assert props["mode"]["description"] == 'Either "fast" or "thorough".'
    assert "unknown" not in props
    assert schema.is_async is True


@pytest.mark.parametrize(
    ("docstring", "description"),
    [
        ("", ""),
        ("One line.", "One line."),
        ("Summary.\n\nReturns:\n    str: x", "Summary."),
        ("Summary.\nRaises:\n    KeyError: y", "Summary."),
        ("Not google style.\n\n:param x: the x", "Not google style. :param x: the x"),
    ],
)
def test_description(docstring: str, description: str) -> None:
    source = f"def tool(x):\n    {json.dumps(docstring)}\n"
    assert schema_from_source(source).description == description


@pytest.mark.parametrize(
    ("source", "name", "picked"),
    [
        ("def a(): pass\ndef b(): pass\n", None, "b"),  # the last top-level def
        ("def tool(): pass\ndef _helper(): pass\n", None, "tool"),  # private helpers are not the tool
        ("def _only(): pass\n", None, "_only"),  # unless nothing else is defined
        ("def a(): pass\ndef b(): pass\n", "a", "a"),
        ("def outer():\n    def inner(): pass\n", None, "outer"),  # nested defs never
        ("import os\nclass C:\n    def m(self): pass\ndef t(): pass\n", None, "t"),
    ],
)
def test_which_function_is_the_tool(source: str, name: str | None, picked: str) -> None:
    assert schema_from_source(source, name).name == picked


def test_a_redefined_name_uses_the_last_definition() -> None:
    schema = schema_from_source("def t(a: int): pass\ndef t(b: str): pass\n", "t")
    assert list(schema.parameters["properties"]) == ["b"]


@pytest.mark.parametrize(
    ("source", "name", "message"),
    [
        ("def tool(:\n    pass\n", None, "tool source is not valid Python: invalid syntax (line 1)"),
        ("x = 1\n\ndef t()\n    pass\n", None, "(line 3)"),
        ("x = 1\n", None, "tool source defines no top-level function"),
        ("def a(): pass\n", "b", "tool source defines no top-level function 'b' (it defines: a)"),
        ("def outer():\n    def inner(): pass\n", "inner", "no top-level function 'inner'"),
        ("def t(x: MyModel): pass\n", None, "t: parameter 'x': unsupported annotation 'MyModel'"),
        ("def t(x: Callable[[], int]): pass\n", None, "unsupported annotation 'Callable[[], int]'"),
        ("def t(x: Literal[A.B]): pass\n", None, "t: parameter 'x': Literal values must be strings"),
        ("def t(x: 'list[int'): pass\n", None, "annotation 'list[int' is not a valid type expression"),
        ("def t(x, /, y): pass\n", None, "t: positional-only parameters ['x'] cannot be passed by name"),
    ],
)
def test_errors(source: str, name: str | None, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        schema_from_source(source, name)


def test_source_is_never_executed(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    source = f"open({str(marker)!r}, 'w').close()\ndef t(x: int = __import__('os').getpid()): pass\n"
    assert schema_from_source(source).parameters["required"] == []
    assert not marker.exists()


def test_to_json_is_a_copy() -> None:
    schema = schema_from_source(HITL_TOOL)
    schema.to_json()["parameters"]["properties"].clear()
    assert "input_text" in schema.parameters["properties"]


VALID_JSON = {
    "name": "get_weather",
    "description": "Weather for a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


def test_schema_from_json_round_trips() -> None:
    schema = schema_from_json(VALID_JSON)
    assert schema == ToolSchema("get_weather", "Weather for a city.", VALID_JSON["parameters"])  # type: ignore[arg-type]
    assert schema.to_json() == VALID_JSON
    assert schema_from_json({"name": "t", "parameters": {"type": "object"}}).description == ""


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"name": None}, "json_schema.name must be 1-64 letters, digits, '_' or '-', got None"),
        ({"name": "has space"}, "json_schema.name must be 1-64 letters, digits, '_' or '-', got 'has space'"),
        ({"name": "x" * 65}, "json_schema.name must be 1-64"),
        ({"description": 3}, "json_schema.description must be a string, got int"),
        ({"parameters": None}, "json_schema.parameters must be an object, got NoneType"),
        ({"parameters": {"properties": {}}}, "json_schema.parameters.type must be 'object', got None"),
        ({"parameters": {"type": "array"}}, "json_schema.parameters.type must be 'object', got 'array'"),
        ({"parameters": {"type": "object", "properties": []}}, "parameters.properties must map each parameter"),
        ({"parameters": {"type": "object", "properties": {"a": 1}}}, "parameters.properties must map each parameter"),
        ({"parameters": {"type": "object", "required": "a"}}, "parameters.required must be a list of parameter"),
        (
            {"parameters": {"type": "object", "properties": {"a": {}}, "required": ["a", "b"]}},
            "json_schema.parameters.required names ['b'] that are not in parameters.properties",
        ),
    ],
)
def test_schema_from_json_errors(change: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        schema_from_json({**VALID_JSON, **change})


def test_schema_from_json_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="json_schema must be an object, got list"):
        schema_from_json([])  # type: ignore[arg-type]
