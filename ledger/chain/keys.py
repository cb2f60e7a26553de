"""Agency signing keys: loaded from an encrypted keystore file (eth-account's Web3 Secret Storage, scrypt or pbkdf2)
or from an environment variable, and never shown.

The account returned is an :class:`AgencyKey`: a LocalAccount whose ``repr``/``str`` name only its address and which
refuses to be pickled (so a key does not travel into a log line, a traceback's repr or a multiprocessing queue by
accident). Errors name where the key was looked for, never the key or the password: a malformed key is refused
with ``raise ... from None`` so the library error that may quote the value is not chained into the traceback.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
import stat
from pathlib import Path
from typing import Any, NoReturn, cast

from eth_account import Account
from eth_account.account_local_actions import AccountLocalActions
from eth_account.signers.local import LocalAccount

from ledger.errors import KeyUnavailable

log = logging.getLogger(__name__)

_HEX_KEY = re.compile(r"(0x)?[0-9a-fA-F]{64}")


class AgencyKey(LocalAccount):
    """A LocalAccount that shows only its address. Signing works exactly as for any LocalAccount."""

    def __repr__(self) -> str:
        return f"AgencyKey(address={self.address})"

    __str__ = __repr__

    def __reduce__(self) -> NoReturn:
        raise TypeError("an agency key cannot be pickled; load it again in the other process")

    @classmethod
    def wrap(cls, account: LocalAccount) -> AgencyKey:
        """The same key as an AgencyKey (e.g. for an account created by ``Account.create()``)."""
        if isinstance(account, AgencyKey):
            return account
        # the class itself, as eth-account passes it (its methods are combomethods): no instance is needed
        return cls(account._key_obj, cast(AccountLocalActions, Account))


def load_key(
    keystore: Path | str | None = None,
    *,
    password: str | None = None,
    password_file: Path | str | None = None,
    env_var: str | None = None,
) -> AgencyKey:
    """Load an agency key from exactly one source.

    - ``keystore``: an encrypted keystore file, with ``password`` or ``password_file`` (whose first line is the
      password; a trailing newline is not part of it).
    - ``env_var``: the name of an environment variable holding the hex private key (with or without ``0x``).

    Raises :class:`KeyUnavailable` with a message that names the file or variable but never the key or password.
    """
    if keystore is not None and env_var is not None:
        raise KeyUnavailable("give either a keystore file or an environment variable for the agency key, not both")
    if keystore is not None:
        return _from_keystore(Path(keystore), _password(Path(keystore), password, password_file))
    if env_var is not None:
        return _from_env(env_var)
    raise KeyUnavailable("no agency key given: name a keystore file (with its password) or an environment variable")


def _password(keystore: Path, password: str | None, password_file: Path | str | None) -> str:
    if password is not None and password_file is not None:
        raise KeyUnavailable(f"give either a password or a password file for {keystore}, not both")
    if password is not None:
        return password
    if password_file is None:
        raise KeyUnavailable(f"keystore {keystore} is encrypted: a password or a password file is needed")
    path = Path(password_file)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise KeyUnavailable(f"password file {path} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyUnavailable(f"cannot read password file {path}: {type(exc).__name__}") from None
    _warn_if_readable_by_others(path, "password file")
    lines = text.splitlines()
    return lines[0] if lines else ""


def _from_keystore(path: Path, password: str) -> AgencyKey:
    try:
        document: Any = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KeyUnavailable(f"keystore file {path} not found") from None
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise KeyUnavailable(f"{path} is not a readable keystore file ({type(exc).__name__})") from None
    if not isinstance(document, dict) or "crypto" not in {k.lower() for k in document}:
        raise KeyUnavailable(f"{path} is not a keystore file (no 'crypto' section)")
    _warn_if_readable_by_others(path, "keystore file")
    address = document.get("address")
    shown = f" (address 0x{str(address).removeprefix('0x')})" if address else ""
    try:
        raw = Account.decrypt(document, password)
    except ValueError as exc:
        # eth-keyfile says "MAC mismatch" for a wrong password; anything else is a format it does not support.
        reason = "wrong password" if "MAC mismatch" in str(exc) else f"unsupported or damaged keystore ({exc})"
        raise KeyUnavailable(f"cannot decrypt keystore {path}{shown}: {reason}") from None
    except (KeyError, TypeError) as exc:
        raise KeyUnavailable(f"cannot decrypt keystore {path}{shown}: damaged keystore (missing {exc})") from None
    key = _account(bytes(raw), f"keystore {path}")
    if address and key.address.lower().removeprefix("0x") != str(address).lower().removeprefix("0x"):
        raise KeyUnavailable(f"keystore {path} decrypts to a key for another address than the{shown} it declares")
    return key


def _from_env(name: str) -> AgencyKey:
    value = os.environ.get(name)
    if value is None or not value.strip():
        raise KeyUnavailable(f"environment variable {name} is not set (it should hold the agency's private key)")
    text = value.strip()
    if not _HEX_KEY.fullmatch(text):
        raise KeyUnavailable(
            f"environment variable {name} does not hold a private key (expected 64 hex digits, optionally 0x-prefixed)"
        )
    return _account(bytes.fromhex(text.removeprefix("0x")), f"environment variable {name}")


def _account(raw: bytes, source: str) -> AgencyKey:
    try:
        return AgencyKey.wrap(Account.from_key(raw))
    except Exception:  # noqa: BLE001 - a bad key raises various errors, whose message may quote it: never chain it
        raise KeyUnavailable(f"{source} does not hold a valid secp256k1 private key") from None


def _warn_if_readable_by_others(path: Path, what: str) -> None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("%s %s is accessible to other users (mode %o); chmod 600 it", what, path, stat.S_IMODE(mode))


class KeyStore:
    """Named keys kept as encrypted keystore files in one directory (``DATA_DIR/keys/NAME.json``), all under the
    directory's password file (``.password``, readable by its owner only): the service's own keys (relayers,
    the local network's governance and demo agencies). Each key is loaded through :func:`load_key`, so it is an
    :class:`AgencyKey` (shown by its address only, never pickled) and a loose file mode is warned about.

    ``load`` refuses a key that is not there; ``get_or_create`` makes it on first use, and says so in the log with
    its address (a new key holds nothing until someone funds or authorises it)."""

    #: scrypt n = 2^15 (geth's "light" setting is 2^12, its default 2^18): seconds matter at every start of the local
    #: network, which decrypts seven keys; an operator's own keystores (``load_key``) take whatever they were made with
    SCRYPT_N = 2**15

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._password_file = self.directory / ".password"
        if not self._password_file.exists():
            tmp = self._password_file.with_suffix(".tmp")
            tmp.write_text(secrets.token_urlsafe(32))
            tmp.chmod(0o600)
            tmp.replace(self._password_file)
        self._loaded: dict[str, AgencyKey] = {}

    def path(self, name: str) -> Path:
        return self.directory / f"{name}.json"

    def load(self, name: str) -> AgencyKey:
        """The key NAME; :class:`KeyUnavailable` when there is none (or it cannot be decrypted)."""
        if name not in self._loaded:  # scrypt makes each decryption cost about a second
            self._loaded[name] = load_key(self.path(name), password_file=self._password_file)
        return self._loaded[name]

    def get_or_create(self, name: str) -> AgencyKey:
        """The key NAME, made (and written durably, mode 600) when there is none yet."""
        if name in self._loaded or self.path(name).exists():
            return self.load(name)
        key = AgencyKey.wrap(Account.create())
        password = _password(self.path(name), None, self._password_file)
        tmp = self.path(name).with_suffix(".tmp")
        tmp.write_text(json.dumps(Account.encrypt(key.key, password, iterations=self.SCRYPT_N)))
        tmp.chmod(0o600)
        tmp.replace(self.path(name))
        log.warning("created the key %r (%s) in %s", name, key.address, self.directory)
        self._loaded[name] = key
        return key


def named_key(
    data_dir: Path,
    key: str | None,
    *,
    key_env: str | None = None,
    password_file: Path | None = None,
    password: str | None = None,
) -> AgencyKey:
    """The agency key an operator names: the environment variable `key_env` (a hex private key); else `key`, a
    keystore file or the name of one under ``DATA_DIR/keys`` (whose ``.password`` file then applies unless
    `password_file` is given), decrypted with `password_file`, else `password` (``CIVIC_KEY_PASSWORD``).
    :class:`KeyUnavailable` says what is missing."""
    if key_env:
        return load_key(env_var=key_env)
    if not key:
        raise KeyUnavailable(
            "no key given: pass --key (a keystore file, or a key name under DATA_DIR/keys) or --key-env"
        )
    path = Path(key)
    named = Path(data_dir) / "keys" / f"{key}.json"
    if not path.exists() and named.exists():
        path = named
        password_file = password_file or named.parent / ".password"
    if password_file is None:
        if password is None:
            raise KeyUnavailable(f"keystore {path} needs --password-file or CIVIC_KEY_PASSWORD")
        return load_key(path, password=password)
    return load_key(path, password_file=password_file)


def case_salt(data_dir: Path, agency: str, configured: str = "") -> bytes:
    """The agency's secret salt for case ids (``ledger.importer.CaseIds``): `configured` (``CIVIC_CASE_SALT``, hex),
    else the file ``DATA_DIR/keys/case-salt-AGENCY``, made on first use (mode 600, written whole or not at all, and
    logged with where it is: back it up — losing it means case references can no longer be matched to case ids)."""
    if configured:
        try:
            return bytes.fromhex(configured.removeprefix("0x"))
        except ValueError:
            raise KeyUnavailable("CIVIC_CASE_SALT is not hex") from None
    path = Path(data_dir) / "keys" / f"case-salt-{agency}"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
                f.flush()
                os.fsync(f.fileno())
            os.link(tmp, path)  # never replaces a salt another process made meanwhile
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        log.warning("created a new case-id salt for %s in %s: back it up", agency, path)
    text = path.read_text().strip()
    try:
        salt = bytes.fromhex(text)
    except ValueError:
        raise KeyUnavailable(f"the case-id salt in {path} is not hex: restore it from its backup") from None
    if len(salt) < 16:
        raise KeyUnavailable(f"the case-id salt in {path} is {len(salt)} bytes: restore it from its backup")
    return salt
