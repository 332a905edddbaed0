"""The local HTTP/WebSocket API for the POS application on the same terminal."""
