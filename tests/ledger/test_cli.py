"""The operator CLI end to end on a real node: governance, commitments, cases, import, outbox, sync, metrics."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest
from typer.testing import CliRunner

from ledger import devnet
from ledger.chain import Chain
from ledger.cli import app
from ledger.node import AnvilNode

runner = CliRunner()


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    data = tmp_path_factory.mktemp("cli-data")
    with AnvilNode() as node:
        chain = Chain.connect(node.url)
        keys = devnet.KeyStore(data / "keys")
        devnet.ensure_ledger(chain, data, keys)
        signer = keys.get_or_create("roads")
        chain.fund(signer.address)
        yield {"data": data, "url": node.url, "signer": signer, "chain": chain}


def cli(env, *args: str, code: int = 0):
    result = runner.invoke(app, ["--rpc-url", env["url"], "--data-dir", str(env["data"]), *args])
    assert result.exit_code == code, result.output
    return result.output


def iso(env, offset: int = 0) -> str:
    now = env["chain"].w3.eth.get_block("latest")["timestamp"]
    return datetime.fromtimestamp(now + offset, timezone.utc).isoformat()


def test_operator_flow(env, tmp_path):
    cli(env, "agency", "register", "SH-ROADS", "--jurisdiction", "CN-SH", "--name-zh", "路政", "--name-en", "Roads")
    cli(env, "agency", "authorize", "SH-ROADS", env["signer"].address)
    key = ("--key", "roads")
    out = cli(env, "commitment", "publish", "LIGHT-48H", "--service-code", "STREETLIGHT", "--name-zh", "路灯",
              "--name-en", "Streetlight", "--deadline", "48", "--unit", "hours", "--target", "95",
              "--terms", "A dark streetlight is repaired within 48 hours.", *key)
    assert "recorded as entry" in out
    cli(env, "calendar", "publish", "2026", "--holidays", "2026-10-01,2026-10-02", "--workdays", "2026-09-27", *key)
    cli(env, "case", "open", "R-1", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel", "hotline", *key)
    cli(env, "case", "update", "R-1", "accepted", *key)
    cli(env, "case", "close", "R-1", "fulfilled", "--details", "lamp replaced", *key)

    # a refused write names the contract's error and changes nothing
    out = cli(env, "case", "open", "R-2", "--commitment", "NO-SUCH", "--district", "EAST", "--channel", "web",
              *key, code=1)
    assert "UnknownCommitment" in out

    csv = tmp_path / "cases.csv"
    csv.write_text(
        "case,action,occurred_at,commitment,district,channel\n"
        f"R-3,opened,{iso(env, -3600)},LIGHT-48H,WEST,app\n"
        f"R-3,fulfilled,{iso(env, -60)},,,\n"
        "R-4,opened,2026-11-01T09:00:00,LIGHT-48H,WEST,app\n"
        f"R-5,opened,{iso(env, -60)},RETIRED-OR-UNKNOWN,WEST,app\n"
    )
    out = cli(env, "case", "import", str(csv), *key, code=1)
    assert "has no zone" in out and "UnknownCommitment" in out
    assert " 4 " in out and " 2 " in out  # 4 rows, 2 recorded
    out = cli(env, "case", "import", str(csv), *key, code=1)  # again: nothing recorded twice
    assert "failed" in cli(env, "outbox", "status", *key)

    out = cli(env, "sync", "--confirmations", "0")
    assert "indexed" in out
    figures = json.loads(cli(env, "metrics", "--by", "all", "--json"))["all"]
    assert figures["cases_opened"] == 2 and figures["fulfilled"] == 2


def test_bad_input_is_a_clear_error(env):
    out = cli(env, "case", "open", "R-9", "--commitment", "LIGHT-48H", "--district", "EAST", "--channel", "web",
              code=2)
    assert "no key given" in out
    out = cli(env, "commitment", "retire", "X", "--reason", "r", "--key", "nobody", code=2)
    assert "nobody" in out
    out = cli(env, "metrics", "--from", "yesterday", code=2)
    assert "--from must be a date" in out


def test_wrong_chain_is_refused(env):
    out = cli(env, "--chain-id", "1", "agency", "revoke", env["signer"].address, code=2)
    assert "expected 1" in out
