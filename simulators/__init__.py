"""Hardware and peer simulators for the demo, the tests and CI.

Real protocol stacks, fake hardware: a scanner here is a real pseudo-terminal
that the serial driver opens like a USB-serial device.
"""
