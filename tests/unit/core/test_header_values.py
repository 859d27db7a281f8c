"""What an HTTP header value can carry."""

import pytest

from trigger_daemon.core.header_values import header_safe


@pytest.mark.parametrize(
    "value",
    ["", "trigger-1:SAVED_PAYMENT:k-1", "a\tb", "virement-fa\u00e7ade", "\ufffd", "\U0001f600"],
    ids=["empty", "ascii", "tab", "beyond-ascii", "replacement", "astral"],
)
def test_what_a_header_can_carry(value: str) -> None:
    assert header_safe(value)


@pytest.mark.parametrize(
    "value",
    ["a\nb", "a\rb", "a\x00b", "a\x01b", "a\x1fb", "a\x7fb", chr(0xD800), "a" + chr(0xDFFF)],
    ids=["lf", "cr", "nul", "soh", "us", "del", "high-surrogate", "low-surrogate"],
)
def test_what_no_header_can_carry(value: str) -> None:
    assert not header_safe(value)
