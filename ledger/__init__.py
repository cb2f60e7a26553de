"""Civic Ledger: a tamper-evident ledger of public-service commitments and their fulfilment."""

from __future__ import annotations

__version__ = "0.1.0"
