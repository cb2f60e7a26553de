"""``ledger.batches.read``: the fast check of a batch file against its anchor accepts exactly what
``ledger.batches.rebuild`` accepts, gives the same events and record hashes, and says what is wrong in the order
hash, malformed (with the line), count, root."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from ledger.batches import build_batch, rebuild
from ledger.batches.read import BatchFileProblem, parse, read_batch, read_batch_file
from ledger.encoding import keccak
from ledger.errors import InvalidRecord
from ledger.records import CaseAction, CaseEvent, short_code, text_hash

T0 = 1_790_000_000


def sample(n: int = 40) -> list[CaseEvent]:
    out = []
    for i in range(n):
        case = keccak(b"case %d" % (i // 3))
        if i % 3 == 0:
            out.append(CaseEvent(case_id=case, action=CaseAction.OPENED, occurred_at=T0 + i,
                                 commitment_id=short_code("C-48H"), district=short_code(f"D{i % 5}"),
                                 channel=1 + i % 6, details_hash=text_hash(f"d{i}") if i % 2 else b"\0" * 32))
        else:
            action = (CaseAction.ACCEPTED, CaseAction.FULFILLED, CaseAction.DISPUTE_REJECTED)[i % 3 - 1 + (i % 7 == 0)]
            out.append(CaseEvent(case_id=case, action=action, occurred_at=2**64 - 1 if i == 5 else T0 + i,
                                 details_hash=text_hash(f"d{i}")))
    return out


def as_tuples(events: list[CaseEvent]) -> list[tuple]:
    return [(e.case_id, int(e.action), e.occurred_at, e.commitment_id, e.district, e.channel, e.details_hash)
            for e in events]


def test_the_fast_path_reads_what_rebuild_reads() -> None:
    batch = build_batch(sample())
    content = read_batch(batch.content, batch.root, batch.count, batch.file_hash)
    assert content.events == as_tuples(list(batch.events))
    assert content.record_hashes == list(batch.record_hashes)
    assert content.count == batch.count and content.root == batch.root


def _mutations(content: bytes, rng: random.Random) -> list[bytes]:
    lines = content.split(b"\n")
    out = [content[:-1], content + b"\n", content.replace(b"\n", b"\r\n"), b"", content[: len(lines[0]) + 1]]
    for _ in range(300):
        i = rng.randrange(1, len(lines) - 1)
        fields = lines[i].split(b",")
        j = rng.randrange(len(fields))
        choice = rng.randrange(10)
        value = fields[j]
        if choice == 0:
            value = b"0" + value
        elif choice == 1:
            value = value.upper()
        elif choice == 2:
            value = b"0x" + b"0" * 64
        elif choice == 3:
            value = str(rng.choice([0, 11, 255, 256, 2**64, 2**64 - 1, -1])).encode()
        elif choice == 4:
            value = value[:-1]
        elif choice == 5:
            value = b" " + value
        elif choice == 6:
            value = value.replace(b"0x", b"")
        elif choice == 7:
            value = b"\xc3\xa9"
        elif choice == 8:
            value = b"0x" + b"1f" * 32  # a non-zero word: intake fields on a later event, another case id...
        else:
            value = b"0"
        changed = [*fields[:j], value, *fields[j + 1 :]]
        if rng.random() < 0.05:
            changed.append(b"x")
        out.append(b"\n".join([*lines[:i], b",".join(changed), *lines[i + 1 :]]))
    return out


def test_the_fast_path_accepts_exactly_what_rebuild_accepts() -> None:
    """Hundreds of mutated files (numbers with leading zeros, upper-case hex, zero ids, out-of-range values, intake
    fields on the wrong action, stray bytes, missing line ends): the same verdict, and the same events."""
    rng = random.Random(7)
    batch = build_batch(sample())
    accepted = refused = 0
    for mutated in _mutations(batch.content, rng):
        try:
            theirs = rebuild(mutated)
        except InvalidRecord as exc:
            with pytest.raises(BatchFileProblem) as info:
                parse(mutated)
            assert info.value.kind == "malformed" and str(exc) in info.value.message
            refused += 1
            continue
        mine = parse(mutated)
        assert mine.events == as_tuples(list(theirs.events)) and mine.record_hashes == list(theirs.record_hashes)
        accepted += 1
    assert refused > 200 and accepted > 10


def test_problems_in_order_hash_malformed_count_root(tmp_path: Path) -> None:
    batch = build_batch(sample(10))
    root, count, file_hash = batch.root, batch.count, batch.file_hash
    with pytest.raises(BatchFileProblem) as info:
        read_batch(batch.content + b"x", root, count, file_hash)
    assert info.value.kind == "hash" and "also malformed" in info.value.message
    short = build_batch(list(batch.events[:-1]))
    with pytest.raises(BatchFileProblem) as info:
        read_batch(short.content, root, count, short.file_hash)
    assert info.value.kind == "count" and info.value.message == "the file holds 9 events, the anchor says 10: 1 missing"
    with pytest.raises(BatchFileProblem) as info:
        read_batch(batch.content, short.root, count, file_hash)
    assert info.value.kind == "root"
    bad = batch.content.replace(b"\n4,", b"\n04,", 1)
    with pytest.raises(BatchFileProblem) as info:
        read_batch(bad, root, count, keccak(bad))
    assert info.value.kind == "malformed" and info.value.line == 6 and "line 6: index must be 4" in info.value.message
    with pytest.raises(BatchFileProblem) as info:
        read_batch_file(tmp_path, root, count, file_hash)
    assert info.value.kind == "missing" and file_hash.hex() in info.value.message
    (tmp_path / f"{file_hash.hex()}.csv").write_bytes(batch.content)
    assert read_batch_file(tmp_path, root, count, file_hash).record_hashes == list(batch.record_hashes)
