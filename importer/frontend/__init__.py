"""The front end that serves a destination volume to hosts while its import copies it.

Modules imported by nbdkit's embedded Python (runtime, locks, sides, plugin) use the
standard library and Debian's ``nbd`` only; server.py is Ferry's side.
"""
