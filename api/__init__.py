"""The public audit API, the Open311 endpoints, the agency write API and the citizen page, over the ledger's index."""
