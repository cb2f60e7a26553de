"""The verified build cache of the contract-code check (``ledger.audit.build``): a build is reused only for exactly
the compiler input it was made from, only as this auditor wrote it, and anything else is compiled afresh."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from ledger.audit import build
from ledger.audit.build import BackgroundBuild, BuildCache, CompilerInput, cached_build, compiler_input
from ledger.chain.build import compiler_config


@pytest.fixture(scope="module")
def source() -> CompilerInput:
    """The compiler input of the sources as they are (asks the compiler its version)."""
    return compiler_input()


@pytest.fixture
def compiles(monkeypatch: pytest.MonkeyPatch, compiled: dict[str, Any]) -> list[int]:
    """Fresh compilations stand for the session's one real build (counted), so that each test does not wait for the
    compiler; :func:`test_a_fresh_build_is_cached_and_reused` compiles for real."""
    calls: list[int] = []

    def fresh() -> dict[str, Any]:
        calls.append(1)
        return copy.deepcopy(compiled)

    monkeypatch.setattr(build, "fresh_build", fresh)
    return calls


@pytest.mark.slow
def test_a_fresh_build_is_cached_and_reused(tmp_path: Path, compiled: dict[str, Any]) -> None:
    cold = BackgroundBuild(tmp_path)
    assert cold() == compiled
    assert cold.origin is not None and not cold.origin.from_cache and cold.origin.cache_file is not None
    [entry] = tmp_path.iterdir()
    assert entry.name.startswith(cold.origin.input_sha256 or "-") and str(entry) == cold.origin.cache_file
    warm = BackgroundBuild(tmp_path)
    assert warm() == compiled
    assert warm.origin is not None and warm.origin.from_cache and warm.origin.cache_file == str(entry)
    assert warm.origin.seconds < cold.origin.seconds / 4


def test_the_key_is_the_whole_compiler_input(source: CompilerInput) -> None:
    """One byte of any source (OpenZeppelin's included), a setting, the compiler or the pin: another key."""
    keys = {source.key}
    for unit in (min(source.standard_input["sources"]), max(source.standard_input["sources"])):
        changed = copy.deepcopy(source.standard_input)
        changed["sources"][unit]["content"] += " "
        keys.add(CompilerInput(source.compiler, source.pinned, changed).key)
    settings = copy.deepcopy(source.standard_input)
    settings["settings"]["optimizer"]["runs"] += 1
    keys.add(CompilerInput(source.compiler, source.pinned, settings).key)
    keys.add(CompilerInput(source.compiler + "x", source.pinned, source.standard_input).key)
    keys.add(CompilerInput(source.compiler, "0.8.31", source.standard_input).key)
    assert len(keys) == 6
    assert any(unit.startswith("@openzeppelin/") for unit in source.standard_input["sources"])
    assert source.pinned == compiler_config()["solcVersion"] and source.compiler.startswith(source.pinned + "+")


def test_a_build_is_reused_only_for_the_input_it_was_made_from(
    tmp_path: Path, source: CompilerInput, compiles: list[int]
) -> None:
    cache = BuildCache(tmp_path)
    artifact, origin = cached_build(cache)
    assert compiles == [1] and not origin.from_cache and origin.input_sha256 == source.key
    again, origin = cached_build(cache)
    assert compiles == [1] and origin.from_cache and again == artifact
    # the same cache, another source text: not found
    edited = copy.deepcopy(source.standard_input)
    unit = next(iter(edited["sources"]))
    edited["sources"][unit]["content"] = edited["sources"][unit]["content"].replace("pragma", "pragma ", 1)
    assert cache.load(CompilerInput(source.compiler, source.pinned, edited)) is None


def test_a_cache_file_whose_content_does_not_hash_to_its_name_is_ignored_and_rebuilt(
    tmp_path: Path, compiles: list[int]
) -> None:
    cache = BuildCache(tmp_path)
    honest, origin = cached_build(cache)
    path = Path(origin.cache_file or "")
    entry = json.loads(path.read_bytes())
    code = entry["artifact"]["deployedBytecode"]
    entry["artifact"]["deployedBytecode"] = code[:-2] + ("00" if code[-2:] != "00" else "01")
    path.write_text(json.dumps(entry, sort_keys=True))  # another bytecode under the name of the honest build
    artifact, origin = cached_build(cache)
    assert compiles == [1, 1] and not origin.from_cache and artifact == honest
    # the rebuilt entry replaces it, its content hashing to its name again
    assert origin.cache_file == str(path) and path.name.endswith(f".{build._sha256(path.read_bytes())}.json")
    assert cached_build(cache)[1].from_cache and compiles == [1, 1]


def test_a_truncated_or_foreign_cache_file_is_ignored(tmp_path: Path, source: CompilerInput,
                                                      compiles: list[int]) -> None:
    cache = BuildCache(tmp_path)
    _, origin = cached_build(cache)
    path = Path(origin.cache_file or "")
    path.write_bytes(path.read_bytes()[:1000])  # a write cut short
    assert cache.load(source) is None
    # a well-formed entry, named by its own hash, but of another compiler: still not this input's build
    entry = {"format": build.CACHE_FORMAT, "key": source.key,
             "artifact": {**json.loads(json.dumps(cached_build(None)[0])), "compiler": "0.8.29+commit.x"}}
    data = json.dumps(entry, sort_keys=True).encode()
    (tmp_path / f"{source.key}.{build._sha256(data)}.json").write_bytes(data)
    assert cache.load(source) is None


def test_sources_changing_while_compiled_are_not_cached(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, compiled: dict[str, Any]
) -> None:
    moved = {**compiled, "sources": {**compiled["sources"], "contracts/CivicLedger.sol": "0" * 64}}
    monkeypatch.setattr(build, "fresh_build", lambda: moved)
    artifact, origin = cached_build(BuildCache(tmp_path))
    assert artifact is moved and not origin.from_cache and origin.cache_file is None
    assert origin.note == "the sources changed while they were compiled: not cached"
    assert not list(tmp_path.iterdir())


def test_an_unwritable_cache_still_builds_and_says_so(tmp_path: Path, compiles: list[int]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    artifact, origin = cached_build(BuildCache(blocker / "builds"))
    assert compiles == [1] and artifact["contractName"] == "CivicLedger" and origin.cache_file is None
    assert origin.note is not None and origin.note.startswith(f"the build could not be cached in {blocker}/builds")


def test_no_cache_compiles_afresh_and_keeps_nothing(tmp_path: Path, compiles: list[int],
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    done = BackgroundBuild(use_cache=False)
    assert done()["contractName"] == "CivicLedger" and compiles == [1]
    assert done.origin is not None and not done.origin.from_cache and done.origin.note == "no build cache"
    assert not list(tmp_path.iterdir())


def test_the_default_cache_is_the_users_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert build.default_cache_dir() == tmp_path / "civic-ledger" / "builds"
    monkeypatch.setenv("XDG_CACHE_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert build.default_cache_dir() == tmp_path / "home" / ".cache" / "civic-ledger" / "builds"
