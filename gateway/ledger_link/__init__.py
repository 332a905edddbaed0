"""The till's link to the central ledger: the client, sync, rules refresh, MQTT news, enrolment.

Everything else in the gateway asks :class:`~gateway.ledger_link.link.LedgerLink`
whether the ledger is reachable; nothing imports the sync worker for it.
"""
