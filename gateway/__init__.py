"""The posgw daemon: wiring, lifecycle, local API, membership, pricing, sync."""
