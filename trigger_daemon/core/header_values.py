"""What an HTTP header value can carry, for the values the daemon puts in one from outside:
an event's idempotency key, a record's traceparent, a bearer token.

httpx and aiohttp refuse a control character in a header (a line break would end the header,
or forge the next one), and no encoder writes a lone UTF-16 surrogate; the tab is allowed.
Sending such a value raises every time it is tried, so it is checked before.
"""

from __future__ import annotations

import re

_UNSENDABLE = re.compile("[\x00-\x08\x0a-\x1f\x7f\ud800-\udfff]")


def header_safe(value: str) -> bool:
    """Whether `value` can be sent as an HTTP header value."""
    return _UNSENDABLE.search(value) is None
