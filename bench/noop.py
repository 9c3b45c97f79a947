"""An RQ job that does nothing (the baseline for job throughput); imports nothing."""


def noop() -> None:
    """Nothing."""
