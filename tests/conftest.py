"""Session-wide test setup."""

from __future__ import annotations

import signal


def pytest_configure(config) -> None:
    # A shell starts background jobs with SIGINT ignored, and Python then installs no Ctrl-C
    # handler; the tests that interrupt a writer, a collection or the server (in process or
    # in a child, which would inherit the ignore) need the normal KeyboardInterrupt. A Python
    # handler, unlike SIG_IGN, is reset to the default in children on exec.
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
