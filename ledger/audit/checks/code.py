"""Contract code: the runtime code at the address equals a fresh build of the published sources."""

from __future__ import annotations

from ledger.audit.build import BuildOrigin
from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.chain.build import runtime_code_matches
from ledger.chain.contract import artifact
from ledger.encoding import keccak
from ledger.errors import BuildError

NAME = "contract_code"


def _masked(code: bytes, built: dict) -> bytes:
    out = bytearray(code)
    for references in built["immutableReferences"].values():
        for ref in references:
            start, length = int(ref["start"]), int(ref["length"])
            out[start : start + length] = bytes(len(out[start : start + length]))
    return bytes(out)


def run(ctx: AuditContext, result: CheckResult) -> None:
    if ctx.compiled is None:
        result.skip("compiling was turned off (--no-compile): the deployed code was NOT compared with the sources")
        return
    try:
        built = ctx.compiled()
    except BuildError as exc:
        result.skip(f"the Solidity compiler is not available, so the code could not be compared: {exc}")
        return
    code = ctx.chain.code
    expected = bytes.fromhex(built["deployedBytecode"][2:])
    result.counts.update(code_bytes=len(code), built_bytes=len(expected),
                         immutable_ranges=sum(len(r) for r in built["immutableReferences"].values()))
    result.notes.append(
        f"fresh build with {built['compiler']} of {len(built.get('sources', {}))} source files "
        f"(contracts/compiler.json settings); immutables (the EIP-712 domain) masked before comparing"
    )
    origin: BuildOrigin | None = getattr(ctx.compiled, "origin", None)  # a BackgroundBuild says where it came from
    if origin is not None:
        ctx.stats["contract_build"] = origin.to_dict()
        if origin.from_cache:
            result.notes.append(
                f"the build was read from the verified build cache ({origin.cache_file}): compiled earlier by this "
                f"auditor from exactly this compiler input (SHA-256 {origin.input_sha256} of the compiler version, "
                "settings and every source file's text)"
            )
        elif origin.note:
            result.notes.append(origin.note)
    where = f"contract {ctx.chain.address}"
    if not runtime_code_matches(code, built):
        actual_masked, expected_masked = _masked(code, built), _masked(expected, built)
        first = next(
            (i for i, (a, b) in enumerate(zip(actual_masked, expected_masked, strict=False)) if a != b),
            min(len(actual_masked), len(expected_masked)),
        )
        result.add(Finding(
            NAME,
            f"the runtime code at {ctx.chain.address} ({len(code)} bytes) is not a fresh build of the published "
            f"sources ({len(expected)} bytes); first difference at byte {first}",
            subject=where, field="runtime_code",
            expected="0x" + keccak(expected_masked).hex(), actual="0x" + keccak(actual_masked).hex(),
        ))
    shipped = artifact()
    if shipped["abi"] != built["abi"]:
        result.add(Finding(
            NAME,
            "the ABI the auditor decodes logs with (ledger/artifacts) differs from a fresh build of the sources: "
            "rebuild the artifacts (python -m ledger.chain.build) before trusting this audit",
            subject="ledger/artifacts/CivicLedger.json", field="abi",
        ))


CHECK = Check(
    NAME,
    "Contract code matches the published source",
    "eth_getCode at the audited block equals the runtime bytecode of a fresh compilation of contracts/ with the "
    "pinned compiler and settings (immutables masked), or of a build this auditor made earlier of exactly the same "
    "compiler input (ledger.audit.build); the ABI used to decode logs equals the fresh build's.",
    run,
)
