"""Clients of a running daemon: the camera simulator, `defectd tail` and the subscriber.

They talk to the daemon over its sockets only; the runtime never imports them.
"""
