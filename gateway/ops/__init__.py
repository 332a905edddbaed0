"""Running the till: metrics, logs, systemd, and the operator's status and journal commands."""
