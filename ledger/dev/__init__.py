"""The local development network and its demo city: never imported by the service or the auditor."""
