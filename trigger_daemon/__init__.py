"""trigger-daemon: Formance ledger and payment events in, orchestration workflow runs out."""

__version__ = "0.1.0"
