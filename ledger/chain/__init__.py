"""Talking to the chain: the contract and its connection (``contract``), decoding its logs (``logs``), the keys that
sign for it (``keys``), a receipt case read from it (``receipt_case``) and the build of its bytecode (``build``)."""
