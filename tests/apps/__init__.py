"""Handlers the tests run, in real worker processes and in-process."""
