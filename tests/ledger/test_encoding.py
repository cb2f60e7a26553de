"""The ledger's encodings (ledger.encoding) against their definitions written out independently here, with eth-abi
and eth-hash: the entry hash, the running hash's fold, keccak, and the code text. The contract's own values are
checked in tests/ledger/test_records.py (entryHashOf, runningHash)."""

from __future__ import annotations

from eth_abi import encode as abi_encode
from eth_hash.auto import keccak as eth_keccak
from eth_utils import to_checksum_address
from hypothesis import given
from hypothesis import strategies as st

from ledger.encoding import (
    ENTRY_TYPEHASH,
    ZERO_HEAD,
    code_text,
    entry_hash,
    entry_hashes_in_order,
    fold,
    keccak,
    running_hash,
)
from ledger.records import EntryKind, short_code

words = st.binary(min_size=32, max_size=32)
addresses = st.binary(min_size=20, max_size=20).map(lambda raw: to_checksum_address(raw))
kinds = st.sampled_from(list(EntryKind))


@given(st.binary(max_size=300))
def test_keccak_is_keccak256(data: bytes) -> None:
    assert keccak(data) == eth_keccak(data)


@given(st.integers(min_value=0, max_value=2**64), kinds, words, addresses, words)
def test_entry_hash_is_the_abi_encoded_entry(seq: int, kind: EntryKind, agency: bytes, actor: str,
                                             record: bytes) -> None:
    reference = eth_keccak(abi_encode(
        ["bytes32", "uint256", "uint8", "bytes32", "address", "bytes32"],
        [eth_keccak(b"Entry(uint256 seq,uint8 kind,bytes32 agencyId,address actor,bytes32 recordHash)"), seq,
         int(kind), agency, actor, record],
    ))
    assert ENTRY_TYPEHASH == eth_keccak(
        b"Entry(uint256 seq,uint8 kind,bytes32 agencyId,address actor,bytes32 recordHash)"
    )
    assert entry_hash(seq, kind, agency, actor, record) == reference
    assert entry_hash(seq, kind, agency, actor.lower(), record) == reference  # the address's case does not matter


@given(st.integers(min_value=0, max_value=2**40), words, addresses, st.lists(words, max_size=8))
def test_a_batch_s_entry_hashes_are_each_entry_s(first: int, agency: bytes, actor: str, records: list[bytes]) -> None:
    got = list(entry_hashes_in_order(first, EntryKind.CASE_EVENT, agency, actor, records))
    assert got == [entry_hash(first + i, EntryKind.CASE_EVENT, agency, actor, r) for i, r in enumerate(records)]


@given(st.binary(min_size=24, max_size=24), words, st.lists(words, max_size=5))
def test_the_fold_is_the_contract_s(head: bytes, entry: bytes, more: list[bytes]) -> None:
    assert fold(head, entry) == eth_keccak(abi_encode(["bytes24", "bytes32"], [head, entry]))[:24]
    expected = ZERO_HEAD
    for e in [entry, *more]:
        expected = eth_keccak(abi_encode(["bytes24", "bytes32"], [expected, e]))[:24]
    assert running_hash([entry, *more]) == expected


@given(st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=32))
def test_a_short_code_reads_back_as_its_text(text: str) -> None:
    assert code_text(short_code(text)) == text


@given(words)
def test_code_text_is_one_to_one(value: bytes) -> None:
    shown = code_text(value)
    if shown.startswith("0x") and len(shown) == 66 and not value.rstrip(b"\0").startswith(b"0x"):
        assert bytes.fromhex(shown[2:]) == value
    else:
        assert short_code(shown) == value


def test_codes_that_are_not_printable_text_are_shown_as_hex() -> None:
    for value in (b"\0" * 32, b"A B".ljust(32, b"\0"), "é".encode().ljust(32, b"\0"), b"AB\0C".ljust(32, b"\0")):
        assert code_text(value) == "0x" + value.hex()
