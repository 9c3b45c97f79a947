"""Importable helpers for tests that run real worker processes."""
