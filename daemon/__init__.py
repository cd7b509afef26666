"""defectd's running service: configuration, wire protocol, stages, metrics and the CLI.

Importing this package never imports torch; only the torch engine backend does, when selected.
"""
