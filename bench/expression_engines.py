"""JMESPath engines on the daemon's filters and on the compliance suite: µs per evaluation and
cases answered as the suite expects.

Engines: the daemon's interpreter (jmespath's TreeInterpreter with the spec's comparisons and
the evaluation bounds), the daemon's compiled closures (what triggers use), and, when they are
importable, the native engines on PyPI: `jpx` (Rust, jpx-core), `rjmespath` (Rust, jmespath.rs)
and `pybind11-jsoncons` (C++, jsoncons). A native engine's time includes turning the Python
document into what it reads (a JSON string for rjmespath, a jsoncons value for jsoncons) and
its answer back into Python, since the daemon holds every event as Python values.

    .venv/bin/python bench/expression_engines.py            # the daemon's two engines
    python3 -m venv /tmp/jp-venv && /tmp/jp-venv/bin/pip install jmespath orjson jpx \\
        rjmespath pybind11-jsoncons
    PYTHONPATH=. /tmp/jp-venv/bin/python bench/expression_engines.py   # and the native ones

The native engines are measured in a throwaway virtualenv, never in the project's: none of them
is a dependency (bench/RESULTS.md says why).
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys
import timeit
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from trigger_daemon.core.events import Envelope, decode
from trigger_daemon.core.expressions import compile_expression, document_for, interpret
from trigger_daemon.devtools import events

COMPLIANCE = Path(__file__).parent.parent / "tests" / "unit" / "core" / "jmespath_compliance"
FILTERS = [
    "event.transactions[?postings[?asset=='USD/2']] | length(@) > `0`",
    "length(event.transactions[?postings[?amount > `100`]]) > `0`",
    "payload.amount > `100`",
    "event.destination == 'treasury:0'",
    "to_string(event.transactions[0].postings[0].amount)",
]
# What the daemon needs beyond the suite: exact integers (ledger amounts pass 2**53) and DESIGN
# §4's comparisons (an ordering comparison of non-numbers is null).
EXACTNESS: list[tuple[str, Any]] = [
    ("a", {"a": 2**70 + 1}),
    ("a", {"a": 12500}),
    ("a > `9007199254740992`", {"a": 9007199254740993}),
    ("a < b", {"a": "a", "b": "b"}),
    ("a > `1`", {"a": "2"}),
]
Search = Callable[[Any], Any]  # the document to the answer
Engine = Callable[[str], Search]  # an expression's source to its compiled search


def daemon_engines() -> dict[str, Engine]:
    def interpreter(source: str) -> Search:
        tree = compile_expression(source)._ast
        return lambda document: interpret(tree, document)

    def compiled(source: str) -> Search:
        expression = compile_expression(source)
        assert expression.compiled
        return expression.evaluate

    return {"interpreter": interpreter, "compiled": compiled}


def native_engines() -> dict[str, Engine]:
    """Each native engine that imports here, behind one signature."""
    found: dict[str, Engine] = {}
    modules = {name: _import(name) for name in ("jpx", "rjmespath", "pybind11_jsoncons", "orjson")}
    jpx, rjmespath, jsoncons, orjson = modules.values()
    if jpx is not None:
        found["jpx"] = lambda source: jpx.compile(source).search
    if rjmespath is not None and orjson is not None:

        def rjmespath_engine(source: str) -> Search:
            expression = rjmespath.compile(source)
            return lambda document: expression.search(orjson.dumps(document).decode())

        found["rjmespath"] = rjmespath_engine
    if jsoncons is not None:

        def jsoncons_engine(source: str) -> Search:
            expression = jsoncons.JMESPathExpr.build(source)
            return lambda document: expression.evaluate(
                jsoncons.Json().from_python(document)
            ).to_python()

        found["jsoncons"] = jsoncons_engine
    return found


def _answer(engine: Engine, source: str, document: Any) -> str:
    try:
        return repr(engine(source)(document))
    except Exception as exc:  # reported, not raised
        return f"{type(exc).__name__}: {str(exc)[:40]}"


def _import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def ledger_document() -> dict[str, Any]:
    """A ~350-byte committed-transactions event, as the daemon decodes it, plus a payload
    amount for the `payload.amount` filter."""
    record = events.committed_transaction(1, 12_500, asset="USD/2", destination="users:1234")
    envelope = decode(events.encode(record))
    assert isinstance(envelope, Envelope)
    return {**document_for(envelope), "payload": {**envelope.payload, "amount": 150}}


def microseconds(search: Search, document: Any, repeat: int) -> float:
    timer = timeit.Timer(lambda: search(document))
    loops, _ = timer.autorange()
    best = min(timer.repeat(repeat=repeat, number=loops))
    return best / loops * 1e6


def compliance(engine: Engine) -> tuple[int, int, int]:
    """(cases answered as expected, cases answered otherwise, cases not compiled)."""
    passed = differing = refused = 0
    for path in sorted(COMPLIANCE.glob("*.json")):
        for suite in json.loads(path.read_text()):
            for case in suite["cases"]:
                if "result" not in case and "error" not in case:
                    continue  # a benchmark case with no expected answer
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        search = engine(case["expression"])
                except Exception:  # each engine refuses in its own way
                    if "error" in case:
                        passed += 1
                    else:
                        refused += 1
                    continue
                try:
                    answer: Any = ("value", search(suite["given"]))
                except Exception:  # each engine fails in its own way
                    answer = ("error", None)
                expected = ("error", None) if "error" in case else ("value", case["result"])
                same = answer[0] == expected[0] and (
                    answer[0] == "error" or _same_json(answer[1], expected[1])
                )
                passed, differing = (passed + 1, differing) if same else (passed, differing + 1)
    return passed, differing, refused


def _same_json(left: Any, right: Any) -> bool:
    """Equal as JSON: 1 and 1.0 alike, true and 1 not."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True) or (
        _numbers_as_floats(left) == _numbers_as_floats(right)
    )


def _numbers_as_floats(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, list):
        return [_numbers_as_floats(item) for item in value]
    if isinstance(value, dict):
        return {key: _numbers_as_floats(item) for key, item in value.items()}
    return repr(value)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=5, help="timings per figure (best kept)")
    args = parser.parse_args(argv)
    engines = {**daemon_engines(), **native_engines()}
    document = ledger_document()
    print(f"Python {sys.version.split()[0]}; document {len(json.dumps(document))} bytes as JSON")
    print("µs per evaluation (best of --repeat), and the answer:")
    for source in FILTERS:
        print(f"  {source}")
        for name, engine in engines.items():
            try:
                search = engine(source)
                answer = search(document)
                figure = f"{microseconds(search, document, args.repeat):8.2f} µs  {answer!r}"
            except Exception as exc:  # reported, not raised: a native engine's gap
                figure = f"     n/a    {type(exc).__name__}: {exc}"
            print(f"    {name:12} {figure}")
    print("exactness: " + "; ".join(f"{source} on {document}" for source, document in EXACTNESS))
    for name, engine in engines.items():
        print(f"    {name:12} " + "; ".join(_answer(engine, *case) for case in EXACTNESS))
    print("compliance suite (cases with an expected answer): as expected / otherwise / refused")
    for name, engine in engines.items():
        passed, differing, refused = compliance(engine)
        print(f"    {name:12} {passed} / {differing} / {refused}")


if __name__ == "__main__":
    main()
