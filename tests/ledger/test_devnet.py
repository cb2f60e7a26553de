"""The run command's local network: deploys once, survives restarts, and refuses a lost or foreign chain."""

from __future__ import annotations

import json
import signal

import pytest

from ledger import receipts
from ledger.chain.keys import KeyStore
from ledger.dev import demo, devnet
from ledger.dev.node import free_port
from ledger.records import FilingDecision
from ledger.relay.store import CitizenFiles


def _run(data_dir, capsys) -> tuple[int, str]:
    code = devnet.main(
        ["--data-dir", str(data_dir), "--port", str(free_port()), "--once", "--quiet", "--demo-cases", "40"]
    )
    return code, capsys.readouterr().out


def _entries(out: str) -> int:
    line = next(line for line in out.splitlines() if line.strip().startswith("entries"))
    return int(line.split()[1].rstrip(","))


def test_state_survives_a_restart_and_nothing_is_deployed_twice(tmp_path, capsys):
    code, first = _run(tmp_path, capsys)
    assert code == 0
    deployment = json.loads((tmp_path / "deployment.json").read_text())
    assert deployment["address"] in first
    # six agencies registered and keyed, fifteen commitments, the calendars, and the cases' events
    assert _entries(first) > 2 * 6 + 15 + 40

    # the hotline's days are Merkle-anchored batches: their files published, then indexed with every entry
    files = sorted((tmp_path / "batches").glob("*.csv"))
    assert files and "batch files" in first
    assert _indexed(tmp_path) == (_entries(first), sum(len(f.read_text().splitlines()) - 1 for f in files))
    files[0].unlink()  # a lost file is published again at the next start (the city is deterministic)

    # the demo citizens' filings: filed, answered (one accepted, fulfilled and rated), the accepted one's code shown
    filed = _filings(tmp_path)
    assert [r[1] for r in filed] == [FilingDecision.ACCEPTED, FilingDecision.DUPLICATE, FilingDecision.SPAM]
    code_line = next(line for line in first.splitlines() if "a filed request" in line)
    spec = json.loads((tmp_path / "demo.json").read_text())
    assert demo.filer_code(spec["seed"], "lamp") in code_line
    # filed as the API files: what each demo citizen wrote is in the private store, for the agency's intake
    lamp = receipts.address(demo.filer_code(spec["seed"], "lamp"))
    content, salt = demo.filing_content(spec["seed"], "lamp")
    stored = CitizenFiles(tmp_path / "relay").filing(lamp, content.content_hash(salt))
    assert stored is not None and stored.content == content

    code, second = _run(tmp_path, capsys)
    assert code == 0
    assert _filings(tmp_path) == filed  # nothing filed or answered twice
    assert json.loads((tmp_path / "deployment.json").read_text()) == deployment
    assert _entries(second) == _entries(first)
    assert first.splitlines()[3] == second.splitlines()[3]  # same contract address line
    assert sorted((tmp_path / "batches").glob("*.csv")) == files


def _filings(data_dir) -> list[tuple[int, int]]:
    """(seq, decision) of each filing in the index."""
    from sqlalchemy import select

    from ledger.store import schema
    from ledger.store.db import default_url, open_store

    store = open_store(default_url(data_dir), migrate=False)
    try:
        with store.engine.connect() as conn:
            return [(r.seq, r.decision) for r in conn.execute(
                select(schema.filings.c.seq, schema.filings.c.decision).order_by(schema.filings.c.seq))]
    finally:
        store.close()


def _indexed(data_dir) -> tuple[int, int]:
    """Entries in the index, and how many of them came in batches."""
    from sqlalchemy import func, select

    from ledger.store import schema
    from ledger.store.db import default_url, open_store

    store = open_store(default_url(data_dir), migrate=False)
    try:
        with store.engine.connect() as conn:
            count = select(func.count()).select_from(schema.entries)
            return (conn.execute(count).scalar_one(),
                    conn.execute(count.where(schema.entries.c.batch_seq.is_not(None))).scalar_one())
    finally:
        store.close()


def test_keys_are_encrypted_and_never_printed(tmp_path, capsys):
    code, out = _run(tmp_path, capsys)
    assert code == 0
    keys = tmp_path / "keys"
    for name in ("governance", "agency-DEMO-ROADS"):
        stored = json.loads((keys / f"{name}.json").read_text())
        assert stored["crypto"]["kdf"] == "scrypt"
        assert (keys / f"{name}.json").stat().st_mode & 0o077 == 0
        account = KeyStore(keys).get_or_create(name)
        assert account.key.hex().removeprefix("0x") not in out
    assert (keys / ".password").stat().st_mode & 0o077 == 0


def test_lost_chain_state_is_a_clear_error(tmp_path, capsys):
    assert _run(tmp_path, capsys)[0] == 0
    (tmp_path / "chain" / "anvil-state.json").unlink()
    code = devnet.main(["--data-dir", str(tmp_path), "--port", str(free_port()), "--once", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2
    assert "no contract at" in err and "move" in err


def test_busy_port_is_a_clear_error(tmp_path, capsys, anvil_node):
    code = devnet.main(["--data-dir", str(tmp_path), "--port", str(anvil_node.port), "--once", "--quiet"])
    assert code == 2
    assert "could not start the local chain" in capsys.readouterr().err


def test_serves_the_api_as_an_operator_would_and_stops_it_with_the_chain(tmp_path):
    """The run command starts the API as its own process (``python -m api``, configured by CIVIC_* variables, as in
    production: nothing of ``api`` is imported into the ledger's process) and stops it on SIGTERM."""
    import signal
    import subprocess
    import sys
    import time

    import httpx

    api_port = free_port()
    run = subprocess.Popen(
        [sys.executable, "-m", "ledger.dev.devnet", "--data-dir", str(tmp_path), "--port", str(free_port()),
         "--api-port", str(api_port), "--demo-cases", "0", "--no-audit", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        deadline, answer = time.monotonic() + 120, None
        while time.monotonic() < deadline and run.poll() is None:
            try:
                answer = httpx.get(f"http://127.0.0.1:{api_port}/api/v1/chain", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert answer is not None and answer.status_code == 200, run.stdout.read() if run.poll() is not None else ""
        deployment = json.loads((tmp_path / "deployment.json").read_text())
        assert answer.json()["contract_address"].lower() == deployment["address"].lower()
        run.send_signal(signal.SIGTERM)
        output, _ = run.communicate(timeout=60)
        assert run.returncode == 0, output
        assert "stopping; the chain is saved" in output
        try:
            httpx.get(f"http://127.0.0.1:{api_port}/api/v1/chain", timeout=2)
            raise AssertionError("the API still answers after the run command stopped")
        except httpx.HTTPError:
            pass
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()


@pytest.mark.slow
@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_the_last_transaction_before_a_stop_is_in_the_saved_chain(tmp_path, stop):
    """Ctrl-C or SIGTERM right after a transaction: the run command saves the chain as it stops (the node's periodic
    save looks only every few seconds), and the next start has the transaction."""
    import subprocess
    import sys

    from ledger.chain.contract import Chain
    from ledger.dev.node import AnvilNode

    run = subprocess.Popen(
        [sys.executable, "-m", "ledger.dev.devnet", "--data-dir", str(tmp_path), "--port", str(free_port()),
         "--api-port", str(free_port()), "--demo-cases", "0", "--no-audit", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert run.stdout is not None
        seen = []
        for line in run.stdout:
            seen.append(line)
            if line.startswith("Press Ctrl-C"):
                break
        url = next((line.split()[-1] for line in seen if line.strip().startswith("chain URL")), None)
        assert url is not None, "".join(seen)
        chain = Chain.connect(url)
        paid = chain.w3.eth.account.create().address
        chain.fund(paid, 4242)
        run.send_signal(stop)
        output, _ = run.communicate(timeout=60)
        assert run.returncode == 0, output
        assert "stopping; the chain is saved" in output
    finally:
        if run.poll() is None:
            run.kill()
            run.communicate()
    with AnvilNode(state_path=tmp_path / "chain" / "anvil-state.json") as node:
        assert Chain.connect(node.url).w3.eth.get_balance(paid) == 4242


def test_a_failed_last_save_is_said_and_the_chain_stopped_all_the_same(tmp_path, capsys, monkeypatch):
    from ledger.dev import node as node_module
    from ledger.dev.node import AnvilNode

    state = tmp_path / "chain" / "anvil-state.json"
    node = AnvilNode(state_path=state).start()

    def no_space(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(node_module.os, "fsync", no_space)
    devnet.stop_and_save(node, state, interrupted=True)
    monkeypatch.undo()
    err = capsys.readouterr().err
    assert "could not be saved" in err and "No space left" in err and "keeps the last save" in err
    assert "the chain is saved" not in err
    assert not node.running and not state.exists()


def _served_until_audited(data_dir) -> str:
    """Run the run command as `make run` does (the demo audit on) until its demo audit says how it went, then stop it
    as Ctrl-C does; that line."""
    import subprocess
    import sys
    import threading

    run = subprocess.Popen(
        [sys.executable, "-m", "ledger.dev.devnet", "--data-dir", str(data_dir), "--port", str(free_port()),
         "--api-port", str(free_port()), "--demo-cases", "0", "--quiet"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    watchdog = threading.Timer(300, run.kill)  # a run that never audits ends its output, and so the loop below
    watchdog.start()
    try:
        assert run.stdout is not None
        seen = []
        for line in run.stdout:
            seen.append(line)
            if "demo audit" in line:
                break
        run.send_signal(signal.SIGINT)
        output, _ = run.communicate(timeout=60)
        assert run.returncode == 0, "".join(seen) + output
    finally:
        watchdog.cancel()
        if run.poll() is None:
            run.kill()
            run.communicate()
    return next((line for line in seen if "demo audit" in line), "".join(seen))


@pytest.mark.slow
def test_the_demo_audit_attests_a_resumed_chain(tmp_path):
    """Stopped and started again, the run command audits and attests the chain it resumed. anvil reloaded from the
    state file holds the state of its latest block only, and an attested audit reads the block before the latest
    (``ledger.audit.attest.attestable_block``): with nothing sent since the restart, the node answered its
    ``eth_getCode`` there with ``BlockOutOfRangeError`` and the resumed run attested nothing."""
    first = _served_until_audited(tmp_path)
    assert "passed, 0 findings; attested" in first, first
    second = _served_until_audited(tmp_path)
    assert "passed, 0 findings; attested" in second, second
    assert int(second.split("block")[1].split(":")[0]) > int(first.split("block")[1].split(":")[0])
