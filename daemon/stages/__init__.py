"""The daemon's stage processes, one module per stage (docs/daemon.md).

Each module has one entry point, ``run_<stage>(spec)``, that the supervisor starts in its own
process with the ``spawn`` start method. `spec` is a picklable `StageSpec`; everything else
(sockets, the slot pool, the engine, metrics) the stage opens itself.
"""
