"""The durable transaction journal and its outbox to the ledger."""
