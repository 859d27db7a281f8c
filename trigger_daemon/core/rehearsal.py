"""Testing one trigger against one event, and explaining what decided the answer.

`POST /v2/triggers/{id}/test`, `POST /v2/triggers/test` and `trigger-daemon test-trigger`
answer from here. A test event is a full envelope (`type` and `payload`), whose type and
version are checked like a live event's, or a bare payload, which is tested on the filter and
the vars only, as Formance's own testTrigger does. Every var is rendered even when the event
does not match, and a filter made of `&&` or `||` is explained clause by clause, so which half
was false is visible.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jmespath.exceptions
import jmespath.lexer

from trigger_daemon.core.events import Envelope, Unprocessable, envelope_from_object
from trigger_daemon.core.expressions import (
    ExpressionError,
    compile_expression,
    document_for,
    is_truthy,
    render_value,
)
from trigger_daemon.core.triggers import CompiledTrigger

SHOWN_LENGTH = 80  # a value quoted in the decision sentence; the explanation has it whole


@dataclass(frozen=True, slots=True)
class RehearsalEvent:
    """An event to test with; `bare` when only a payload was given."""

    envelope: Envelope
    bare: bool


def rehearsal_event(body: object, trigger_event: str) -> RehearsalEvent | Unprocessable:
    """A full envelope as given, or a bare payload wrapped in an envelope of the trigger's type."""
    bare = not (isinstance(body, dict) and isinstance(body.get("type"), str) and "payload" in body)
    envelope = envelope_from_object({"type": trigger_event, "payload": body} if bare else body)
    return envelope if isinstance(envelope, Unprocessable) else RehearsalEvent(envelope, bare)


@dataclass(frozen=True, slots=True)
class FieldCheck:
    """The trigger's event type or version against the event's; `expected` None: any."""

    expected: str | None
    actual: str | None

    @property
    def matches(self) -> bool:
        return self.expected is None or self.expected == self.actual


@dataclass(frozen=True, slots=True)
class Evaluated:
    """An expression and what it gave: a value (maybe null) or an error."""

    expression: str
    value: Any = None
    error: str | None = None

    @property
    def truthy(self) -> bool:
        return self.error is None and is_truthy(self.value)


@dataclass(frozen=True, slots=True)
class FilterExplanation:
    """The whole filter's result and, for `a && b` or `a || b`, each top-level clause's."""

    result: Evaluated
    operator: str | None = None  # "&&" or "||" when the filter is split into clauses
    clauses: tuple[Evaluated, ...] = ()


@dataclass(frozen=True, slots=True)
class Explanation:
    event_checked: bool  # False for a bare payload: type and version are not checked
    type: FieldCheck
    version: FieldCheck
    filter: FilterExplanation | None  # None: the trigger has no filter
    variables: Mapping[str, Evaluated]
    decision: str


@dataclass(frozen=True, slots=True)
class VarReport:
    value: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class TriggerTestReport:
    """The SDK's answer (match, filter error, rendered vars) and the explanation."""

    match: bool
    filter_error: str | None
    variables: dict[str, VarReport]
    explanation: Explanation


def explain(compiled: CompiledTrigger, event: RehearsalEvent) -> TriggerTestReport:
    """Evaluate one trigger against one event; nothing short-circuits, so every part of the
    explanation is filled in even when an earlier one already decided "no match"."""
    trigger, envelope = compiled.trigger, event.envelope
    document = document_for(envelope)
    type_check = FieldCheck(trigger.event, envelope.type)
    version_check = FieldCheck(trigger.version, envelope.version)
    filter_ = None
    if trigger.filter is not None:
        filter_ = _explain_filter(compiled, trigger.filter, document)
    variables: dict[str, VarReport] = {}
    explained_vars: dict[str, Evaluated] = {}
    for name, expression in compiled.vars.items():
        try:
            rendered = render_value(expression.evaluate(document))
        except ExpressionError as exc:
            variables[name] = VarReport(error=str(exc))
            explained_vars[name] = Evaluated(trigger.vars[name], error=str(exc))
        else:
            variables[name] = VarReport(value=rendered)
            explained_vars[name] = Evaluated(trigger.vars[name], value=rendered)

    filter_error: str | None = None
    if not event.bare and not type_check.matches:
        filter_error = f"event type {envelope.type!r} is not {trigger.event!r}"
    elif not event.bare and not version_check.matches:
        filter_error = f"event version {envelope.version!r} is not {trigger.version!r}"
    elif filter_ is not None:
        filter_error = filter_.result.error
    matched = filter_error is None and (filter_ is None or filter_.result.truthy)
    explanation = Explanation(
        event_checked=not event.bare,
        type=type_check,
        version=version_check,
        filter=filter_,
        variables=explained_vars,
        decision=_decision(matched, event.bare, type_check, version_check, filter_, variables),
    )
    return TriggerTestReport(matched, filter_error, variables, explanation)


def _explain_filter(
    compiled: CompiledTrigger, source: str, document: Mapping[str, Any]
) -> FilterExplanation:
    result = _evaluate(source, compiled.evaluate_filter, document)
    operator, clause_sources = top_level_clauses(source)
    clauses = tuple(
        _evaluate(clause, compile_expression(clause).evaluate, document)
        for clause in clause_sources
    )
    return FilterExplanation(result, operator, clauses)


def _evaluate(source: str, evaluate: Any, document: Mapping[str, Any]) -> Evaluated:
    try:
        return Evaluated(source, value=evaluate(document))
    except ExpressionError as exc:
        return Evaluated(source, error=str(exc))


_OPENING = frozenset({"lparen", "lbracket", "lbrace", "filter"})
_CLOSING = frozenset({"rparen", "rbracket", "rbrace"})
_OPERATORS = {"or": "||", "and": "&&"}


def top_level_clauses(source: str) -> tuple[str | None, tuple[str, ...]]:
    """`a && b && c` → ("&&", (a, b, c)); `a && b || c` → ("||", ("a && b", "c")), since `||`
    binds loosest; a filter wrapped in parentheses is looked into. (None, ()) when the filter
    is not made of `&&` / `||` at its top level (a pipe there, for one, takes precedence)."""
    text = source.strip()
    try:
        tokens = list(jmespath.lexer.Lexer().tokenize(text))
    except jmespath.exceptions.LexerError:
        return None, ()
    depth = 0
    at_top: dict[str, list[int]] = {"or": [], "and": [], "pipe": []}
    for token in tokens:
        kind = token["type"]
        if kind in _OPENING:
            depth += 1
        elif kind in _CLOSING:
            depth -= 1
            if depth == 0 and token["start"] == len(text) - 1 and _wrapped(tokens):
                return top_level_clauses(text[1:-1])
        elif depth == 0 and kind in at_top:
            at_top[kind].append(token["start"])
    if at_top["pipe"]:
        return None, ()
    for kind in ("or", "and"):
        if at_top[kind]:
            return _OPERATORS[kind], _split(text, at_top[kind])
    return None, ()


def _wrapped(tokens: Sequence[Mapping[str, object]]) -> bool:
    """The whole text is one parenthesised group: `( … )` with the first `(` closing last."""
    if tokens[0]["type"] != "lparen":
        return False
    depth = 0
    for token in tokens[:-2]:  # every token before the final `)` and `eof`
        depth += token["type"] in _OPENING
        depth -= token["type"] in _CLOSING
        if depth == 0:
            return False
    return True


def _split(text: str, operator_starts: list[int]) -> tuple[str, ...]:
    """The text between the two-character operators starting at `operator_starts`."""
    edges = [-2, *operator_starts, len(text)]
    return tuple(text[start + 2 : end].strip() for start, end in itertools.pairwise(edges))


def _decision(
    matched: bool,
    bare: bool,
    type_check: FieldCheck,
    version_check: FieldCheck,
    filter_: FilterExplanation | None,
    variables: Mapping[str, VarReport],
) -> str:
    """One sentence: what decided the answer, the way an operator would say it."""
    unchecked = " (a bare payload: its type and version are not checked)" if bare else ""
    if not bare and not type_check.matches:
        return (
            f"no match: the event's type is {type_check.actual!r}, "
            f"the trigger wants {type_check.expected!r}"
        )
    if not bare and not version_check.matches:
        return (
            f"no match: the event's version is {version_check.actual!r}, "
            f"the trigger wants {version_check.expected!r}"
        )
    if filter_ is None:
        because = "the trigger has no filter"
    elif filter_.result.error is not None:
        return f"no match: the filter failed: {filter_.result.error}{unchecked}"
    elif not filter_.result.truthy:
        return f"no match: {_why_false(filter_)}{unchecked}"
    else:
        because = f"the filter is {_shown(filter_.result.value)}"
    failing = [name for name, var in variables.items() if var.error is not None]
    if failing:
        names = ", ".join(repr(name) for name in failing)
        return (
            f"matches ({because}), but var {names} cannot be rendered: "
            f"a live event would end failed{unchecked}"
        )
    return f"matches: {because}{unchecked}"


def _why_false(filter_: FilterExplanation) -> str:
    value = _shown(filter_.result.value)
    if filter_.operator == "&&":
        for number, clause in enumerate(filter_.clauses, start=1):
            if not clause.truthy:
                return (
                    f"the filter is {value}: clause {number} of {len(filter_.clauses)}, "
                    f"`{clause.expression}`, is {_shown(clause)}"
                )
    if filter_.operator == "||":
        return f"the filter is {value}: none of its {len(filter_.clauses)} clauses is true"
    return f"the filter is {value}"


def _shown(value: Any) -> str:
    """A value as a sentence shows it: JSON, cut short past SHOWN_LENGTH characters."""
    if isinstance(value, Evaluated):
        return f"an error ({value.error})" if value.error is not None else _shown(value.value)
    text = "null" if value is None else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= SHOWN_LENGTH else text[: SHOWN_LENGTH - 1] + "…"
