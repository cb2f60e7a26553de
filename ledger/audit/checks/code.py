"""Contract code: the runtime code at the address equals a fresh build of the published sources."""

from __future__ import annotations

from ledger.audit.build import BuildOrigin
from ledger.audit.checks import Check
from ledger.audit.context import AuditContext
from ledger.audit.model import CheckResult, Finding
from ledger.chain.build import runtime_code_matches
from ledger.chain.contract import artifact
from ledger.encoding import keccak, module_address
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
    _module(ctx, result, built)
    shipped = artifact()
    if shipped["abi"] != built["abi"]:
        result.add(Finding(
            NAME,
            "the ABI the auditor decodes logs with (ledger/artifacts) differs from a fresh build of the sources: "
            "rebuild the artifacts (python -m ledger.chain.build) before trusting this audit",
            subject="ledger/artifacts/CivicLedger.json", field="abi",
        ))


def _module(ctx: AuditContext, result: CheckResult, built: dict) -> None:
    """The filings module: at the ledger's first CREATE address, the runtime code of a fresh build of
    ``CivicFilings``, pointing back at this ledger, and the ledger's ``FILINGS()`` pointing at it. The ledger's
    constructor is not on chain, so its runtime code alone does not show which module it made: a ledger built from
    other sources with the same runtime could have made another one, or named any account its module."""
    chain = ctx.chain
    module = module_address(chain.address)
    where = f"filings module {module}"
    if chain.module_code is None:
        result.warn(Finding(NAME, "the node did not give the filings module's code: it was not compared",
                            subject=where, field="module_code"))
        return
    expected = built.get("module")
    if expected is None:
        result.warn(Finding(NAME, "the build has no filings module to compare with", subject=where))
        return
    if not runtime_code_matches(chain.module_code, expected):
        result.add(Finding(
            NAME, f"the code at the filings module's address {module} ({len(chain.module_code)} bytes) is not a fresh "
            f"build of CivicFilings ({(len(expected['deployedBytecode']) - 2) // 2} bytes): whatever appends there "
            "is not the published module", subject=where, field="module_code",
        ))
    if chain.filings_pointer != module:
        result.add(Finding(NAME, f"the ledger's FILINGS() is {chain.filings_pointer}, not the module it created at "
                           f"{module}: another account could append entries", subject=f"contract {chain.address}",
                           field="FILINGS", expected=module, actual=chain.filings_pointer))
    if chain.module_ledger != chain.address:
        result.add(Finding(NAME, f"the filings module's LEDGER() is {chain.module_ledger}, not this ledger",
                           subject=where, field="LEDGER", expected=chain.address, actual=chain.module_ledger))
    result.counts["module_bytes"] = len(chain.module_code)


CHECK = Check(
    NAME,
    "Contract code matches the published source",
    "eth_getCode at the audited block equals the runtime bytecode of a fresh compilation of contracts/ with the "
    "pinned compiler and settings (immutables masked), or of a build this auditor made earlier of exactly the same "
    "compiler input (ledger.audit.build); so does the filings module's, at the ledger's first CREATE address, which "
    "the ledger's FILINGS() names and whose LEDGER() names the ledger; the ABI used to decode logs equals the fresh "
    "build's.",
    run,
)
