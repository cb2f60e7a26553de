"""Deploy the ledger to any EVM network (``deploy``) and check a deployment against its published sources
(``verify-deployment``): a thin layer over :mod:`ledger.chain.deploy`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from eth_utils import is_address, to_checksum_address

from ledger.chain.contract import Chain
from ledger.chain.deploy import Publication, deploy, publication, verify_deployment
from ledger.cli.common import KeyEnvOpt, KeyOpt, PasswordOpt, command, err, fail, out, settings
from ledger.config import DEPLOYMENT_FILE, Deployment
from ledger.errors import BuildError, LedgerError

#: deploy and verify-deployment, top-level commands (``ledger.cli`` adds this app without a name)
deploy_app = typer.Typer()

RpcOpt = Annotated[str | None, typer.Option("--rpc-url", help="JSON-RPC URL of the chain (default: the global one)")]
ChainIdOpt = Annotated[int | None, typer.Option("--chain-id", help="refuse any other chain id")]


@command(deploy_app, "deploy")
def deploy_command(
    ctx: typer.Context,
    governance: Annotated[str, typer.Option(help="address named as the ledger's admin and governor: an account or a "
                                                 "multisig contract (no key of it is needed here)")],
    rpc_url: RpcOpt = None,
    chain_id: ChainIdOpt = None,
    admin_delay: Annotated[int, typer.Option(help="seconds a handover of the governance role waits", min=0,
                                             max=2**48 - 1)] = 0,
    confirmations: Annotated[int, typer.Option(help="blocks, the deployment's own included, to wait for",
                                               min=1)] = 1,
    out_dir: Annotated[Path | None, typer.Option("--out", help="where deployment.json and the published sources "
                                                               "(source/) go (default: DATA_DIR)")] = None,
    replace: Annotated[bool, typer.Option(help="overwrite an existing deployment record in --out")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for the confirmations")] = 600.0,
    poll_interval: Annotated[float, typer.Option(help="seconds between two looks at the chain's head")] = 2.0,
    key: KeyOpt = None,
    key_env: KeyEnvOpt = None,
    password_file: PasswordOpt = None,
) -> None:
    """Deploy the shipped ledger (ledger/artifacts) from the deployer's key (--key, which pays), with --governance as
    its admin; wait for the confirmations; write the deployment record and publish the standard JSON input and
    metadata (Sourcify-style) so anyone can check the source (``verify-deployment``)."""
    s = settings(ctx)
    directory = out_dir or s.data_dir
    record_file = directory / DEPLOYMENT_FILE
    if record_file.exists() and not replace:
        fail(f"{record_file} exists (this directory serves a ledger already): choose another --out, or --replace")
    if not is_address(governance):
        fail(f"--governance {governance} is not an address (0x and 40 hex digits, EIP-55 checksum if mixed case)")
    deployer = s.key(key, key_env, password_file)
    chain = Chain.connect(rpc_url or s.rpc_url, expected_chain_id=chain_id or s.chain_id)
    kind = "a contract (multisig)" if chain.w3.eth.get_code(to_checksum_address(governance)) else "an account"
    out.print(f"chain id {chain.chain_id}; deployer {deployer.address}; governance {to_checksum_address(governance)} "
              f"({kind})")
    with err.status("compiling the sources to publish (checked against the shipped bytecode)…"):
        published = publication()  # before any gas is spent: a stale artifact stops here
    with err.status(f"deploying, then waiting for {confirmations} confirmation(s)…"):
        record = deploy(chain, deployer, governance, admin_delay=admin_delay, confirmations=confirmations,
                        timeout=timeout, poll_interval=poll_interval)
    directory.mkdir(parents=True, exist_ok=True)
    written = published.write(directory)
    record.save(record_file)
    out.print(f"deployed CivicLedger at {record.address} in block {record.block} (tx {record.tx_hash})")
    out.print(f"wrote {record_file} and {', '.join(p.name for p in written)} in {written[0].parent}")


@command(deploy_app, "verify-deployment")
def verify_command(
    ctx: typer.Context,
    directory: Annotated[Path | None, typer.Option("--dir", help="where deployment.json and source/ are (default: "
                                                                 "DATA_DIR)")] = None,
    rpc_url: RpcOpt = None,
) -> None:
    """Recompile the published standard JSON input and compare with the code on chain (metadata hash included), the
    published metadata, and the deployment transaction (governance, admin delay, deployer). Exit 1 on any
    difference."""
    s = settings(ctx)
    where = directory or s.data_dir
    record = Deployment.load(where / DEPLOYMENT_FILE)
    if record is None:
        fail(f"no deployment record at {where / DEPLOYMENT_FILE}")
    Publication.read(where)  # a missing file is said before connecting or compiling
    chain = Chain.connect(rpc_url or s.rpc_url, expected_chain_id=record.chain_id)
    with err.status("recompiling the published sources…"):
        try:
            verified = verify_deployment(chain, where)
        except BuildError:
            raise  # the compiler could not run: nothing was verified either way (exit 2)
        except LedgerError as exc:
            fail(f"not verified: {exc}", code=1)
    for name, address in verified.checked.items():
        out.print(f"{name} at {address}: the code on chain is the published source's ({verified.compiler})")
    out.print(f"verified: deployed in {record.tx_hash or 'an unrecorded transaction'} with governance "
              f"{record.governance} and admin delay {record.admin_delay} s")
