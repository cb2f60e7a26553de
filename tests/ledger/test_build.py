"""Reproducible build: the artifacts shipped in the package equal a fresh compile, by both toolchains."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from ledger.chain import build
from ledger.chain.contract import artifact
from ledger.errors import BuildError

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def fresh() -> dict:
    return build.compile_contracts()


@pytest.mark.parametrize("name", build.ARTIFACT_CONTRACTS)
def test_shipped_artifacts_equal_a_fresh_compile(fresh, name):
    shipped = json.loads((build.ARTIFACTS_DIR / f"{name}.json").read_text())
    assert fresh[name] == shipped
    assert shipped["compiler"].startswith(build.compiler_config()["solcVersion"] + "+")


def test_the_ledger_fits_eip170_and_its_module_fits_the_initcode_limit(fresh):
    """EIP-170 caps runtime code at 24,576 bytes, EIP-3860 creation code at 49,152: the ledger's constructor creates
    its filings module, so the module's creation code is part of the ledger's, never of its runtime."""
    ledger, module = fresh["CivicLedger"], fresh["CivicFilings"]
    assert (len(ledger["deployedBytecode"]) - 2) // 2 <= 24_576
    assert (len(module["deployedBytecode"]) - 2) // 2 <= 24_576
    assert (len(ledger["bytecode"]) - 2) // 2 <= 49_152
    assert module["bytecode"][2:] in ledger["bytecode"] and module["bytecode"][2:] not in ledger["deployedBytecode"]


def test_build_check_command_agrees(capsys):
    assert build.main(["--check"]) == 0
    assert "equal a fresh build" in capsys.readouterr().out


def test_hardhat_build_gives_the_same_bytecode_and_abi(fresh, tmp_path):
    """Both builds read contracts/compiler.json; the same sources must give the same bytes."""
    env = dict(os.environ, CIVIC_HARDHAT_BUILD=str(tmp_path))
    subprocess.run(["npx", "hardhat", "compile", "--quiet"], cwd=ROOT, env=env, check=True, capture_output=True)
    for name in build.ARTIFACT_CONTRACTS:
        hardhat = json.loads((tmp_path / f"artifacts/contracts/{name}.sol/{name}.json").read_text())
        ours = fresh[name]
        assert hardhat["bytecode"] == ours["bytecode"], name
        assert hardhat["deployedBytecode"] == ours["deployedBytecode"], name
        assert hardhat["abi"] == ours["abi"], name


def test_sources_are_collected_under_hardhat_unit_names():
    sources = build.collect_sources(["contracts/CivicLedger.sol"])
    assert "contracts/interfaces/ICivicLedger.sol" in sources
    assert "@openzeppelin/contracts/utils/cryptography/EIP712.sol" in sources
    assert all(not name.startswith(("./", "../")) for name in sources)


def test_missing_import_is_a_clear_error():
    with pytest.raises(BuildError, match="cannot find Solidity source 'contracts/Nope.sol'"):
        build.collect_sources(["contracts/Nope.sol"])


def test_wrong_compiler_version_is_refused(tmp_path, monkeypatch):
    fake = tmp_path / "solc"
    fake.write_text(
        "#!/bin/sh\n"
        "echo 'solc, the solidity compiler commandline interface'\n"
        "echo 'Version: 0.8.19+commit.7dd6d404.Linux.g++'\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("CIVIC_SOLC", str(fake))
    with pytest.raises(BuildError, match="pins 0.8.30"):
        build.compile_contracts()


def test_missing_compiler_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("CIVIC_SOLC", str(tmp_path / "no-such-solc"))
    with pytest.raises(BuildError, match="cannot run the Solidity compiler"):
        build.compile_contracts()


def test_runtime_code_matches_masks_only_immutables(world):
    code = bytes(world.chain.w3.eth.get_code(world.ledger.address))
    spec = artifact()
    assert build.runtime_code_matches(code, spec)
    tampered = bytearray(code)
    tampered[10] ^= 0xFF
    assert not build.runtime_code_matches(bytes(tampered), spec)
    assert not build.runtime_code_matches(code + b"\0", spec)


@pytest.mark.slow
def test_slither_reports_no_finding_above_informational():
    """Slither, from its own venv (it pins an older web3), over the Hardhat build: zero low/medium/high findings.
    Accepted lower findings are silenced in the source with a comment saying why."""
    slither = ROOT / ".venv-slither" / "bin" / "slither"
    if not slither.exists():
        pytest.fail("Slither is not installed: run `make test`, which installs it into .venv-slither")
    result = subprocess.run([str(slither), ".", "--fail-low"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 result(s) found" in result.stdout + result.stderr
