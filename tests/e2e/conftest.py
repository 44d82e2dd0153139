"""Browser fixtures shared by the end-to-end tests."""

from tests.e2e.test_lab_monitor import browser_page  # noqa: F401  (a fixture)
