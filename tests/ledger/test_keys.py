"""Agency keys load from an encrypted keystore or an environment variable, and are never shown: not in a repr, a str,
an error message, a traceback or a log line."""

from __future__ import annotations

import json
import logging
import pickle
import traceback
from pathlib import Path

import pytest
from eth_account import Account

from ledger.chain.keys import AgencyKey, load_key
from ledger.errors import KeyUnavailable
from ledger.writer.outbox import Outbox
from ledger.writer.sender import Writer
from tests.support.world import World

PASSWORD = "correct horse battery staple"
ENV = "CIVIC_TEST_KEY_FOR_KEYS"


def secrets_of(account: object) -> list[str]:
    """Every way the key could appear in text: hex with and without 0x, either case."""
    raw = bytes(account.key)  # type: ignore[attr-defined]
    return [raw.hex(), raw.hex().upper(), "0x" + raw.hex()]


def assert_hidden(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in text


def keystore(tmp_path: Path, account: object, password: str = PASSWORD) -> Path:
    # A cheap KDF keeps the test fast; production keystores use eth-account's default scrypt parameters.
    path = tmp_path / "agency.json"
    encrypted = Account.encrypt(account.key, password, kdf="pbkdf2", iterations=2)  # type: ignore[attr-defined]
    path.write_text(json.dumps(encrypted))
    path.chmod(0o600)
    return path


def test_environment_variable_with_or_without_0x(monkeypatch):
    account = Account.create()
    for value in (account.key.hex(), "0x" + bytes(account.key).hex(), f"  {bytes(account.key).hex()}\n"):
        monkeypatch.setenv(ENV, value)
        loaded = load_key(env_var=ENV)
        assert isinstance(loaded, AgencyKey)
        assert loaded.address == account.address
        assert bytes(loaded.key) == bytes(account.key)


def test_repr_and_str_show_only_the_address(monkeypatch):
    account = Account.create()
    monkeypatch.setenv(ENV, bytes(account.key).hex())
    loaded = load_key(env_var=ENV)
    for text in (repr(loaded), str(loaded), f"{loaded}", f"{loaded!r}", repr([loaded]), repr({"signer": loaded})):
        assert account.address in text
        assert_hidden(text, *secrets_of(account))


def test_a_key_cannot_be_pickled(monkeypatch):
    monkeypatch.setenv(ENV, bytes(Account.create().key).hex())
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(load_key(env_var=ENV))


@pytest.mark.parametrize(
    "value, reason",
    [
        (None, "is not set"),
        ("   ", "is not set"),
        ("0x1234", "expected 64 hex digits"),
        ("zz" * 32, "expected 64 hex digits"),
        ("00" * 32, "not hold a valid secp256k1 private key"),  # zero is out of range
        ("ff" * 32, "not hold a valid secp256k1 private key"),  # above the curve order
    ],
)
def test_bad_environment_variables_are_clear_errors_that_never_quote_the_value(monkeypatch, value, reason):
    if value is None:
        monkeypatch.delenv(ENV, raising=False)
    else:
        monkeypatch.setenv(ENV, value)
    with pytest.raises(KeyUnavailable, match=reason) as info:
        load_key(env_var=ENV)
    assert ENV in str(info.value)
    shown = "".join(traceback.format_exception(info.value)) + repr(info.value)
    if value and value.strip():
        assert value.strip() not in shown
        assert value.strip().removeprefix("0x") not in shown
    # nothing chained that could quote the value
    assert info.value.__cause__ is None
    assert info.value.__context__ is None or info.value.__suppress_context__


def test_keystore_with_password_or_password_file(tmp_path):
    account = Account.create()
    path = keystore(tmp_path, account)
    assert load_key(path, password=PASSWORD).address == account.address
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n")  # the trailing newline an editor adds is not part of the password
    password_file.chmod(0o600)
    loaded = load_key(path, password_file=password_file)
    assert loaded.address == account.address
    assert isinstance(loaded, AgencyKey)


def test_wrong_password_names_the_file_and_address_but_not_the_password(tmp_path):
    account = Account.create()
    path = keystore(tmp_path, account)
    with pytest.raises(KeyUnavailable, match="wrong password") as info:
        load_key(path, password="not it")
    message = str(info.value)
    assert str(path) in message and account.address[2:].lower() in message.lower()
    assert "not it" not in message
    assert_hidden("".join(traceback.format_exception(info.value)), *secrets_of(account))


@pytest.mark.parametrize(
    "case, reason",
    [
        ("missing", "not found"),
        ("not json", "not a readable keystore"),
        ("no crypto", "not a keystore file"),
        ("no password", "password or a password file is needed"),
        ("missing password file", "password file .* not found"),
        ("both passwords", "not both"),
        ("both sources", "not both"),
        ("no source", "no agency key given"),
    ],
)
def test_keystore_problems_are_clear_errors(tmp_path, monkeypatch, case, reason):
    account = Account.create()
    path = keystore(tmp_path, account)
    monkeypatch.setenv(ENV, bytes(account.key).hex())
    kwargs: dict[str, object] = {"keystore": path, "password": PASSWORD}
    if case == "missing":
        kwargs["keystore"] = tmp_path / "nope.json"
    elif case == "not json":
        path.write_text("{ not json")
    elif case == "no crypto":
        path.write_text(json.dumps({"address": "00" * 20}))
    elif case == "no password":
        kwargs.pop("password")
    elif case == "missing password file":
        kwargs = {"keystore": path, "password_file": tmp_path / "nope"}
    elif case == "both passwords":
        kwargs["password_file"] = tmp_path / "password"
    elif case == "both sources":
        kwargs["env_var"] = ENV
    elif case == "no source":
        kwargs = {}
    with pytest.raises(KeyUnavailable, match=reason) as info:
        load_key(**kwargs)  # type: ignore[arg-type]
    assert PASSWORD not in str(info.value)
    assert_hidden("".join(traceback.format_exception(info.value)), *secrets_of(account))


def test_files_readable_by_others_are_warned_about_without_showing_them(tmp_path, caplog):
    account = Account.create()
    path = keystore(tmp_path, account)
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    for target in (path, password_file):
        target.chmod(0o644)
    with caplog.at_level(logging.WARNING, logger="ledger.chain.keys"):
        load_key(path, password_file=password_file)
    assert "keystore file" in caplog.text and "password file" in caplog.text and "chmod 600" in caplog.text
    assert PASSWORD not in caplog.text
    assert_hidden(caplog.text, *secrets_of(account))


def test_a_whole_write_never_logs_or_shows_the_key(world: World, tmp_path, monkeypatch, caplog):
    """Every logger at DEBUG (web3's request logging included) through a submit, a flush with a refused entry, and
    a write that raises: the key appears nowhere — not in logs, reprs, errors or the outbox file."""
    monkeypatch.setenv(ENV, bytes(world.signer.key).hex())
    signer = load_key(env_var=ENV)
    secrets = secrets_of(signer)
    with caplog.at_level(logging.DEBUG), Outbox(tmp_path / "outbox.db") as outbox:
        writer = Writer(world.ledger, signer, outbox)
        texts = [repr(writer), str(writer), repr(outbox)]
        writer.submit(world.opened("key-test"))
        writer.submit(world.opened("bad", commitment_id=b"\x07" * 32))
        items = writer.flush()
        texts += [repr(item) for item in items]
        with pytest.raises(Exception) as info:
            writer.write(world.opened("bad again", commitment_id=b"\x07" * 32))
        texts += [str(info.value), repr(info.value), "".join(traceback.format_exception(info.value))]
        writer.close()
    texts.append(caplog.text)
    assert_hidden("\n".join(texts), *secrets)
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.is_file())
    assert bytes(signer.key) not in raw and bytes(signer.key).hex().encode() not in raw


def test_key_store_keys_are_agency_keys_made_once_and_loaded_strictly(tmp_path, caplog):
    """The service's named keys (relayers, the local network's): shown by address only, never pickled, made only
    by get_or_create (which logs the new address), and `load` refuses a key that is not there."""
    import pickle

    from ledger.chain.keys import AgencyKey, KeyStore

    store = KeyStore(tmp_path / "keys")
    with pytest.raises(KeyUnavailable, match="relayer.json not found"):
        store.load("relayer")
    with caplog.at_level("WARNING"):
        made = store.get_or_create("relayer")
    assert isinstance(made, AgencyKey) and made.address in caplog.text
    assert made.key.hex().removeprefix("0x") not in caplog.text + repr(made) + str(made)
    with pytest.raises(TypeError, match="cannot be pickled"):
        pickle.dumps(made)
    assert (tmp_path / "keys" / "relayer.json").stat().st_mode & 0o077 == 0
    assert (tmp_path / "keys" / ".password").stat().st_mode & 0o077 == 0
    again = KeyStore(tmp_path / "keys")  # a new process: decrypted from the file, not made again
    assert again.load("relayer").address == made.address
    assert again.get_or_create("relayer").address == made.address
    (tmp_path / "keys" / ".password").write_text("not the password")
    with pytest.raises(KeyUnavailable, match="wrong password"):
        KeyStore(tmp_path / "keys").load("relayer")


def test_a_key_named_by_the_operator(tmp_path, monkeypatch):
    """`named_key`: an environment variable, a keystore path (with a password or a password file), or a key's name
    under DATA_DIR/keys with that directory's password file; each missing piece is named."""
    from ledger.chain.keys import KeyStore, named_key

    account = Account.create()
    path = keystore(tmp_path, account)
    monkeypatch.setenv(ENV, account.key.hex())
    assert named_key(tmp_path, None, key_env=ENV).address == account.address
    assert named_key(tmp_path, str(path), password=PASSWORD).address == account.address
    password_file = tmp_path / "pw"
    password_file.write_text(PASSWORD + "\n")
    password_file.chmod(0o600)
    assert named_key(tmp_path, str(path), password_file=password_file).address == account.address
    made = KeyStore(tmp_path / "keys").get_or_create("desk-1")
    assert named_key(tmp_path, "desk-1").address == made.address  # its directory's .password applies
    with pytest.raises(KeyUnavailable, match="no key given"):
        named_key(tmp_path, None)
    with pytest.raises(KeyUnavailable, match="needs --password-file or CIVIC_KEY_PASSWORD"):
        named_key(tmp_path, str(path))
    with pytest.raises(KeyUnavailable, match="not found"):
        named_key(tmp_path, "no-such-desk", password=PASSWORD)


def test_the_case_id_salt_is_made_once_whole_and_private(tmp_path, caplog):
    from ledger.chain.keys import case_salt

    with caplog.at_level("WARNING"):
        salt = case_salt(tmp_path, "SH-ROADS")
    path = tmp_path / "keys" / "case-salt-SH-ROADS"
    assert len(salt) == 32 and str(path) in caplog.text and salt.hex() not in caplog.text
    assert path.stat().st_mode & 0o077 == 0 and [p.name for p in path.parent.iterdir()] == [path.name]
    assert case_salt(tmp_path, "SH-ROADS") == salt  # kept, not made again
    assert case_salt(tmp_path, "SH-WATER") != salt  # one per agency
    assert case_salt(tmp_path, "SH-ROADS", "0x" + "ab" * 32) == b"\xab" * 32  # CIVIC_CASE_SALT wins
    with pytest.raises(KeyUnavailable, match="CIVIC_CASE_SALT is not hex"):
        case_salt(tmp_path, "SH-ROADS", "not hex")
    path.write_text("")  # a salt file emptied (a full disk, a bad restore): refused, never an empty salt
    with pytest.raises(KeyUnavailable, match="0 bytes: restore it from its backup"):
        case_salt(tmp_path, "SH-ROADS")
