"""Run Hardhat's node (``npx hardhat node``, Hardhat 2 on its EDR engine) as a child process: a second node
implementation beside anvil (:class:`ledger.dev.node.AnvilNode`, whose interface this follows), so that the ledger is
tried against more than one node.

It starts offline (it compiles nothing and fetches nothing: ``hardhat.config.js`` pins the compiler to solc-js and
telemetry is off when nobody is asked), in about a second. It keeps no state across restarts. Its chain id is
``hardhat.config.js``'s ``networks.hardhat.chainId``, which reads ``CIVIC_HARDHAT_CHAIN_ID``. Test helpers that go
beyond the standard methods use its ``hardhat_*`` names where anvil has ``anvil_*`` ones (``hardhat_mine``,
``hardhat_setCode``); ``evm_snapshot``, ``evm_revert``, ``evm_mine`` and ``evm_increaseTime`` are the same.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Self

from ledger.dev.node import ROOT, LocalNode
from ledger.errors import NodeUnavailable


def hardhat_binary() -> str:
    """The pinned npm package's ``hardhat`` (it must run from the project, where ``hardhat.config.js`` is)."""
    candidate = ROOT / "node_modules" / ".bin" / "hardhat"
    if candidate.is_file() and shutil.which("node"):
        return str(candidate)
    raise NodeUnavailable("Hardhat not found: run `npm ci` in the project (it pins hardhat 2) with Node 20 on PATH")


class HardhatNode(LocalNode):
    """A loopback Hardhat node on `port` (default: a free one), its output appended to `log_path` if given."""

    name = "Hardhat's node"

    def __init__(
        self,
        port: int | None = None,
        chain_id: int = 31337,
        extra_args: list[str] | None = None,
        log_path: Path | None = None,
    ) -> None:
        super().__init__(port, chain_id, extra_args, log_path)

    def start(self, timeout: float = 60.0) -> Self:
        args = [hardhat_binary(), "node", "--hostname", "127.0.0.1", "--port", str(self.port), *self.extra_args]
        env = {**os.environ, "CIVIC_HARDHAT_CHAIN_ID": str(self.chain_id),
               # never ask (nobody is there to answer) and so never send: Hardhat reports only with consent
               "HARDHAT_DISABLE_TELEMETRY_PROMPT": "true"}
        chain_id = self._launch(args, timeout, cwd=ROOT, env=env)
        if chain_id != self.chain_id:
            self.stop()
            raise NodeUnavailable(f"Hardhat's node serves chain id {chain_id}, not {self.chain_id}: does "
                                  "hardhat.config.js's networks.hardhat.chainId read CIVIC_HARDHAT_CHAIN_ID?")
        return self
