"""What a runWorkflow answer means: the started instance, or a failure, transient or permanent.

Pure: it reads plain values (status code, body bytes, the Retry-After header, the reason
phrase, the body's text encoding) and returns a `CallAttempt`, so every kind of answer is a row
in a unit test. The client reads those values off the HTTP response; retrying is the caller's
decision (`trigger_daemon.engine.calls`).

A 2xx answer succeeds when its body is a JSON object: Formance's `data` object when there is
one, else the whole object. Anything else fails, and the failure says why: Formance's
`errorMessage`, else the start of the body, else the reason phrase. Only the statuses in
`core.retry.TRANSIENT_STATUSES` are worth trying again, after Retry-After when the answer
gives one; 401 and 403 too, marked `credentials_refused`: our credentials are wrong, and
every call will fail until they are fixed.

What an answer says is stored with its occurrence, and some characters JSON can carry cannot
be stored: a NUL (PostgreSQL keeps none in text or JSON) and a lone UTF-16 surrogate (no
UTF-8 encoder writes one). Each becomes U+FFFD in the instance and in the error, so the
outcome can be written; else its write would fail on every try and hold up its record.
"""

from __future__ import annotations

import json
import re
from typing import Any

from trigger_daemon.core.retry import is_transient_status, parse_retry_after
from trigger_daemon.ports import CallAttempt

EXCERPT_CHARS = 200  # of a body that is not a Formance error, in a failure's description
# Our credentials refused: an outage of ours, not the event's. The call waits (transient) and
# the caller treats it as the API being unavailable.
CREDENTIALS_REFUSED = frozenset({401, 403})
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
# Where a body can carry one: escaped (\u0000, \ud800-\udfff), as zero bytes (a UTF-16 or
# UTF-32 body), or as the UTF-8 form of a surrogate, which json reads with "surrogatepass".
_MAY_HOLD_UNSTORABLE = re.compile(rb"\\u(?:0000|[dD][89a-fA-F])|\x00|\xed[\xa0-\xbf]")


def classify(
    workflow_id: str,
    status: int,
    body: bytes,
    *,
    reason_phrase: str = "",
    retry_after: str | None = None,
    encoding: str = "utf-8",
) -> CallAttempt:
    """The attempt a runWorkflow answer stands for.

    `retry_after` is the Retry-After header as sent; `encoding` decodes a body that is not
    JSON into the failure's description. A 2xx answer needs neither, nor `reason_phrase`."""
    if 200 <= status < 300:
        instance = _instance(body)
        if instance is None:
            return failure(workflow_id, f"HTTP {status}: the answer is not a JSON object", status)
        return CallAttempt(instance=instance, status_code=status)
    detail = f"HTTP {status}: {_reason(body, reason_phrase, encoding)}"
    if status in CREDENTIALS_REFUSED:
        return failure(workflow_id, detail, status, transient=True, credentials_refused=True)
    if not is_transient_status(status):
        return failure(workflow_id, detail, status)
    return failure(
        workflow_id, detail, status, transient=True, retry_after=parse_retry_after(retry_after)
    )


def failure(
    workflow_id: str,
    detail: str,
    status: int | None = None,
    *,
    transient: bool = False,
    retry_after: float | None = None,
    credentials_refused: bool = False,
) -> CallAttempt:
    """A failed attempt, its error naming the call: `runWorkflow <workflow id>: <detail>`."""
    return CallAttempt(
        error=_storable(f"runWorkflow {workflow_id}: {detail}"),
        status_code=status,
        transient=transient,
        retry_after=retry_after,
        credentials_refused=credentials_refused,
    )


def json_object(body: bytes) -> dict[str, Any] | None:
    """The body as a JSON object; None when it is not JSON, not UTF-8, not an object, or
    nested too deep to read (json raises RecursionError, which no caller would expect)."""
    try:
        parsed = json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or nested too deep
        return None
    return parsed if isinstance(parsed, dict) else None


def _instance(body: bytes) -> dict[str, Any] | None:
    """The `data` object of a Formance answer, or the whole object when there is none."""
    parsed = json_object(body)
    if parsed is None:
        return None
    data = parsed.get("data")
    instance = data if isinstance(data, dict) else parsed
    if not _MAY_HOLD_UNSTORABLE.search(body):
        return instance
    try:
        return {_storable(key): _storable(value) for key, value in instance.items()}
    except RecursionError:  # nested nearly as deep as json reads: not worth keeping
        return None


def _reason(body: bytes, reason_phrase: str, encoding: str) -> str:
    """Formance's `errorMessage`, else the start of the body, else the reason phrase."""
    parsed = json_object(body)
    message = parsed.get("errorMessage") if parsed else None
    if isinstance(message, str) and message:
        return message
    try:
        text = body.decode(encoding, errors="replace")
    except LookupError:  # a codec that is not a text encoding (charset=base64, rot13, ...)
        text = body.decode("utf-8", errors="replace")
    excerpt = " ".join(text.split())[:EXCERPT_CHARS]
    return excerpt or reason_phrase


def _storable(value: Any) -> Any:
    """`value` with every NUL and lone surrogate in its strings and keys made U+FFFD."""
    if isinstance(value, str):
        return _UNSTORABLE.sub("\ufffd", value)
    if isinstance(value, dict):
        return {_storable(key): _storable(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_storable(item) for item in value]
    return value
