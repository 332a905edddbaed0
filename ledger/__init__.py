"""The reference central ledger: the other end of every terminal's sync."""
