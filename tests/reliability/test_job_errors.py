"""A failed job is logged as one line: APScheduler hands its listeners the traceback as a string.

`scheduler._on_event` used to pass that string as exc_info's traceback; the formatter crashed on it, logging
printed "--- Logging error ---" on stderr and the "job X failed" line itself was lost.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from apscheduler.events import EVENT_JOB_ERROR

from macrowatch.runtime import logs
from macrowatch.runtime.scheduler import Runner

TRACE = ('Traceback (most recent call last):\n'
         '  File "/opt/x/apscheduler/executors/base.py", line 131, in run_job\n'
         '    retval = job.func(*job.args, **job.kwargs)\n'
         '  File "/opt/x/macrowatch/app.py", line 274, in check_closes\n'
         '    self.refresh_prices(now, 10, missing)\n')


@contextmanager
def daemon_logs(fmt: str = "kv") -> Iterator[io.StringIO]:
    """The root logger with the daemon's handler (logs.setup) alone, as in `macrowatch run`: pytest's own
    handlers, which format with logging's standard Formatter, are taken off meanwhile."""
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    for handler in handlers:
        root.removeHandler(handler)
    out = io.StringIO()
    try:
        logs.setup("INFO", out, fmt, timestamps=False)
        yield out
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        for handler in handlers:
            root.addHandler(handler)
        root.setLevel(level)


@pytest.mark.parametrize("fmt", ["kv", "json"])
def test_a_string_traceback_is_one_line_with_the_message(fmt, capsys):
    exc = RuntimeError("database or disk is full")
    with daemon_logs(fmt) as out:
        logging.getLogger("macrowatch.test").error("job %s failed: %s", "closes", exc,
                                                   exc_info=(RuntimeError, exc, TRACE))
    lines = out.getvalue().splitlines()
    assert len(lines) == 1, out.getvalue()
    assert "Logging error" not in capsys.readouterr().err
    if fmt == "json":
        event = json.loads(lines[0])
        assert event["msg"] == "job closes failed: database or disk is full"
        assert event["exc"] == "RuntimeError('database or disk is full')"
        assert event["trace"] == "base.py:131 run_job > app.py:274 check_closes"
    else:
        assert 'msg="job closes failed: database or disk is full"' in lines[0]
        assert 'trace="base.py:131 run_job > app.py:274 check_closes"' in lines[0]


def test_a_string_that_is_not_a_python_traceback_is_kept_on_one_line():
    exc = ValueError("x")
    with daemon_logs() as out:
        logging.getLogger("macrowatch.test").error("failed", exc_info=(ValueError, exc, "line one\n  line two\n"))
    assert out.getvalue().splitlines() == ['level=error logger=macrowatch.test msg="failed" '
                                           'exc=ValueError(\'x\') trace="line one | line two"']


class _Daemon:
    """What a Runner needs of a daemon to run one job that fails."""

    def __init__(self):
        self.stopping = threading.Event()
        self.config = type("C", (), {"poll_intraday": type("P", (), {"as_timedelta": lambda s: dt.timedelta(0)})()})()


def failing_job() -> None:
    raise OSError("database or disk is full")


def test_a_failing_job_on_the_real_scheduler_logs_one_line_and_no_logging_error(capsys):
    runner = Runner(_Daemon(), intraday_every=0)
    done = threading.Event()
    runner.scheduler.add_listener(lambda _event: done.set(), EVENT_JOB_ERROR)  # after the Runner's listener
    with daemon_logs() as out:
        runner.scheduler.start()
        try:
            runner.scheduler.add_job(failing_job, id="closes")
            assert done.wait(10)
        finally:
            runner.scheduler.shutdown()
    assert "Logging error" not in capsys.readouterr().err
    ours = [line for line in out.getvalue().splitlines() if "logger=macrowatch.scheduler" in line]
    assert len(ours) == 1, out.getvalue()
    assert 'msg="job closes failed: OSError: database or disk is full"' in ours[0]
    assert "test_job_errors.py:" in ours[0] and "failing_job" in ours[0]   # the trace, from the real traceback
    assert runner.errors == 1
