"""Engine backends: one module per runtime, each implementing `engines.engine.Engine`."""
