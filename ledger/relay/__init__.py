"""Relayed writes: records signed by agency or receipt keys, checked (``verify``), stored durably (``store``) and sent
by a relayer key (``writer``), within what each key may make the relayer pay for (``budgets``)."""
