"""The incremental model (``ledger.audit.rebuild.Builder``): any split of a ledger's entries into pieces, each given
to ``extend`` with its batches' contents, gives the model ``rebuild`` gives of the whole — case states, voided
entries, refused corrections, running hashes, feedback contexts, dispute answers, commitments, calendars, and the
order of every one of them — including corrections, calendar and commitment versions, agency registrations and first
feedback arriving in a later piece than the entries they change."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from ledger import batches
from ledger.audit.batchfiles import DirectorySource, anchors_of, load
from ledger.audit.chainread import ChainReader
from ledger.audit.rebuild import Builder, LedgerModel, rebuild
from ledger.audit.rpc import Rpc
from ledger.batches import BatchStore, build_batch
from ledger.batches.read import BatchContent
from ledger.chain.contract import Chain
from ledger.chain.logs import DecodedEntry
from ledger.dev.node import AnvilNode
from ledger.records import CaseAction, Correction, EntryKind, short_code, text_hash
from ledger.workdays import local_day, year_of
from tests.support.batched import T0, plain_case_id
from tests.support.honest import HonestLedger, case_id, copy_entry, receipt_case_id
from tests.support.world import build_world

Ledger = tuple[list[DecodedEntry], dict[int, BatchContent]]


@pytest.fixture(scope="module")
def honest_log(honest: HonestLedger) -> Ledger:
    """The honest ledger's entries as the auditor decodes them, and its batches' checked contents."""
    rpc = Rpc(honest.url)
    try:
        entries = ChainReader(rpc, honest.ledger.address).read().entries
    finally:
        rpc.close()
    outcomes = load(anchors_of(entries), DirectorySource(honest.batch_dir))
    contents = {seq: o.content for seq, o in outcomes.items() if o.content is not None}
    assert contents and len(contents) == len(outcomes)
    return entries, contents


def same(built: LedgerModel, whole: LedgerModel) -> None:
    """Equal field by field, and every mapping and list in the same order as the whole rebuild's."""
    for f in dataclasses.fields(LedgerModel):
        a, b = getattr(built, f.name), getattr(whole, f.name)
        assert a == b, f"{f.name} differs"
        if isinstance(a, dict) and f.name != "contents":  # (the batches' contents as given, in any order)
            assert list(a) == list(b), f"{f.name}: another order"
    for key, record in whole.cases.items():
        assert built.cases[key].state == record.state and built.cases[key].invalid == record.invalid
    # the rows the metrics are computed from, made from the model
    for rows in ("case_rows", "event_rows", "commitment_rows", "rating_rows", "dispute_rows"):
        assert getattr(built, rows) == getattr(whole, rows), rows


def in_pieces(entries: list[DecodedEntry], contents: dict[int, BatchContent], cuts: list[int]) -> LedgerModel:
    """The model built piece by piece, each piece's batches given with it."""
    builder = Builder()
    bounds = [0, *sorted(cuts), len(entries)]
    for start, end in zip(bounds, bounds[1:]):
        piece = entries[start:end]
        builder.extend(piece, {e.seq: contents[e.seq] for e in piece if e.seq in contents})
    return builder.model()


def test_every_telling_cut_of_the_honest_ledger(honest_log: Ledger) -> None:
    """Two pieces, cut before (and after) each entry that is not a plain case event — so that each correction,
    commitment version, the retirement, each calendar, receipt, rating, dispute and batch arrives in the second piece
    in one of them, and right after it in another — and every 50th entry besides."""
    entries, contents = honest_log
    whole = rebuild(entries, contents)
    assert whole.voided and whole.refused_corrections == [] and whole.answers and whole.anchors
    telling = [i for i, e in enumerate(entries) if e.kind != EntryKind.CASE_EVENT]
    cuts = sorted({*telling, *(i + 1 for i in telling), *range(0, len(entries) + 1, 50)})
    assert len(telling) > 40, len(telling)
    for cut in cuts:
        same(in_pieces(entries, contents, [cut]), whole)


def test_random_splits_into_many_pieces(honest_log: Ledger) -> None:
    entries, contents = honest_log
    whole = rebuild(entries, contents)
    rng = random.Random(11)
    for _ in range(40):
        cuts = rng.sample(range(1, len(entries)), rng.randint(2, 30))
        same(in_pieces(entries, contents, cuts), whole)
    # one entry at a time
    same(in_pieces(entries, contents, list(range(1, len(entries)))), whole)


def _first(entries: list[DecodedEntry], kind: EntryKind, **record: Any) -> DecodedEntry:
    return next(e for e in entries if e.kind == kind and all(e.record.get(k) == v for k, v in record.items()))


def later_changes(entries: list[DecodedEntry], honest: HonestLedger, model: LedgerModel) -> list[DecodedEntry]:
    """Entries after the honest ledger's last that change what came before them: a correction voiding an old case
    event (a fulfilment) and one voiding a commitment version, a refused correction, a new calendar version for the
    years the licensing bureau's working-day case spans, a new commitment version, a retirement, the first receipt,
    rating and dispute of a case that had none, a late registration of an agency whose case came first, and a case
    event of that agency."""
    seq = model.count
    base = entries[-1]
    made: list[DecodedEntry] = []

    def add(like: DecodedEntry, **changes: Any) -> None:
        nonlocal seq
        made.append(copy_entry(like, seq=seq, block_number=base.block_number + 1 + len(made),
                               block_time=(base.block_time or 0) + 60 * (1 + len(made)), **changes))
        seq += 1

    roads = short_code("DEMO-ROADS")
    correction = _first(entries, EntryKind.CORRECTION)
    fulfilled = model.by_seq[honest.seqs["fulfilled again"]]
    add(correction, record={"target_seq": fulfilled.seq})  # the case "corrected" is no longer fulfilled
    water_v2 = model.by_seq[honest.seqs["water v2"]]
    add(correction, agency_id=water_v2.agency_id, actor=water_v2.actor, record={"target_seq": water_v2.seq})
    add(correction, record={"target_seq": fulfilled.seq})  # already voided: refused
    # a new version of the calendar the licensing bureau's working-day case is counted by: the ten days after it
    # opened are holidays, so its due time moves
    licence = model.cases[("DEMO-LICENSING", case_id("licence"))]
    day = local_day(licence.state.opened_at)
    jurisdiction = model.agencies["DEMO-LICENSING"].jurisdiction
    version, _, calendar = model.calendars[jurisdiction][year_of(day + 1)]
    add(calendar, version=version + 1, record={"holidays": list(range(day + 1, day + 11)), "workdays": []})
    water_v1 = _first(entries, EntryKind.COMMITMENT_PUBLISHED)
    add(water_v1, version=9, record={"deadline": 1})
    retirement = _first(entries, EntryKind.COMMITMENT_RETIRED)
    add(retirement, agency_id=water_v1.agency_id, actor=water_v1.actor,
        record={"commitment_id": water_v1.record["commitment_id"]})
    receipt = _first(entries, EntryKind.RECEIPT_ISSUED)
    rating = _first(entries, EntryKind.CASE_RATED)
    dispute = _first(entries, EntryKind.CASE_DISPUTED)
    first_of = {r.case_id: r for r in model.cases.values() if r.agency_id == "DEMO-ROADS"}
    plain = next(r for r in first_of.values() if r.state is not None and r.state.status == "fulfilled"
                 and not r.feedback)
    add(receipt, record={"case_id": plain.case_id})
    add(rating, record={"case_id": plain.case_id})
    add(dispute, record={"case_id": plain.case_id, "closure": 1})
    reopen = next(e for e in plain.events if e.record["action"] == CaseAction.FULFILLED)
    add(reopen, record={"action": CaseAction.REOPENED})
    # feedback of a case with no event yet, then its Opened
    add(receipt, record={"case_id": receipt_case_id("late-opened")})
    add(_first(entries, EntryKind.CASE_EVENT, action=CaseAction.OPENED), agency_id=roads,
        record={"case_id": receipt_case_id("late-opened")})
    # a working-day commitment and case of an agency not registered yet, then its registration in the licensing
    # bureau's jurisdiction: the case's due time is counted by that jurisdiction's calendars from then on
    newcomer = short_code("DEMO-NEWCOMER")
    add(_first(entries, EntryKind.COMMITMENT_PUBLISHED, commitment_id=short_code("BIZ-LICENCE-3WD")),
        agency_id=newcomer)
    add(licence.events[0], agency_id=newcomer, record={"case_id": case_id("newcomer-case")})
    registration = model.agencies["DEMO-LICENSING"].registration
    add(registration, agency_id=newcomer, jurisdiction=registration.jurisdiction, record={"agency_id": newcomer})
    return made


def test_later_corrections_calendars_versions_and_first_feedback(honest_log: Ledger, honest: HonestLedger) -> None:
    entries, contents = honest_log
    first = rebuild(entries, contents)
    extra = later_changes(entries, honest, first)
    stream = [*entries, *extra]
    whole = rebuild(stream, contents)
    # the later entries did change earlier things
    corrected = whole.cases[("DEMO-ROADS", case_id("corrected"))]
    assert first.cases[corrected.agency_id, corrected.case_id].state.status == "fulfilled"
    assert corrected.state.status != "fulfilled" and honest.seqs["fulfilled again"] in whole.voided
    licence = whole.cases[("DEMO-LICENSING", case_id("licence"))]
    assert licence.state.due_at != first.cases[("DEMO-LICENSING", case_id("licence"))].state.due_at
    assert len(whole.refused_corrections) == 1
    assert any(row.voided_by is not None for row in whole.commitment_rows)
    # the newcomer's case: Monday to Friday before its agency's registration, the jurisdiction's holidays after it
    registered = whole.cases[("DEMO-NEWCOMER", case_id("newcomer-case"))].state.due_at
    unregistered = rebuild(stream[:-1], contents).cases[("DEMO-NEWCOMER", case_id("newcomer-case"))].state.due_at
    assert registered is not None and unregistered is not None and registered > unregistered
    for cut in range(len(entries) - 5, len(stream) + 1):
        same(in_pieces(stream, contents, [cut]), whole)
    same(in_pieces(stream, contents, list(range(len(entries), len(stream)))), whole)
    rng = random.Random(5)
    for _ in range(20):
        same(in_pieces(stream, contents, rng.sample(range(1, len(stream)), rng.randint(2, 12))), whole)


def test_out_of_order_pieces_and_late_batch_files_rebuild_all(honest_log: Ledger) -> None:
    """What the incremental rules do not cover still gives the whole rebuild's model: a piece whose entries are not
    after the earlier ones, and a batch's file given after its anchor (withheld until then)."""
    entries, contents = honest_log
    whole = rebuild(entries, contents)
    same(Builder().extend(entries[100:]).extend(entries[:100], contents).model(),
         rebuild([*entries[100:], *entries[:100]], contents))
    shuffled = list(entries)
    random.Random(3).shuffle(shuffled)
    same(Builder().extend(shuffled[:50]).extend(shuffled[50:], contents).model(), rebuild(shuffled, contents))
    anchor = min(contents)
    late = Builder().extend(entries, {s: c for s, c in contents.items() if s != anchor})
    assert anchor in late.model().unread
    same(late.extend([], {anchor: contents[anchor]}).model(), whole)


# ------------------------------------------------------------ a hostile agency against a case's opening (ffdaa88)


def test_attack_corrections_of_openeds_in_later_pieces_and_a_batch_file_given_late(tmp_path: Any) -> None:
    """On a ledger of its own: a case opened on its own, one in a published batch, one in a batch whose file comes
    late; then corrections aimed at each Opened, an Opened again of each, and a correction of a refused correction.
    Built in two pieces at every cut (the late file with the second piece), and one entry at a time: the model of the
    whole — every correction of an Opened refused, naming the case, and every case counted from its first opening."""
    node = AnvilNode().start()
    try:
        world = build_world(Chain.connect(node.url))
        ledger, signer = world.ledger, world.signer

        def opened(name: str) -> Any:
            return world.opened(name, case_id=plain_case_id(name), occurred_at=T0)

        def void(target: int) -> int:
            ledger.write(signer, Correction(target_seq=target, reason_hash=text_hash("v"), occurred_at=T0))
            return ledger.entry_count() - 1

        store = BatchStore(tmp_path)
        ledger.write(signer, opened("i-single"))
        single = ledger.entry_count() - 1
        published = batches.anchor(ledger, signer, build_batch([opened("i-batched")]), store).seq
        late_batch = build_batch([opened("i-late")])
        late = batches.anchor(ledger, signer, late_batch, BatchStore(tmp_path / "elsewhere")).seq
        refused = [void(single), void(published), void(late)]
        for name in ("i-single", "i-batched", "i-late"):
            ledger.write(signer, opened(name))
        void(refused[0])
        rpc = Rpc(node.url)
        try:
            entries = ChainReader(rpc, ledger.address).read().entries
        finally:
            rpc.close()
    finally:
        node.stop()
    given = load(anchors_of(entries), DirectorySource(tmp_path))
    early = {seq: o.content for seq, o in given.items() if o.content is not None}
    assert set(early) == {published}
    contents = {**early, late: load(anchors_of(entries), DirectorySource(tmp_path / "elsewhere"))[late].content}
    whole = rebuild(entries, contents)
    states = {key[1]: record.state for key, record in whole.cases.items()}
    for name, seq in (("i-single", single), ("i-batched", published), ("i-late", late)):
        state = states[plain_case_id(name)]
        assert state is not None and (state.opened_seq, state.opened_at, state.invalid_transitions) == (seq, T0, 1)
    assert [c.seq for c, _ in whole.refused_corrections] == refused
    assert all("which no correction can void" in why for _, why in whole.refused_corrections)
    for cut in range(1, len(entries)):
        builder = Builder().extend(entries[:cut], {s: c for s, c in early.items() if entries[cut - 1].seq >= s})
        same(builder.extend(entries[cut:], contents).model(), whole)
    builder = Builder()
    for e in entries:
        builder.extend([e], {e.seq: early[e.seq]} if e.seq in early else None)
    same(builder.extend([], {late: contents[late]}).model(), whole)
