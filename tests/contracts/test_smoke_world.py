from ledger.encoding import running_hash
from ledger.records import CaseAction


def test_world_builds_and_running_hash_matches(world):
    world.ledger.write(world.signer, world.opened("a"))
    world.ledger.write(world.signer, world.update("a", CaseAction.FULFILLED))
    entries = world.ledger.entries()
    assert [e.seq for e in entries] == list(range(world.ledger.entry_count()))
    assert running_hash(e.entry_hash for e in entries) == world.ledger.running_hash()
