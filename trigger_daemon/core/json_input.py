"""JSON from outside (Kafka records, API bodies) parsed so that nothing in it can hurt later.

`json.loads` alone accepts things the rest of the daemon cannot survive:

    NaN, Infinity            not JSON; PostgreSQL's JSONB and other clients refuse them later
    "\\ud800" (a lone half)  a str that cannot be encoded as UTF-8: the store write, the log line
                             and the workflow call would each fail on it
    "\\u0000" (NUL)          PostgreSQL stores no NUL in text or JSONB: the store write would
                             fail on every redelivery and block the partition
    [[[[...]]]] very deep    RecursionError in the parser, or later in whatever walks the value
    a 5000-digit integer     ValueError (Python's int-string conversion limit), not JSONDecodeError

`loads` turns each into a JSONInputError whose message says what was wrong (callers prefix it
with what was being read). Integers stay exact.

`loads_utf8` is the same for UTF-8 bytes (Kafka record values), four to five times faster on
a typical event: it parses with orjson, and hands whatever orjson refuses, and every document
holding a run of 19 or more digits (orjson turns integers beyond 64 bits into floats), to
`loads`, so its answer and its error are always those of `loads`.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson

# Formance events nest a few levels (payload.transactions[].postings[]); 100 is far beyond any
# real document and far below the interpreter's recursion limit.
MAX_DEPTH = 100

# Where orjson could lose an integer's exactness (see the module docstring): a run of 19
# digits, found by mapping every digit to "0" and looking for 19 zeros (a tenth of the cost of
# a regular expression). Digits inside strings count too, which only sends the document the
# slow way. The same mapping turns "{" into "[", so one count of "[" gives the openings.
_DIGITS_TO_ZERO = bytes.maketrans(b"123456789{", b"000000000[")
_LONG_DIGIT_RUN = b"0" * 19
_OPENING = ord("[")
_BACKSLASH = ord("\\")

# A \\u escape of a UTF-16 surrogate: only then can a lone surrogate reach a decoded str.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


class JSONInputError(ValueError):
    """The text is not JSON the daemon accepts; the message says why, for a person."""


def loads(text: str) -> Any:
    """Parse `text` as strict JSON (no NaN/Infinity, no lone surrogates, nesting bounded)."""
    try:
        value = _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise JSONInputError(str(exc)) from None
    except RecursionError:
        raise JSONInputError(f"nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # an integer beyond the int-string conversion limit, NaN
        raise JSONInputError(_first_sentence(exc)) from None
    if text.count("[") + text.count("{") > MAX_DEPTH:
        _refuse_deep(value)
    if _SURROGATE_ESCAPE.search(text) and not _encodable(value):
        raise JSONInputError("a string holds an unpaired UTF-16 surrogate escape (\\ud800-\\udfff)")
    if "\\u0000" in text:
        _refuse_nul(value)
    return value


def loads_utf8(data: bytes) -> Any:
    """`loads` for UTF-8 bytes, faster; UnicodeDecodeError when `data` is not UTF-8."""
    # Each check below is the cheapest form measured for a typical event: find() rather than
    # `in` for a bytes pattern, an int for one byte (memchr), the checks inline.
    shape = data.translate(_DIGITS_TO_ZERO)
    if shape.find(_LONG_DIGIT_RUN) < 0:
        try:
            value = orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # `loads` refuses it too, and says why in its own words
        else:
            # orjson refuses NaN, Infinity and lone surrogates itself; what it accepts and
            # `loads` does not: deep nesting and NUL characters (only escaped: raw control
            # characters are not JSON). Most events hold no backslash at all.
            if shape.count(_OPENING) > MAX_DEPTH:
                _refuse_deep(value)
            if _BACKSLASH in data and data.find(b"\\u0000") >= 0:
                _refuse_nul(value)
            return value
    return loads(data.decode("utf-8"))


# Both are called only when the text could hold what they look for: counting brackets and
# finding an escape in the text is fast, walking the value is not.
def _refuse_deep(value: Any) -> None:
    if depth_exceeds(value, MAX_DEPTH):
        raise JSONInputError(f"nested deeper than {MAX_DEPTH} levels")


def _refuse_nul(value: Any) -> None:
    if any("\x00" in string for string in _strings(value)):
        raise JSONInputError("a string holds a NUL character (\\u0000)")


def _strings(value: Any) -> list[str]:
    """Every string in `value`, object keys included (iterative)."""
    found: list[str] = []
    stack = [value]
    while stack:
        current = stack.pop()
        if isinstance(current, str):
            found.append(current)
        elif isinstance(current, dict):
            found.extend(current)
            stack.extend(current.values())
        elif isinstance(current, list):
            stack.extend(current)
    return found


def depth_exceeds(value: Any, limit: int) -> bool:
    """Whether arrays and objects nest more than `limit` levels (iterative: no recursion)."""
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        current, depth = stack.pop()
        if depth > limit:
            return True
        children = current.values() if isinstance(current, dict) else current
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False


def _encodable(value: Any) -> bool:
    try:
        json.dumps(value, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


# Built once: json.loads(text, parse_constant=...) builds a decoder and its scanner per call,
# a third of the parse time of a typical event.
_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


def _first_sentence(exc: Exception) -> str:
    return str(exc).split(";")[0]
