"""Fault-injection suite (the `faults` marker): real worker, web and Redis processes, killed and broken on purpose."""
