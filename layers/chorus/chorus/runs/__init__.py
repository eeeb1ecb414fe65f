"""Run lifecycle: the event log, the tailer, the driver, the executor."""
