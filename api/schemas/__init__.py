"""Response models of the public read API and request and response bodies of the write APIs (Pydantic v2): what
each field means, with examples, in the OpenAPI document. One module per resource, as ``api.routes`` and
``api.read`` are split; what they share (the base model, field types, patterns, examples) is in ``_common``.

Conventions: bytes are ``0x`` + lowercase hex; addresses are EIP-55 checksummed; times are unix seconds (UTC);
codes (agency, commitment, district, service, jurisdiction) are the ASCII text written on chain, or ``0x`` + 64 hex
digits for a bytes32 that is not printable ASCII; rates are exact decimal strings with 4 places (``"0.9500"``).

Model class names are the schema names in the OpenAPI document: keep each unique across the package.
"""
