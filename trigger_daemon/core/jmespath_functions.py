"""Calls of JMESPath's built-in functions for compiled expressions, chosen once per call site.

jmespath's Functions.call_function checks the arity and every argument's type on each call,
about a microsecond. The arity is checked at compile time (core.expression_checks); the common
functions below check their arguments' types inline and call jmespath's implementation (or the
same builtin), and any argument of another type goes to call_function, so an error is jmespath's
own message.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from typing import Any

from trigger_daemon.core.expression_bounds import BOUNDED_FUNCTIONS

Call = Callable[[list[Any]], Any]  # the arguments, evaluated, to the result
_TEXT_AND_CONTAINERS = (str, list, dict)
_NUMBERS = (int, float)


def compiled_call(name: str, arity: int, fallback: Callable[[str, list[Any]], Any]) -> Call:
    """How a call of `name` with `arity` arguments is made: a fast path when there is one,
    otherwise `fallback` (jmespath's call_function, checking everything)."""
    spec = BOUNDED_FUNCTIONS.FUNCTION_TABLE.get(name)
    if spec is None:
        return lambda arguments: fallback(name, arguments)
    implementation, signature = spec["function"], spec["signature"]
    variadic = any(argument.get("variadic") for argument in signature)
    arity_fits = arity >= len(signature) if variadic else arity == len(signature)
    if not arity_fits:
        return lambda arguments: fallback(name, arguments)
    if name == "to_string":
        return lambda arguments: _to_string(*arguments)
    if all(not argument["types"] for argument in signature):
        # Any value is accepted (to_number, to_array, type, not_null).
        return lambda arguments: implementation(BOUNDED_FUNCTIONS, *arguments)
    fast = _FAST_PATHS.get(name)
    if fast is None:
        return lambda arguments: fallback(name, arguments)
    return lambda arguments: fast(arguments, name, fallback)


def scalar_call(name: str) -> Callable[[Any], Any] | None:
    """How `name` of one argument is called when its answer is always a number or null
    (length, to_number, abs, ceil, floor), or None for the other functions."""
    return _SCALAR_CALLS.get(name)


def _to_string(value: Any) -> Any:
    """jmespath's to_string: a string as is, anything else as compact JSON. A scalar's JSON is
    the same with json.dumps' defaults, which reuse one encoder instead of making one."""
    kind = value.__class__
    if kind is str:
        return value
    if kind is int or kind is float or kind is bool or value is None:
        return json.dumps(value)
    return BOUNDED_FUNCTIONS.call_function("to_string", [value])


def _length(value: Any) -> Any:
    if value.__class__ in _TEXT_AND_CONTAINERS:
        return len(value)
    return BOUNDED_FUNCTIONS.call_function("length", [value])


def _number_function(name: str, implementation: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def call(value: Any) -> Any:
        if value.__class__ in _NUMBERS:
            return implementation(value)
        return BOUNDED_FUNCTIONS.call_function(name, [value])

    return call


_SCALAR_CALLS: dict[str, Callable[[Any], Any]] = {
    "length": _length,
    # Any argument is accepted: no check to make.
    "to_number": functools.partial(
        BOUNDED_FUNCTIONS.FUNCTION_TABLE["to_number"]["function"], BOUNDED_FUNCTIONS
    ),
    "abs": _number_function("abs", abs),
    "ceil": _number_function("ceil", math.ceil),  # as jmespath's _func_ceil and _func_floor
    "floor": _number_function("floor", math.floor),
}


def _starts_with(arguments: list[Any], name: str, fallback: Callable[[str, list[Any]], Any]) -> Any:
    text, prefix = arguments
    if text.__class__ is str and prefix.__class__ is str:
        return text.startswith(prefix)
    return fallback(name, arguments)


def _ends_with(arguments: list[Any], name: str, fallback: Callable[[str, list[Any]], Any]) -> Any:
    text, suffix = arguments
    if text.__class__ is str and suffix.__class__ is str:
        return text.endswith(suffix)
    return fallback(name, arguments)


def _contains(arguments: list[Any], name: str, fallback: Callable[[str, list[Any]], Any]) -> Any:
    subject, search = arguments
    if subject.__class__ is list or (subject.__class__ is str and search.__class__ is str):
        return search in subject
    return fallback(name, arguments)


_FAST_PATHS: dict[str, Callable[[list[Any], str, Callable[[str, list[Any]], Any]], Any]] = {
    "starts_with": _starts_with,
    "ends_with": _ends_with,
    "contains": _contains,
}
