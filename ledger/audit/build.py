"""The fresh build the contract-code check compares with, made in the background (solc runs as a process of its
own, so the build overlaps with reading and checking the chain), and kept in a verified cache so that auditing again
the same sources with the same compiler does not wait for the compiler again. Imports nothing heavy: the command
line starts it before loading the rest of the auditor.

Why a cached build is as trustworthy as a fresh one:

- its key is the SHA-256 of the *complete* compiler input: the compiler's full version string (asked of the compiler
  itself, every run), the version contracts/compiler.json pins, and the standard JSON input
  ``ledger.chain.build.standard_input`` makes — the settings and the exact text of every source file, OpenZeppelin's
  included. Change one byte of any of them and the key changes;
- an entry is only ever written by this auditor, right after compiling exactly that input itself, and only when the
  compiler's output names the same compiler and the same source hashes as the input the key was made of (a source
  file edited while the compiler ran is never cached);
- the entry's file is named after the SHA-256 of its own content (``<key>.<content hash>.json``): a file whose content
  does not hash to its name, or does not name the same key, compiler, settings and sources, is ignored (a truncated
  write, a disk error, a hand edit) and the sources are compiled afresh.

The cache is the user's own (``$XDG_CACHE_HOME/civic-ledger/builds``, else ``~/.cache/civic-ledger/builds``): whoever
can write there can also change the auditor installed beside it, so it adds no one to trust. The shipped artifacts
(``ledger/artifacts``) are never used in place of a build: they come with the code the operator publishes.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: what a cache entry holds besides the artifact, and how it is laid out (a change makes old entries unreadable)
CACHE_FORMAT = 2  # 2: the ledger's artifact carries its filings module's (``module``)


def default_cache_dir() -> Path:
    """Where verified builds are cached by default: ``$XDG_CACHE_HOME/civic-ledger/builds`` (XDG Base Directory
    Specification: ``~/.cache`` when the variable is unset or empty)."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "civic-ledger" / "builds"


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class CompilerInput:
    """Everything the compiler is given: its own full version and the standard JSON input. `key` is their hash."""

    compiler: str
    #: the version contracts/compiler.json pins: in the key, so a build made under another pin is never used (a
    #: compiler the pin refuses never builds anything: ``ledger.chain.build.compile_contracts``)
    pinned: str
    standard_input: dict[str, Any]

    @property
    def key(self) -> str:
        return _sha256(_canonical({"compiler": self.compiler, "pinned": self.pinned, "input": self.standard_input}))

    def made(self, artifact: dict[str, Any]) -> bool:
        """Whether `artifact` is the output of exactly this input: same compiler, settings and source hashes."""
        settings = {k: v for k, v in self.standard_input["settings"].items() if k != "outputSelection"}
        sources = {name: _sha256(src["content"].encode()) for name, src in self.standard_input["sources"].items()}
        return (artifact.get("compiler") == self.compiler and artifact.get("settings") == settings
                and artifact.get("sources") == sources)


def compiler_input() -> CompilerInput:
    """The compiler input of a fresh build now (``ledger.chain.build``: the pinned compiler and settings, the sources
    from disk); raises ``ledger.errors.BuildError`` when the compiler cannot be run."""
    import solcx
    from solcx.exceptions import SolcError

    from ledger.chain.build import compiler_config, solc_binary, standard_input
    from ledger.errors import BuildError

    binary = solc_binary()
    try:
        version = solcx.wrapper.get_version_str_from_solc_binary(binary)
    except (OSError, SolcError) as exc:
        raise BuildError(f"cannot run the Solidity compiler at {binary}: {exc}") from exc
    return CompilerInput(version, compiler_config()["solcVersion"], standard_input())


@dataclass(frozen=True)
class BuildCache:
    """Verified builds in `directory`, one file per compiler input: ``<input key>.<sha256 of the file>.json``."""

    directory: Path

    def load(self, source: CompilerInput) -> tuple[dict[str, Any], Path] | None:
        """The cached artifact of exactly `source`, and its file; None when there is none that verifies."""
        key = source.key
        try:
            candidates = sorted(self.directory.glob(f"{key}.*.json"))
        except OSError:
            return None
        for path in candidates:
            try:
                data = path.read_bytes()
            except OSError:
                continue
            if path.name != f"{key}.{_sha256(data)}.json":
                continue  # not the content that was written under this name
            try:
                entry = json.loads(data)
            except ValueError:
                continue
            if not isinstance(entry, dict) or entry.get("format") != CACHE_FORMAT or entry.get("key") != key:
                continue
            artifact = entry.get("artifact")
            if isinstance(artifact, dict) and source.made(artifact):
                return artifact, path
        return None

    def store(self, source: CompilerInput, artifact: dict[str, Any]) -> Path:
        """Keep `artifact`, just compiled from `source`, under its key (written to a temporary file, then renamed:
        a reader never sees half a file under a final name). Raises OSError when the directory is not writable."""
        data = json.dumps({"format": CACHE_FORMAT, "key": source.key, "artifact": artifact}, sort_keys=True).encode()
        path = self.directory / f"{source.key}.{_sha256(data)}.json"
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=self.directory, prefix=".build-", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
        return path


@dataclass(frozen=True)
class BuildOrigin:
    """Where the artifact the code check compares with came from, for the report."""

    #: whether it was read from the cache (else compiled in this run)
    from_cache: bool
    #: SHA-256 of the complete compiler input (compiler version, settings, every source's text)
    input_sha256: str | None
    #: the cache file read or written (None: no cache, or it could not be written)
    cache_file: str | None
    seconds: float
    #: why the build was not cached, when it was not
    note: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def fresh_build() -> dict[str, Any]:
    """Compile contracts/ afresh with the pinned compiler and settings (``ledger.chain.build``); the ledger's
    artifact, with its filings module's (which its constructor creates) under ``module``."""
    from ledger.chain.build import compile_contracts

    built = compile_contracts()
    return {**built["CivicLedger"], "module": built["CivicFilings"]}


def cached_build(cache: BuildCache | None) -> tuple[dict[str, Any], BuildOrigin]:
    """The artifact of a build of the sources as they are now: from `cache` when it holds a verified build of exactly
    this compiler input, else compiled afresh (and then kept in `cache`). None: always compiled afresh, nothing
    kept. Raises ``ledger.errors.BuildError`` when the compiler cannot run or the compilation fails."""
    begun = time.perf_counter()
    if cache is None:
        return fresh_build(), BuildOrigin(False, None, None, time.perf_counter() - begun, "no build cache")
    source = compiler_input()
    found = cache.load(source)
    if found is not None:
        artifact, cached_file = found
        return artifact, BuildOrigin(True, source.key, str(cached_file), time.perf_counter() - begun)
    artifact = fresh_build()
    if not source.made(artifact):
        # the sources (or the compiler) changed between hashing the input and compiling it: nothing is cached
        return artifact, BuildOrigin(False, None, None, time.perf_counter() - begun,
                                     "the sources changed while they were compiled: not cached")
    try:
        path: Path | None = cache.store(source, artifact)
        note = None
    except OSError as exc:
        path, note = None, f"the build could not be cached in {cache.directory}: {exc.strerror or exc}"
    return artifact, BuildOrigin(False, source.key, None if path is None else str(path),
                                 time.perf_counter() - begun, note)


class BackgroundBuild:
    """:func:`cached_build` in a daemon thread (an audit that stops early does not wait for it); calling the object
    waits for the artifact, or raises what the build raised (``ledger.errors.BuildError``); :attr:`origin` then says
    whether it came from the cache. `cache_dir`: where verified builds are kept (default
    :func:`default_cache_dir`); `use_cache` off compiles afresh and keeps nothing."""

    def __init__(self, cache_dir: Path | None = None, *, use_cache: bool = True) -> None:
        self.cache = BuildCache(cache_dir or default_cache_dir()) if use_cache else None
        self.origin: BuildOrigin | None = None
        self._artifact: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()
        threading.Thread(target=self._run, name="audit-build", daemon=True).start()

    def _run(self) -> None:
        try:
            self._artifact, self.origin = cached_build(self.cache)
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits for the build (re-raised by __call__)
            self._error = exc
        finally:
            self._done.set()

    def __call__(self) -> dict[str, Any]:
        self._done.wait()
        if self._error is not None:
            raise self._error
        assert self._artifact is not None
        return self._artifact
