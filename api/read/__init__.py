"""SQL of the read API: each module reads the index (SQLite or PostgreSQL) for one resource, as ``api.routes`` is
split, and returns ``api.schemas`` response models (or rows and JSON the routes serve as they are). ``_common`` holds
what they share: bytes and codes as the API shows them, a read snapshot, the one-statement reads and an entry's proof;
``state`` where the index stands, which every answer depends on.

Keyset pagination throughout (``WHERE key > :after ORDER BY key LIMIT n + 1``), so a page costs the same wherever it
is in the log. Codes are compared and ordered in code-point order on both databases (``COLLATE "C"`` on PostgreSQL,
whose default collation may ignore punctuation), so pages and lists come out alike on either. Rows are read by column
name, never by position.

The hot paths (a case lookup, ``cases.CASE_SQL``; where the index stands, ``state.STATE_SQL``, which every cached
answer needs) are one statement each, run in autocommit mode (``api.deps.IndexReader``; ``_common.single_read``): one
statement sees one state of the index by itself, so they need no transaction, and cost one round trip to the
database. Their select lists are built from ``(name, expression)`` columns, so their rows (the driver's tuples) are
read by name too (``_common.named``). A case's answer is JSON built straight from the rows (``cases.case_of``), byte
for byte what ``cases.case_view`` and its response model give (``tests/api/test_cache.py`` compares them). Computed
figures (metrics, scorecards) are kept by ``figures.FiguresCache``, keyed by what was asked and what the index holds.

A record written in a Merkle-anchored batch is an entry row like any other (``entries.batch_seq`` and
``batch_index`` say where it is in its batch); its Merkle proof is not in the index but rebuilt from the batch file
(``api.batches``): every function that shows such a record's proof takes a ``api.batches.BatchProofs`` for it. A
batch whose file is missing or cannot match its anchor is withheld (``batches.withheld``): its row is there, its
entries are not; where the index stands counts the withheld batches too (``state.IndexState.withheld``), since a file
published later changes what the index holds without moving the entry count. A batched case event of a receipt case
is shown with why it does not apply to its case (``_common.not_applied_reason``).
"""
