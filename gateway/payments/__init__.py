"""Payments other than cash: scan-to-pay today (the bank-card terminal and the wallet follow)."""
