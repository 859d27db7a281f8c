"""Fixtures shared by the observability tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import structlog


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """configure_logging is process-wide: put the defaults back after the test. The test calls
    it in its body, where pytest's captured stderr is the stream it writes to."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    structlog.reset_defaults()
    root.handlers[:] = handlers
    root.setLevel(level)
