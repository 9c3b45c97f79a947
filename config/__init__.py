"""Configuration shared by the web and worker processes: settings, logging, stats, RQ policy."""
