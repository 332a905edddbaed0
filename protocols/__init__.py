"""Sans-I/O codecs and domain values shared by every layer of posgw.

Nothing here touches a socket, a file, a clock or an event loop: bytes and
values in, typed values out. Everything else in the project imports from here;
this package imports nothing of the project.
"""
