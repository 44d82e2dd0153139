"""Launcher: what runs (command builders) and where it runs (targets)."""
