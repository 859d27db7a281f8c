"""Realistic Formance events for the demo, the tests and the benchmarks.

Shapes follow the schemas in shared/formance-events (ledger v2, payments v3): amounts are
integers, some beyond 2**53, as real ledgers produce.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Any


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


def committed_transaction(
    tx_id: int,
    amount: int,
    asset: str = "USD/2",
    destination: str = "users:1234",
    ledger: str = "main",
) -> dict[str, Any]:
    return {
        "app": "ledger",
        "version": "v2",
        "date": _now(),
        "type": "COMMITTED_TRANSACTIONS",
        "ledger": ledger,
        "idempotency_key": f"tx-{ledger}-{tx_id}",
        "payload": {
            "ledger": ledger,
            "transactions": [
                {
                    "id": tx_id,
                    "postings": [
                        {
                            "source": "world",
                            "destination": destination,
                            "amount": amount,
                            "asset": asset,
                        },
                    ],
                    "reference": f"ref-{tx_id}",
                    "metadata": {"channel": "api"},
                    "timestamp": _now(),
                    "reverted": False,
                }
            ],
        },
    }


def saved_payment(status: str, amount: int, provider: str = "STRIPE") -> dict[str, Any]:
    payment_id = str(uuid.uuid4())
    return {
        "app": "payments",
        "version": "v3",
        "date": _now(),
        "type": "SAVED_PAYMENT",
        "payload": {
            "id": payment_id,
            "connectorID": "stripe-main",
            "provider": provider,
            "reference": f"pi_{payment_id[:12]}",
            "createdAt": _now(),
            "type": "PAY-IN",
            "status": status,
            "scheme": "visa",
            "asset": "EUR/2",
            "amount": amount,
            "initialAmount": amount,
            "metadata": {},
        },
    }


def saved_metadata(account: str, review: str, reason: str = "velocity") -> dict[str, Any]:
    return {
        "app": "ledger",
        "version": "v2",
        "date": _now(),
        "type": "SAVED_METADATA",
        "ledger": "main",
        "payload": {
            "ledger": "main",
            "targetType": "ACCOUNT",
            "targetId": account,
            "metadata": {"review": review, "reason": reason},
        },
    }


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event, separators=(",", ":")).encode()
