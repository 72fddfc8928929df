"""A page that takes exactly the query parameters of a JSON route, by reading that route's
signature: names, types, bounds, defaults and descriptions.

Why mirror rather than list: the event log page's filters are the ``GET /events`` filters, and
that route gains filters over time. A page built from the route's own signature accepts the same
names (the unknown-parameter check refuses the same others), validates them with the same
bounds through Litestar, and shows each filter's description from the route, so the page and
the JSON route cannot drift apart. The page then calls the route's own function in-process,
which also keeps the route's privacy rules and numbers.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from litestar.params import KwargDefinition

__all__ = ["Filter", "mirror"]


@dataclass(frozen=True)
class Filter:
    """One query parameter of the mirrored route, as a form field."""

    name: str
    """The name in the query string."""
    argument: str
    """The route function's argument that receives it."""
    description: str
    choices: tuple[str, ...]
    """Values to pick from (a select); empty: typed freely."""
    numeric: bool
    default: Any


def _unwrapped(annotation: Any) -> tuple[Any, KwargDefinition | None]:
    if typing.get_origin(annotation) is typing.Annotated:
        base, *extras = typing.get_args(annotation)
        found = next((e for e in extras if isinstance(e, KwargDefinition)), None)
        return base, found
    return annotation, None


def _plain(base: Any) -> list[Any]:
    """The non-None members of ``base`` (a union or a single type)."""
    members = typing.get_args(base) if typing.get_origin(base) in (typing.Union, _UnionType) else ()
    return [m for m in (members or (base,)) if m is not type(None)]


_UnionType = type(int | None)


def _filter(
    argument: str, annotation: Any, default: Any, vocabularies: Mapping[str, Sequence[str]]
) -> Filter:
    base, definition = _unwrapped(annotation)
    name = (definition.name or definition.query if definition else None) or argument
    members = _plain(base)
    choices: tuple[str, ...] = ()
    if len(members) == 1 and typing.get_origin(members[0]) is Literal:
        choices = tuple(str(c) for c in typing.get_args(members[0]))
    elif name in vocabularies:
        choices = tuple(vocabularies[name])
    numeric = bool(members) and all(m in (int, float) for m in members)
    description = (definition.description if definition else None) or ""
    return Filter(name, argument, description, choices, numeric, default)


def mirror(
    source: Callable[..., Awaitable[Any]],
    page: Callable[..., Awaitable[Any]],
    *,
    passed: Sequence[str] = ("request", "reads"),
    vocabularies: Mapping[str, Sequence[str]] | None = None,
) -> list[Filter]:
    """Give ``page`` (``async def page(request, reads, **filters)``) the query parameters of
    the route function ``source``, whose other arguments are ``self`` and those in ``passed``
    (handed to it by the page); return them as :class:`Filter` rows, in the route's order.
    ``vocabularies``: the values a text parameter takes (by query name), for a select."""
    hints = typing.get_type_hints(source, include_extras=True)
    page_hints = typing.get_type_hints(page, include_extras=True)
    parameters = [
        inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY, annotation=page_hints[n])
        for n in passed
    ]
    filters = []
    for argument, parameter in inspect.signature(source).parameters.items():
        if argument == "self" or argument in passed:
            continue
        parameters.append(
            inspect.Parameter(
                argument,
                inspect.Parameter.KEYWORD_ONLY,
                default=parameter.default,
                annotation=hints[argument],
            )
        )
        filters.append(_filter(argument, hints[argument], parameter.default, vocabularies or {}))
    page.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        parameters, return_annotation=page_hints["return"]
    )
    page.__annotations__ = {
        **{p.name: p.annotation for p in parameters},
        "return": page_hints["return"],
    }
    return filters
