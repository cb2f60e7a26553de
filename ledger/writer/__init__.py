"""The agency writer: a durable outbox (``outbox``) and the sender that puts its entries on chain (``sender``)."""
