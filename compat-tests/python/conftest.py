"""pytest hooks for the SDK suite."""

import signal


def _interrupt(signum, _frame):
    # Once: `timeout` signals both pytest and its process group.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    # SIGTERM (scripts/test.d/python-sdk.sh stopping the run, or its
    # timeout) ends the session like Ctrl-C does: fixtures are torn down, so a
    # shoald a test started is stopped rather than orphaned.
    signal.signal(signal.SIGTERM, _interrupt)


def pytest_unconfigure(config):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
