"""Developer tools around the daemon: the demo, the loopback harness, benchmarks.

They start a real daemon and drive it with the clients; the runtime never imports them.
"""
