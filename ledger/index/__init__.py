"""The index: the ledger's entries followed into the SQL store, resumably and through reorganisations."""
