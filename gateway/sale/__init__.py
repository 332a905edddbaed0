"""The sale: a basket and its state machine, its price, and the use cases from first line to refund."""
