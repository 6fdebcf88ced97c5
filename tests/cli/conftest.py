"""CLI tests: the wide console they need is the autouse ``wide_console`` fixture of
``tests/conftest.py``."""
