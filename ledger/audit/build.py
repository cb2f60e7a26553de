"""The fresh build the contract-code check compares with, made in the background (solc runs as a process of its
own, so the build overlaps with reading and checking the chain). Imports nothing heavy: the command line starts it
before loading the rest of the auditor."""

from __future__ import annotations

import threading
from typing import Any


def fresh_build() -> dict[str, Any]:
    """Compile contracts/ afresh with the pinned compiler and settings (``ledger.build``); the ledger's artifact."""
    from ledger.build import compile_contracts

    return compile_contracts()["CivicLedger"]


class BackgroundBuild:
    """:func:`fresh_build` in a daemon thread (an audit that stops early does not wait for it); calling the object
    waits for the artifact, or raises what the build raised (``ledger.errors.BuildError``)."""

    def __init__(self) -> None:
        self._artifact: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, name="audit-build", daemon=True).start()

    def _run(self) -> None:
        try:
            self._artifact = fresh_build()
        except BaseException as exc:  # handed to whoever waits for the build
            self._error = exc
        finally:
            self._done.set()

    def __call__(self) -> dict[str, Any]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._artifact is not None
        return self._artifact
