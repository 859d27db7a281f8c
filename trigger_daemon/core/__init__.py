"""The pure core: decoding, expressions, triggers, matching, occurrences.

Nothing here does I/O, starts tasks or logs. It imports only the standard library,
jmespath and pydantic (a test pins this), so every decision is a plain function call.
"""
