"""Relayed writes: records signed by agency or receipt keys, checked, stored durably and sent by a relayer key
(``service``), within what each key may make the relayer pay for (``budgets``)."""
