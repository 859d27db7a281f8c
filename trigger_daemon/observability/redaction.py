"""Secrets kept out of log lines, whatever carries them there.

    collect_secrets(model)   every SecretStr value in the settings, and the password of every
                             URL in a plain string setting (a postgresql:// store URL)
    Redactor(secrets)        a structlog processor: in every value of an event (nested dicts,
                             lists and the formatted traceback too) each known secret becomes
                             `***`, and so does the password of any `scheme://user:PASSWORD@`
                             URL, known or not

observability.configure_logging places the Redactor after the traceback is formatted and
before the renderer, in the structlog chain and in the one standard-library records take, so
no line reaches the output unredacted. Secrets shorter than MIN_SECRET_LENGTH are not searched
for (they would mask ordinary words); URL passwords are masked at any length.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, MutableMapping
from typing import Any

from pydantic import BaseModel, SecretStr

MASK = "***"
MIN_SECRET_LENGTH = 4
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s:/?#@]*:)[^\s/?#@]+@")


def collect_secrets(model: BaseModel) -> list[str]:
    """Every secret value in `model` and the models nested in it (lists and dicts included)."""
    return sorted(set(_secrets_in(model)), key=len, reverse=True)


def _secrets_in(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secrets_in(getattr(value, name))
    elif isinstance(value, str):
        yield from url_passwords(value)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _secrets_in(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secrets_in(item)


def url_passwords(text: str) -> list[str]:
    return [match.group(0)[len(match.group("head")) : -1] for match in _URL_PASSWORD.finditer(text)]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with each secret and every URL password replaced by `***`."""
    for secret in secrets:
        if secret in text:
            text = text.replace(secret, MASK)
    return _URL_PASSWORD.sub(lambda match: match.group("head") + MASK + "@", text)


class Redactor:
    """A structlog processor; built once with the secrets, so each event only substitutes."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        unique = {secret for secret in secrets if len(secret) >= MIN_SECRET_LENGTH}
        self._secrets = tuple(sorted(unique, key=len, reverse=True))  # longest first

    def __call__(
        self, logger: Any, method_name: str, event_dict: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in event_dict.items():
            kind = value.__class__
            if kind is str:  # most values: checked here, without a call to _clean
                event_dict[key] = self._redacted(value)
            elif not (kind is int or kind is bool or value is None):
                event_dict[key] = self._clean(value)
        return event_dict

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self._redacted(value)
        if isinstance(value, dict):
            return {key: self._clean(item) for key, item in value.items()}
        if isinstance(value, list | tuple):
            return [self._clean(item) for item in value]
        if isinstance(value, int | float | bool) or value is None:
            return value
        # Anything else (an exception, a URL object) is rendered by repr/str: redact that text.
        return self._redacted(str(value))

    def _redacted(self, text: str) -> str:
        # Most values hold no URL and no secret: substring checks instead of a regex, in a
        # plain loop (a generator per value cost a log line a tenth of its time).
        if "://" in text:
            return redact(text, self._secrets)
        for secret in self._secrets:
            if secret in text:
                return redact(text, self._secrets)
        return text
