"""The SQL index of the chain: a SQLite file by default, PostgreSQL by URL. Droppable and rebuildable from the chain."""
