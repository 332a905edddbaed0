"""The till's devices as the sale sees them: scans and card taps routed to the use cases."""
