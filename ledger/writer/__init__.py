"""The agency writer: a durable outbox (``outbox``), the planner that decides what goes into each transaction
(``planner``, pure) and the sender that puts the outbox's entries on chain (``sender``)."""
