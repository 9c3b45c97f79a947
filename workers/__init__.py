"""The worker process: RQ entry points (``workers.jobs``), Graph calls, scheduling and sinks."""
