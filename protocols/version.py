"""posgw's version: one place, read by the package metadata (``setup.cfg``), the gateway and the ledger."""

VERSION = "0.1.0"
