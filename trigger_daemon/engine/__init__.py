"""The engine: records in, workflow runs out, offsets committed.

pipeline  fetch, key-ordered concurrency, bounded work, commits that never skip
records   one record: decode, triage, match, begin occurrences, dead letters
runner    one occurrence: render, call, record the outcome, publish the event
calls     the runWorkflow retry loop behind the circuit breaker
redrive   failed occurrences run again with their idempotency keys
"""
