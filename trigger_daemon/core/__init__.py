"""The pure core: decoding, expressions, triggers, matching, occurrences.

Nothing here does I/O, starts tasks or logs, so every decision is a plain function call
(tests/unit/test_layering.py pins what it may import).
"""
