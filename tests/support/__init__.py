"""What the tests share: the process harness (``procs``), the tests' Redis and environment (``env``), and
jobs that real worker processes run (``jobs``)."""
