"""Device drivers: small adapters between hardware and typed events.

A driver never imports ``gateway``; it yields events from ``drivers.events``
and raises errors from ``drivers.errors``. Drivers are found by name through
the ``posgw.drivers`` entry-point group (see ``drivers.registry``).
"""
