"""Validation errors as sentences an admin can act on: the key path, what is wrong, how to fix it.

pydantic describes what it expected; the admin needs to know what YAML made of
what they wrote (an unquoted ``off`` is ``false``), that secrets never go in the
file, and which key they meant. Input values are never repeated: the value at a
secret's key may be the secret itself.
"""

from __future__ import annotations

import difflib
import re
import types
from collections.abc import Iterable
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

SECRET_HINT = "a secret is never written in the file: use {env: NAME} or {file: PATH}"
"""What to write instead of an inline secret (the one rule for every secret field)."""

_YAML_BOOLEAN_WORDS = {False: ("off", "no", "false"), True: ("on", "yes", "true")}
"""Words YAML 1.1 (PyYAML) reads as booleans when they are not quoted."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'x'?)"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def key_path(loc: tuple[int | str, ...]) -> str:
    """``domains['acme.com'].method``, ``sources[0].path``: how the file's keys are named in messages."""
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item.isidentifier():
            parts.append(f".{item}" if parts else item)
        else:
            parts.append(f"[{item!r}]")
    return "".join(parts)


def problems_from(exc: ValidationError, data: Any, model: type[BaseModel]) -> list[tuple[str, str]]:
    """``(key path, message)`` for every error of validating ``data`` against ``model``."""
    problems = []
    for error in exc.errors():
        loc = tuple(p for p in error["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        problems.append((key_path(_without_union_tags(loc, data)), _message(error, model, loc)))
    return problems


def _message(error: ErrorDetails, model: type[BaseModel], loc: tuple[int | str, ...]) -> str:
    kind, ctx, value = error["type"], error.get("ctx") or {}, error["input"]
    message = error["msg"].removeprefix("Value error, ")
    if kind == "model_type" and ctx.get("class_name") == "SecretRef":
        return SECRET_HINT
    if kind in ("enum", "literal_error"):
        expected = re.findall(r"'([^']*)'", str(ctx.get("expected", "")))
        if isinstance(value, bool):
            quoted = next((word for word in _YAML_BOOLEAN_WORDS[value] if word in expected), None)
            if quoted is not None:
                key = next((str(part) for part in reversed(loc) if isinstance(part, str)), "key")
                return f'YAML reads an unquoted {quoted} as {str(value).lower()}: quote it ({key}: "{quoted}")'
        if isinstance(value, str):
            return message + did_you_mean(value, expected)
    if kind == "union_tag_invalid" and isinstance(ctx.get("tag"), str):
        tags = re.findall(r"'([^']*)'", str(ctx.get("expected_tags", "")))
        return message + did_you_mean(ctx["tag"], tags)
    if kind == "extra_forbidden" and loc and isinstance(loc[-1], str):
        known = _field_names(model, loc[:-1])
        hint = did_you_mean(loc[-1], known)
        if not hint and known:
            hint = f" (known keys here: {', '.join(sorted(known))})"
        return message + hint
    return message


def _without_union_tags(loc: tuple[int | str, ...], data: Any) -> tuple[int | str, ...]:
    """Drop the ``type`` tag pydantic puts in the path of a discriminated union's errors."""
    kept: list[int | str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part not in node and node.get("type") == part:
            continue  # ``directory.ldap.base_dn`` -> ``directory.base_dn``
        kept.append(part)
        if isinstance(node, dict):
            node = node.get(part)
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
        else:
            node = None
    return tuple(kept)


def _field_names(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The keys the model accepts at ``loc`` (pydantic's path, union tags included); [] if unknown."""
    node: Any = model
    for part in loc:
        node = _step(node, part)
        if node is None:
            return []
    node = _unwrap(node)
    return list(node.model_fields) if _is_model(node) else []


def _step(node: Any, part: int | str) -> Any:
    """The type one step down ``node`` along ``part``, or ``None`` when it cannot be followed."""
    node = _unwrap(node)
    origin = get_origin(node)
    if origin in (Union, types.UnionType):
        # A tagged union: pydantic names the chosen member by its tag (``directory.ldap.x``).
        for member in map(_unwrap, get_args(node)):
            if _is_model(member) and any(
                get_origin(field.annotation) is Literal and part in get_args(field.annotation)
                for field in member.model_fields.values()
            ):
                return member
        return None
    if origin in (list, tuple, set, frozenset):
        return get_args(node)[0] if isinstance(part, int) and get_args(node) else None
    if origin is dict:
        return get_args(node)[1]
    if _is_model(node) and isinstance(part, str):
        field = node.model_fields.get(part)
        return field.annotation if field is not None else None
    return None


def _unwrap(node: Any) -> Any:
    """``Annotated[X, ...]`` and ``X | None`` -> ``X``."""
    while True:
        origin = get_origin(node)
        if origin is Annotated:
            node = get_args(node)[0]
            continue
        if origin in (Union, types.UnionType):
            members = [a for a in get_args(node) if a is not type(None)]
            if len(members) == 1:
                node = members[0]
                continue
        return node


def _is_model(node: Any) -> bool:
    return isinstance(node, type) and issubclass(node, BaseModel)
