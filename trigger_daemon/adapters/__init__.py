"""Adapters: one module per outside system, each behind a protocol from ports.py;
adapters never import each other."""
