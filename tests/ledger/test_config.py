"""The one definition of the service's settings (ledger.config.Settings) and of the deployment record."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger.chain.contract import Chain
from ledger.config import (
    CONFIRMATIONS_BY_CHAIN,
    DEFAULT_CONFIRMATIONS,
    DEFAULT_DATA_DIR,
    DEFAULT_LEASE_SECONDS,
    Deployment,
    Settings,
    confirmations_for,
)
from ledger.errors import InvalidSetting, LedgerError


@pytest.fixture(autouse=True)
def _no_civic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.startswith("CIVIC_")]:
        monkeypatch.delenv(name)


def test_defaults_and_what_the_environment_changes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    s = Settings.from_env()
    assert s.data_dir == DEFAULT_DATA_DIR and s.rpc_url == "http://127.0.0.1:8545" and s.cors_origins == ("*",)
    assert (s.chain_port, s.api_port, s.relay_gas_per_day) == (8545, 8000, None)
    monkeypatch.setenv("CIVIC_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CIVIC_CORS_ORIGINS", "https://a.example, https://b.example,")
    monkeypatch.setenv("CIVIC_RELAY_GAS_PER_DAY", "1_000_000")
    monkeypatch.setenv("CIVIC_STORE_URL", "")  # empty: unset
    s = Settings.from_env()
    assert s.data_dir == tmp_path and s.cors_origins == ("https://a.example", "https://b.example")
    assert s.relay_gas_per_day == 1_000_000 and s.store_url is None


@pytest.mark.parametrize(("name", "value"), [("CIVIC_RELAY_GAS_PER_HOUR", "lots"), ("CIVIC_READ_RATE_PER_MINUTE", "-1"),
                                             ("CIVIC_CHAIN_ID", "0"), ("CIVIC_API_PORT", "70000")])
def test_a_bad_value_is_refused_naming_its_variable(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=f"bad setting: {name}: "):
        Settings.from_env()


def test_the_ledger_is_the_deployment_record_s_unless_given(tmp_path: Path) -> None:
    assert Settings.from_env(data_dir=tmp_path).ledger_address() == (None, None)
    Deployment(chain_id=31337, address="0x" + "ab" * 20, block=7, governance="0x" + "cd" * 20).save(
        tmp_path / "deployment.json"
    )
    assert Deployment.of(tmp_path) == Deployment(31337, "0x" + "ab" * 20, 7, "0x" + "cd" * 20)
    assert Settings.from_env(data_dir=tmp_path).ledger_address() == ("0x" + "ab" * 20, 31337)
    assert Settings.from_env(data_dir=tmp_path, chain_id=5).ledger_address() == ("0x" + "ab" * 20, 5)
    given = Settings.from_env(data_dir=tmp_path, contract="0x" + "ef" * 20)
    assert given.ledger_address() == ("0x" + "ef" * 20, None) and given.deployment() is None


def test_a_damaged_deployment_record_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "deployment.json").write_text("{not json")
    with pytest.raises(LedgerError, match="is not a deployment record"):
        Deployment.of(tmp_path)


# ----------------------------------------------------------------------------------------------- confirmations


def test_confirmations_default_by_chain_id() -> None:
    assert confirmations_for(31337) == CONFIRMATIONS_BY_CHAIN[31337] == 2  # anvil, Hardhat: make run's network
    assert confirmations_for(Chain.embedded_chain().chain_id) == 0  # eth-tester's
    assert confirmations_for(1) == confirmations_for(8453) == DEFAULT_CONFIRMATIONS == 12
    assert confirmations_for(1, 64) == 64 and confirmations_for(31337, 0) == 0
    with pytest.raises(InvalidSetting, match="0 or more"):
        confirmations_for(1, -1)


def test_confirmations_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings.from_env().confirmations is None
    assert Settings.from_env().index_lease_seconds == DEFAULT_LEASE_SECONDS
    monkeypatch.setenv("CIVIC_CONFIRMATIONS", "20")
    monkeypatch.setenv("CIVIC_INDEX_LEASE_SECONDS", "90")
    settings = Settings.from_env()
    assert (settings.confirmations, settings.index_lease_seconds) == (20, 90)
    assert confirmations_for(31337, settings.confirmations) == 20
    for name, bad in (("CIVIC_CONFIRMATIONS", "-1"), ("CIVIC_INDEX_LEASE_SECONDS", "0")):
        monkeypatch.setenv(name, bad)
        with pytest.raises(InvalidSetting, match=f"bad setting: {name}: "):
            Settings.from_env()
        monkeypatch.delenv(name)
