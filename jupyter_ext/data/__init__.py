"""Datastores and datasets: where data lives (a folder or an fsspec URL), immutable versions of
what a dataset names (content hashes), and what a run's nodes get (runs.datasets drives it)."""
