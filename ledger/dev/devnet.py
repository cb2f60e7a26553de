"""The local development network: an anvil chain kept under a data directory, the ledger deployed once, the demo
city loaded once. ``make run`` runs this; it is idempotent, so a restart resumes where the last run stopped."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from eth_account.signers.local import LocalAccount
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ledger.batches import BatchStore
from ledger.chain.contract import Chain, Ledger
from ledger.chain.keys import KeyStore
from ledger.config import Deployment, Settings
from ledger.dev import demo
from ledger.dev.node import AnvilNode
from ledger.errors import ChainMismatch, LedgerError
from ledger.filings import FilingContent
from ledger.index.sync import Indexer
from ledger.records import Filing
from ledger.relay.store import CITIZEN_LANE, LANES, RelayStore
from ledger.relay.verify import check_citizen_signature
from ledger.relay.writer import RelayWriter
from ledger.store.db import default_url, open_store

CHAIN_ID = 31337
DEMO_DAYS = 90
DEMO_SEED = 20261121


def ensure_ledger(chain: Chain, data_dir: Path, keys: KeyStore) -> tuple[Ledger, Deployment]:
    """Deploy once; on later runs check the recorded deployment is still there."""
    record_path = data_dir / "deployment.json"
    deployment = Deployment.load(record_path)
    governance = keys.get_or_create("governance")
    if deployment is not None:
        if deployment.chain_id != chain.chain_id:
            raise ChainMismatch(
                f"{record_path} is for chain {deployment.chain_id}, the node serves {chain.chain_id}"
            )
        try:
            return Ledger(chain, deployment.address), deployment
        except ChainMismatch as exc:
            raise ChainMismatch(
                f"{exc}. The chain state in {data_dir} was lost or belongs to another build; "
                f"move {data_dir} aside to start a fresh chain"
            ) from exc
    if chain.w3.eth.get_balance(governance.address) == 0:
        chain.fund(governance.address)
    ledger = Ledger.deploy(chain, governance)
    deployment = Deployment(
        chain_id=chain.chain_id,
        address=ledger.address,
        block=int(chain.w3.eth.block_number),
        governance=governance.address,
    )
    deployment.save(record_path)
    return ledger, deployment


def batch_store(data_dir: Path) -> BatchStore:
    """Where batch files are published: the API serves them and the indexer reads them from here."""
    return BatchStore(data_dir / "batches")


def load_demo_city(chain: Chain, ledger: Ledger, data_dir: Path, keys: KeyStore, *, quiet: bool = False) -> int:
    """Load the demo city once (resuming an interrupted load); the city is fixed by data/demo.json. Its batch files
    are (re)published to data/batches every time, before anything indexes them."""
    spec_path = data_dir / "demo.json"
    spec = json.loads(spec_path.read_text())
    if spec.get("version", 1) != demo.VERSION:
        # Resuming counts entries, so it is right only for the recipe that started the load.
        print(f"note: the demo city in {data_dir} was made by an older version of the demo (version "
              f"{spec.get('version', 1)}, now {demo.VERSION}); it is left as it is. Move {data_dir} aside to get the "
              "current one.", file=sys.stderr)
        return 0
    city = demo.generate_city(end=spec["end"], days=spec["days"], cases=spec["cases"], seed=spec["seed"])
    store = batch_store(data_dir)
    demo.publish_batches(city, store)
    expected = demo.setup_entries(city) + city.entries
    if ledger.entry_count() >= expected:
        return 0
    governance = keys.get_or_create("governance")
    relayer = _funded(chain, keys.get_or_create("relayer"))
    signers = {}
    for agency in demo.AGENCIES:
        signers[agency.agency_id] = _funded(chain, keys.get_or_create(f"agency-{agency.agency_id}"))
    with Progress(
        TextColumn("loading the demo city"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
        disable=quiet, transient=True,
    ) as bar:
        task = bar.add_task("load", total=expected)
        return demo.load_city(
            chain, ledger, governance, signers, city, progress=lambda done, total: bar.update(task, completed=done),
            relayer=relayer, batch_store=store,
        )


def demo_filings(chain: Chain, ledger: Ledger, data_dir: Path, keys: KeyStore) -> str | None:
    """The demo's citizens' filings (``ledger.dev.demo.file_requests``), once the demo city is loaded; the key code of
    the accepted one, for the page (None when there is no demo city of this version)."""
    spec = json.loads((data_dir / "demo.json").read_text())
    if spec.get("version", 1) != demo.VERSION:
        return None
    relayer = _funded(chain, keys.get_or_create("relayer"))
    roads = _funded(chain, keys.get_or_create("agency-DEMO-ROADS"))
    citizens = _funded(chain, keys.get_or_create(LANES[CITIZEN_LANE][1]))
    store = RelayStore(data_dir / "relay", ledger)

    def send(filing: Filing, signature: bytes, content: FilingContent, salt: bytes) -> None:
        """As the API takes a filing: stored with its content in the private store, sent by the citizens' lane (so
        that `intake show` and the intake API show what the demo filers wrote)."""
        signed = check_citizen_signature(filing, signature, ledger.filings_domain())
        store.submit_filing(signed, content, salt)
        writer = RelayWriter(ledger, citizens, store, lane=CITIZEN_LANE)
        try:
            writer.flush()
        finally:
            writer.close()

    try:
        demo.file_requests(ledger, relayer, roads, spec["seed"], send)
    finally:
        store.close()
    return demo.filer_code(spec["seed"], demo.FILINGS[0][0])


def _funded(chain: Chain, account: LocalAccount) -> LocalAccount:
    if chain.w3.eth.get_balance(account.address) < 10**18:
        chain.fund(account.address)
    return account


def _follow(indexer: Indexer, stop: threading.Event) -> None:
    """Keep the index up with the chain; a failure is reported, never silent, and retried."""
    while not stop.is_set():
        try:
            indexer.run(poll_interval=1.0, stop_event=stop)
        except LedgerError as exc:
            print(f"indexer: {exc}; retrying in 5 s", file=sys.stderr)
            stop.wait(5)


def demo_auditor(chain: Chain, ledger: Ledger, keys: KeyStore) -> LocalAccount:
    """The demo's independent auditor: a key of its own (never an agency's), registered by governance, funded to
    send its attestations itself."""
    auditor = _funded(chain, keys.get_or_create("auditor"))
    if not ledger.auditor_state(auditor.address)[0]:
        ledger.authorize_auditor(keys.get_or_create("governance"), auditor.address)
    return auditor


def attest_when_served(auditor: LocalAccount, node_url: str, contract: str, api_url: str,
                       stop: threading.Event, wait_seconds: float = 120.0) -> None:
    """Once the API answers, audit the ledger and the API as an outside auditor would (contract code included),
    and publish the attestation and its report: the page then shows the ledger independently audited. A failure is
    reported on stderr, never fatal to the service."""
    import httpx

    from ledger.audit import AuditConfig, run_audit
    from ledger.audit.attest import attestable_block, publish
    from ledger.chain.keys import AgencyKey

    deadline = time.monotonic() + wait_seconds
    while not stop.is_set():
        try:
            if httpx.get(f"{api_url}/api/v1/chain", timeout=5).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            print("demo audit: the API did not come up; no attestation this run", file=sys.stderr)
            return
        stop.wait(1)
    if stop.is_set():
        return
    try:
        config = AuditConfig(rpc_url=node_url, contract=contract, api_url=api_url,
                             to_block=attestable_block(node_url))
        report = run_audit(config)
        published = publish(report, AgencyKey.wrap(auditor), rpc_url=node_url, contract=contract, api_url=api_url)
    except LedgerError as exc:
        print(f"demo audit: no attestation this run: {exc}", file=sys.stderr)
        return
    a = published.attestation
    print(f"  demo audit        block {a.block_number}: {a.verdict.name.lower()}, {a.findings} findings; attested "
          f"by {auditor.address} (report {published.report_hash[:18]}…: {published.report_upload})")
    sys.stdout.flush()


def _serve(args: argparse.Namespace, node: AnvilNode, ledger: Ledger, chain: Chain, data_dir: Path) -> int:
    """Serve the API and the page on loopback, as an operator would (``python -m api``, configured by CIVIC_*
    variables), until Ctrl-C or SIGTERM; stop it too when the local chain dies."""
    env = {
        **os.environ, "CIVIC_STORE_URL": default_url(data_dir), "CIVIC_RPC_URL": node.url,
        "CIVIC_CONTRACT": ledger.address, "CIVIC_CHAIN_ID": str(chain.chain_id), "CIVIC_DATA_DIR": str(data_dir),
    }
    api = subprocess.Popen(
        [sys.executable, "-m", "api", "--host", "127.0.0.1", "--port", str(args.api_port), "--log-level", "warning"],
        env=env,
    )
    print(f"  web page          http://127.0.0.1:{args.api_port}/")
    print(f"  public API        http://127.0.0.1:{args.api_port}/api/v1/chain (docs: /docs)")
    print(f"  Open311           http://127.0.0.1:{args.api_port}/open311/v2/services.json")
    print("Press Ctrl-C to stop; the chain is saved and resumes on the next run.")
    sys.stdout.flush()
    try:
        while True:
            try:
                code = api.wait(timeout=1)
            except subprocess.TimeoutExpired:
                if not node.running:
                    print(f"error: the local chain stopped unexpectedly; see {data_dir / 'anvil.log'}", file=sys.stderr)
                    return 1
                continue
            if code != 0:
                print(f"error: the API stopped (exit status {code}; is port {args.api_port} in use? set "
                      "CIVIC_API_PORT)", file=sys.stderr)
                return 1
            return 0
    finally:
        if api.poll() is None:
            api.terminate()  # uvicorn stops gracefully on SIGTERM
            try:
                api.wait(timeout=15)
            except subprocess.TimeoutExpired:
                api.kill()
                api.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    env = Settings.from_env()
    parser.add_argument("--data-dir", type=Path, default=env.data_dir)
    parser.add_argument("--port", type=int, default=env.chain_port)
    parser.add_argument("--demo-cases", type=int, default=20_000, help="cases in the demo city (0: no demo data)")
    parser.add_argument("--api-port", type=int, default=env.api_port)
    parser.add_argument("--once", action="store_true", help="set up, print, stop the chain and exit")
    parser.add_argument("--no-audit", action="store_true",
                        help="do not run the demo auditor's attested audit once the API is up")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)

    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    state_path = data_dir / "chain" / "anvil-state.json"
    extra_args: list[str] = []
    if not state_path.exists() and not (data_dir / "deployment.json").exists():
        # A new chain starts 92 days back, so the demo city's 90 days of history get block times that move like
        # real ones (the loader advances the clock as it records); afterwards the chain runs on the real clock.
        now = int(time.time())
        if args.demo_cases > 0:
            spec = {"end": now, "days": DEMO_DAYS, "cases": args.demo_cases, "seed": DEMO_SEED, "version": demo.VERSION}
            (data_dir / "demo.json").write_text(json.dumps(spec) + "\n")
        extra_args = ["--timestamp", str(now - (DEMO_DAYS + 2) * demo.DAY)]
    node = AnvilNode(
        port=args.port, state_path=state_path, chain_id=CHAIN_ID, log_path=data_dir / "anvil.log",
        extra_args=extra_args,
    )
    try:
        node.start()
    except LedgerError as exc:
        print(f"error: could not start the local chain on 127.0.0.1:{args.port}: {exc} "
              f"(is something else using the port? set CIVIC_CHAIN_PORT)", file=sys.stderr)
        return 2
    def _terminate(*_: object) -> None:
        raise KeyboardInterrupt  # SIGTERM stops as Ctrl-C does: through the finally below, which saves the chain

    signal.signal(signal.SIGTERM, _terminate)
    interrupted = False
    try:
        chain = Chain.connect(node.url, expected_chain_id=CHAIN_ID)
        keys = KeyStore(data_dir / "keys")
        ledger, deployment = ensure_ledger(chain, data_dir, keys)
        filer_code = None
        if (data_dir / "demo.json").exists():
            load_demo_city(chain, ledger, data_dir, keys, quiet=args.quiet)
            filer_code = demo_filings(chain, ledger, data_dir, keys)
        # The write API relays agencies' signed records and citizens' ratings from this key (the demo's citizens'
        # too); on the local chain it is funded here.
        _funded(chain, keys.get_or_create("relayer"))
        # the relay's citizens' lane (ledger.relay.store.LANES)
        _funded(chain, keys.get_or_create("relayer-citizens"))
        store = open_store(default_url(data_dir))
        # the confirmation depth: CIVIC_CONFIRMATIONS, else the local chain's (ledger.config.CONFIRMATIONS_BY_CHAIN)
        indexer = Indexer(chain, ledger.address, store, confirmations=env.confirmations, deploy_block=deployment.block,
                          batch_dir=batch_store(data_dir).directory, lease_seconds=env.index_lease_seconds)
        report = indexer.sync()
        print("Civic Ledger is up")
        print(f"  chain URL         {node.url}")
        print(f"  chain id          {chain.chain_id}")
        print(f"  contract address  {ledger.address} (deployed in block {deployment.block})")
        print(f"  governance        {deployment.governance}")
        print(f"  entries           {ledger.entry_count()}, running hash 0x{ledger.running_hash().hex()}")
        print(f"  index             {store.url} ({report.entries} entries indexed now)")
        print(f"  batch files       {batch_store(data_dir).directory} (Merkle-anchored batches, served by the API)")
        print(f"  data directory    {data_dir}")
        if filer_code is not None:
            print(f"  a filed request   key code {filer_code} (a demo citizen's own: see its case on the page, "
                  f"/#/receipt/{filer_code})")
        sys.stdout.flush()
        if args.once:
            store.close()
            return 0
        stop_indexing = threading.Event()
        follower = threading.Thread(
            target=_follow, args=(indexer, stop_indexing), name="indexer", daemon=True
        )
        follower.start()
        if not args.no_audit:
            # the audit reads and names the block before the latest: on a resumed chain, one mined since it resumed
            node.grow_past_load()
            threading.Thread(
                target=attest_when_served, name="demo-audit", daemon=True,
                args=(demo_auditor(chain, ledger, keys), node.url, ledger.address,
                      f"http://127.0.0.1:{args.api_port}", stop_indexing),
            ).start()
        try:
            served = _serve(args, node, ledger, chain, data_dir)
            # the API ends on its own only when Ctrl-C reached it too (the terminal signals the whole group), and
            # may do so before this process's own KeyboardInterrupt: stopping on a signal all the same
            interrupted = served == 0
            return served
        finally:
            stop_indexing.set()
            follower.join(timeout=10)
            store.close()
    except LedgerError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        interrupted = True
        return 0
    finally:
        stop_and_save(node, state_path, interrupted=interrupted)


def stop_and_save(node: AnvilNode, state_path: Path, *, interrupted: bool) -> None:
    """Stop the chain, saving its state first (``AnvilNode.stop``); say so when stopping on Ctrl-C or SIGTERM, and
    say what is kept when the save fails or is itself interrupted (the file then holds the last save whole)."""
    try:
        node.stop()
    except (LedgerError, OSError) as exc:
        print(f"error: the chain's latest state could not be saved ({exc}); {state_path} keeps the last save",
              file=sys.stderr)
        return
    except KeyboardInterrupt:
        print(f"stopped before the chain was saved; {state_path} keeps the last save", file=sys.stderr)
        return
    if interrupted:
        print("stopping; the chain is saved", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
