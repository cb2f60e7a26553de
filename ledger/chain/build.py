"""Compile the contracts with the pinned compiler and settings, and write the artifacts shipped in the package."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import posixpath
import re
import sys
from pathlib import Path
from typing import Any

from ledger.errors import BuildError

ROOT = Path(__file__).resolve().parents[2]
COMPILER_CONFIG = ROOT / "contracts" / "compiler.json"
ARTIFACTS_DIR = Path(__file__).resolve().parents[1] / "artifacts"  # ledger/artifacts, shipped in the package
ARTIFACT_CONTRACTS = ("CivicLedger", "CivicFilings")

_IMPORT = re.compile(r"""^\s*import\s+(?:[^;]*?\s+from\s+)?["']([^"']+)["']\s*;""", re.MULTILINE)


def compiler_config() -> dict[str, Any]:
    """The single source of compiler version and settings (also read by hardhat.config.js)."""
    return json.loads(COMPILER_CONFIG.read_text())


def _resolve(unit: str) -> Path:
    """Map a source unit name (as Hardhat names it) to a file: project paths, else node_modules."""
    local = ROOT / unit
    if unit.startswith("contracts/") and local.is_file():
        return local
    package = ROOT / "node_modules" / unit
    if package.is_file():
        return package
    raise BuildError(f"cannot find Solidity source {unit!r} (looked in contracts/ and node_modules/; run npm ci)")


def collect_sources(entry_points: list[str]) -> dict[str, str]:
    """Every source unit reachable from `entry_points`, by Hardhat-compatible unit name, with its text."""
    sources: dict[str, str] = {}
    pending = list(entry_points)
    while pending:
        unit = pending.pop()
        if unit in sources:
            continue
        text = _resolve(unit).read_text()
        sources[unit] = text
        for target in _IMPORT.findall(text):
            if target.startswith("."):
                target = posixpath.normpath(posixpath.join(posixpath.dirname(unit), target))
            pending.append(target)
    return dict(sorted(sources.items()))


def standard_input() -> dict[str, Any]:
    config = compiler_config()
    sources = collect_sources(config["contracts"])
    settings = dict(config["settings"])
    settings["outputSelection"] = {
        "*": {
            "*": [
                "abi",
                "evm.bytecode.object",
                "evm.deployedBytecode.object",
                "evm.deployedBytecode.immutableReferences",
            ]
        }
    }
    return {
        "language": "Solidity",
        "sources": {name: {"content": text} for name, text in sources.items()},
        "settings": settings,
    }


def solc_binary() -> Path:
    """A native solc when CIVIC_SOLC names one, else the pinned solc-js behind scripts/solc-js."""
    configured = os.environ.get("CIVIC_SOLC")
    return Path(configured) if configured else ROOT / "scripts" / "solc-js"


def compile_contracts() -> dict[str, dict[str, Any]]:
    """Compile the sources afresh; returns an artifact per deployable contract."""
    import solcx
    from solcx.exceptions import SolcError

    config = compiler_config()
    binary = solc_binary()
    try:
        version = solcx.wrapper.get_version_str_from_solc_binary(binary)
    except (OSError, SolcError) as exc:
        raise BuildError(f"cannot run the Solidity compiler at {binary}: {exc}") from exc
    if not version.startswith(config["solcVersion"] + "+"):
        raise BuildError(f"compiler at {binary} is {version}; contracts/compiler.json pins {config['solcVersion']}")
    source_input = standard_input()
    try:
        output = solcx.compile_standard(source_input, solc_binary=binary)
    except SolcError as exc:
        raise BuildError(f"compilation failed: {exc}") from exc
    errors = [e for e in output.get("errors", []) if e.get("severity") == "error"]
    if errors:
        raise BuildError("compilation failed:\n" + "\n".join(e["formattedMessage"] for e in errors))
    artifacts: dict[str, dict[str, Any]] = {}
    for unit, contracts in output["contracts"].items():
        for name, compiled in contracts.items():
            if name not in ARTIFACT_CONTRACTS:
                continue
            artifacts[name] = {
                "contractName": name,
                "sourceName": unit,
                "compiler": version,
                "settings": config["settings"],
                "abi": compiled["abi"],
                "bytecode": "0x" + compiled["evm"]["bytecode"]["object"],
                "deployedBytecode": "0x" + compiled["evm"]["deployedBytecode"]["object"],
                "immutableReferences": compiled["evm"]["deployedBytecode"]["immutableReferences"],
                "sources": {
                    name: hashlib.sha256(src["content"].encode()).hexdigest()
                    for name, src in source_input["sources"].items()
                },
            }
    missing = set(ARTIFACT_CONTRACTS) - set(artifacts)
    if missing:
        raise BuildError(f"compiler output lacks {sorted(missing)}")
    return artifacts


def runtime_code_matches(onchain: bytes, artifact: dict[str, Any]) -> bool:
    """Whether deployed code is the artifact's runtime code, once the immutables patched in at deployment
    (here the EIP-712 cached domain: chain id, address, name and version hashes) are masked out."""
    expected = bytearray(bytes.fromhex(artifact["deployedBytecode"][2:]))
    actual = bytearray(onchain)
    if len(actual) != len(expected):
        return False
    for references in artifact["immutableReferences"].values():
        for ref in references:
            start, length = int(ref["start"]), int(ref["length"])
            actual[start : start + length] = bytes(length)
            expected[start : start + length] = bytes(length)
    return actual == expected


def write_artifacts(artifacts: dict[str, dict[str, Any]], directory: Path = ARTIFACTS_DIR) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, artifact in artifacts.items():
        path = directory / f"{name}.json"
        path.write_text(json.dumps(artifact, indent=1, sort_keys=True) + "\n")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="fail if the shipped artifacts differ from a fresh build")
    args = parser.parse_args(argv)
    try:
        fresh = compile_contracts()
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.check:
        stale = [
            name
            for name, artifact in fresh.items()
            if not (ARTIFACTS_DIR / f"{name}.json").is_file()
            or json.loads((ARTIFACTS_DIR / f"{name}.json").read_text()) != artifact
        ]
        if stale:
            print(
                f"shipped artifacts differ from a fresh build: {stale}; run python -m ledger.chain.build",
                file=sys.stderr,
            )
            return 1
        print("shipped artifacts equal a fresh build")
        return 0
    for path in write_artifacts(fresh):
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
