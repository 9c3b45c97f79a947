"""Fault-injection suite (issue 6): real worker, web and Redis processes, killed and broken on purpose."""
