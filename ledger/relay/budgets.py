"""What one agency key may make the relayer pay for: transactions and gas per rolling hour and per rolling day.

Every relayed submission of an agency key is charged to that key when it is accepted: one transaction, and its gas —
:func:`estimated_gas` until its transaction is mined, then the gas the receipts show (every transaction the relayer
paid for on its behalf, reverted ones included; nothing when it was refused before anything was sent, or when
someone else's transaction put it on chain). A submission that would take a key past any of its budgets is refused
before anything is stored, with :class:`BudgetExceeded` naming the budget and when enough of it is free again. The
charges live in the relay store's SQLite file (:class:`ledger.relay.store.RelayStore`), written in the same
transaction as the submission they pay for, so a restart forgets nothing. Citizens' ratings and disputes are never
charged to an agency: the relayer pays for them on its own account (``ledger.relay.store``, the citizens' lane).

Windows roll: a charge counts for 3600 s (86400 s) after it was made, so "resets" means "enough earlier charges have
aged out for this submission to fit".
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass
from typing import Any

from ledger.errors import LedgerError

HOUR = 3600
DAY = 86400

#: gas charged for a relayed submission until its receipt is known, by primary type: measured on anvil
#: (bench/gas.py: a relayed case event 70k, a commitment about 97k, a calendar 76k with seven days) and rounded up,
#: so a flood is refused up front rather than after the relayer paid for it
ESTIMATED_GAS = {
    "PublishCommitment": 120_000,
    "RetireCommitment": 100_000,
    "RecordCaseEvent": 100_000,
    "RecordCorrection": 100_000,
    "PublishHolidayCalendar": 150_000,
}
#: a relayed batch: a fixed part plus each event (bench/gas.py: about 7,900 per event in a batch of 100, more for
#: events of cases with a receipt)
ESTIMATED_BATCH_GAS = 60_000
ESTIMATED_GAS_PER_EVENT = 10_000


def estimated_gas(primary_type: str, entries: int) -> int:
    """Gas a relayed submission is charged before its transaction is mined."""
    if primary_type in ESTIMATED_GAS:
        return ESTIMATED_GAS[primary_type]
    return ESTIMATED_BATCH_GAS + ESTIMATED_GAS_PER_EVENT * entries


@dataclass(frozen=True)
class RelayBudgets:
    """Per agency key limits; 0 is no limit. The defaults suit a city's agency relaying through the API: 600
    transactions an hour and 5,000 a day (a record every six seconds, all day), 50 million gas an hour (ten full
    500-event batches, 5,000 case events) and 300 million a day (30,000 case events). An agency that writes more
    anchors Merkle batches with its own key (``ledger.batches``), which costs the relayer nothing."""

    transactions_per_hour: int = 600
    transactions_per_day: int = 5_000
    gas_per_hour: int = 50_000_000
    gas_per_day: int = 300_000_000

    def __post_init__(self) -> None:
        for name, value in self.limits().items():
            if value < 0:
                raise ValueError(f"relay budget {name} must be 0 (no limit) or more, not {value}")

    def limits(self) -> dict[str, int]:
        """Each budget by its public name (what a 429 names)."""
        return {
            "signer_transactions_per_hour": self.transactions_per_hour,
            "signer_gas_per_hour": self.gas_per_hour,
            "signer_transactions_per_day": self.transactions_per_day,
            "signer_gas_per_day": self.gas_per_day,
        }


class BudgetExceeded(LedgerError):
    """A submission would take its signer past one of its budgets. ``code`` is ``budget_exceeded`` (the API answers
    429); ``budget`` names the budget, ``resets_at`` (unix seconds) is when enough of it is free for this
    submission, ``retry_after`` the seconds until then."""

    code = "budget_exceeded"

    def __init__(self, budget: str, limit: int, used: int, requested: int, resets_at: float, now: float) -> None:
        self.budget = budget
        self.limit = limit
        self.used = used
        self.requested = requested
        self.resets_at = int(math.ceil(resets_at))
        self.retry_after = max(1, math.ceil(resets_at - now))
        unit = "transactions" if "transactions" in budget else "gas"
        window = "hour" if budget.endswith("hour") else "day"
        if requested > limit:
            message = (f"this submission alone ({requested} {unit}) is more than the signer's budget of {limit} {unit} "
                       f"per {window} ({budget}); split it")
        else:
            message = (f"the signer has used {used} of its {limit} {unit} per {window} ({budget}); this submission "
                       f"needs {requested} more, which is free again at {self.resets_at} (in {self.retry_after} s)")
        super().__init__(message)
        self.message = message

    @property
    def details(self) -> dict[str, Any]:
        return {"budget": self.budget, "limit": self.limit, "used": self.used, "resets_at": self.resets_at,
                "retry_after": self.retry_after}


@dataclass(frozen=True)
class BudgetUse:
    budget: str
    limit: int
    used: int


SCHEMA = """
CREATE TABLE IF NOT EXISTS relay_charges (
    key          TEXT PRIMARY KEY,                    -- the submission (relays.key)
    signer       TEXT NOT NULL,
    charged_at   REAL NOT NULL,                       -- unix time it was accepted
    gas_estimate INTEGER NOT NULL,                    -- counted until gas_used is known
    gas_used     INTEGER                              -- gas of the relayer's transactions for it, once settled
);
CREATE INDEX IF NOT EXISTS relay_charges_by_signer ON relay_charges (signer, charged_at);
"""


class BudgetBook:
    """Charges and checks budgets in the relay store's database; every method runs inside the caller's
    transaction (``db``), so a check and the charge it allows cannot interleave with another submission's."""

    def __init__(self, budgets: RelayBudgets) -> None:
        self.budgets = budgets

    @staticmethod
    def create(db: sqlite3.Connection) -> None:
        db.executescript(SCHEMA)

    def check(self, db: sqlite3.Connection, signer: str, gas: int, now: float) -> None:
        """Raise :class:`BudgetExceeded` if one more transaction of `gas` would pass a budget of `signer`. When
        several would, the one free again last is named (retrying earlier would be refused again)."""
        refusals: list[BudgetExceeded] = []
        for name, limit in self.budgets.limits().items():
            if limit == 0:
                continue
            window = HOUR if name.endswith("hour") else DAY
            charges = self._charges(db, signer, now - window)
            amounts = [1 if "transactions" in name else amount for at, amount in charges]
            requested = 1 if "transactions" in name else gas
            used = sum(amounts)
            if used + requested <= limit:
                continue
            # the oldest charges age out first: free again once enough of them have
            resets_at = (charges[-1][0] if charges else now) + window
            freed = 0
            for (at, _), amount in zip(charges, amounts, strict=True):
                freed += amount
                if used - freed + requested <= limit:
                    resets_at = at + window
                    break
            refusals.append(BudgetExceeded(name, limit, used, requested, resets_at, now))
        if refusals:
            raise max(refusals, key=lambda r: r.resets_at)

    def charge(self, db: sqlite3.Connection, key: str, signer: str, gas: int, now: float) -> None:
        """Charge an accepted submission (and forget charges too old to count)."""
        db.execute("DELETE FROM relay_charges WHERE charged_at < ?", (now - DAY,))
        db.execute(
            "INSERT INTO relay_charges (key, signer, charged_at, gas_estimate) VALUES (?, ?, ?, ?) "
            "ON CONFLICT (key) DO NOTHING",
            (key, signer, now, gas),
        )

    @staticmethod
    def settle(db: sqlite3.Connection, key: str, gas: int) -> None:
        """Add the gas of one settled transaction of the submission (0: settled without one) in place of the
        estimate. A submission that is not charged (a citizen's) is left alone."""
        db.execute("UPDATE relay_charges SET gas_used = COALESCE(gas_used, 0) + ? WHERE key = ?", (gas, key))

    def usage(self, db: sqlite3.Connection, signer: str, now: float) -> list[BudgetUse]:
        """Where `signer` stands against each budget now."""
        out = []
        for name, limit in self.budgets.limits().items():
            charges = self._charges(db, signer, now - (HOUR if name.endswith("hour") else DAY))
            used = len(charges) if "transactions" in name else sum(amount for _, amount in charges)
            out.append(BudgetUse(name, limit, used))
        return out

    @staticmethod
    def _charges(db: sqlite3.Connection, signer: str, since: float) -> list[tuple[float, int]]:
        """(time, gas) of the signer's charges after `since`, oldest first."""
        rows = db.execute(
            "SELECT charged_at, COALESCE(gas_used, gas_estimate) FROM relay_charges "
            "WHERE signer = ? AND charged_at > ? ORDER BY charged_at",
            (signer, since),
        ).fetchall()
        return [(float(at), int(gas)) for at, gas in rows]


__all__ = ["BudgetBook", "BudgetExceeded", "BudgetUse", "RelayBudgets", "estimated_gas"]
