"""One line per event, in key=value or JSON, with exceptions on the same line and secrets masked."""

from __future__ import annotations

import io
import json
import logging
import os
import sysconfig
import warnings

import pytest

import macrowatch
from macrowatch.runtime import logs

SLACK = "slack://T1A2B3C4D/B5E6F7G8H/abcDEF123ghiJKL456mno/#alerts"
TGRAM = "tgram://123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/-100987654"
API_KEY = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def out():
    """setup() onto a StringIO for the test, the root logger restored afterwards."""
    root = logging.getLogger()
    saved = (root.level, list(root.handlers))
    stream = io.StringIO()
    yield stream
    for h in [h for h in root.handlers if h not in saved[1]]:
        root.removeHandler(h)
    root.setLevel(saved[0])
    logging.captureWarnings(False)


def lines(stream: io.StringIO) -> list[str]:
    text = stream.getvalue()
    assert text.endswith("\n")
    return text[:-1].split("\n")


def kv(line: str) -> dict[str, str]:
    """A key=value line parsed back (quoted values unescaped), so tests compare values, not spelling."""
    import re
    pairs = re.findall(r'([A-Za-z0-9_.-]+)=("(?:[^"\\]|\\.)*"|[^\s"]+)(?: |$)', line)
    assert " ".join(f"{k}={v}" for k, v in pairs) == line, f"not a clean key=value line: {line!r}"
    return {k: json.loads(v) if v.startswith('"') else v for k, v in pairs}


def test_kv_line_with_fields(out):
    logs.setup("INFO", out, "kv", timestamps=False)
    logging.getLogger("macrowatch.app").info("polled %s", "prices",
                                             extra={"fields": {"source": "prices", "n": 3, "ok": True,
                                                               "note": "two words", "error": None}})
    assert lines(out) == ['level=info logger=macrowatch.app msg="polled prices" source=prices n=3 ok=true '
                          'note="two words" error=null']


def test_quotes_and_newlines_stay_on_one_line(out):
    logs.setup("INFO", out, "kv", timestamps=False)
    nasty = 'he said "no"\nthen left\r\twith a \\ and \u2028 and \x1b[31m'
    logging.getLogger("t").warning(nasty, extra={"fields": {"why": nasty, "msg": "clash"}})
    [line] = lines(out)
    parsed = kv(line)
    assert parsed["msg"] == nasty and parsed["why"] == nasty
    assert parsed["msg_"] == "clash"  # a field never overwrites the event's own keys
    assert parsed["level"] == "warning"


def test_exception_is_rendered_on_the_same_line(out):
    logs.setup("INFO", out, "kv", timestamps=False)
    log = logging.getLogger("macrowatch.scheduler")

    def inner():
        raise ValueError("bad\nvalue")

    def outer():
        try:
            inner()
        except ValueError as e:
            raise RuntimeError("job failed") from e

    try:
        outer()
    except RuntimeError:
        log.exception("job %s crashed", "close")
    [line] = lines(out)
    parsed = kv(line)
    assert parsed["level"] == "error" and parsed["msg"] == "job close crashed"
    assert parsed["exc"] == "RuntimeError('job failed') (from ValueError('bad\\nvalue'))"
    frames = parsed["trace"].split(" > ")
    assert frames[0].startswith("test_logs.py:") and frames[0].endswith("test_exception_is_rendered_on_the_same_line")
    assert frames[-1].endswith(" outer")


def test_deep_tracebacks_are_cut_to_the_innermost_frames():
    def recurse(n):
        if n == 0:
            raise KeyError("k")
        recurse(n - 1)

    try:
        recurse(20)
    except KeyError:
        import sys
        fields = logs.exception_fields(sys.exc_info())
    frames = fields["trace"].split(" > ")
    assert frames[0].startswith("(") and frames[0].endswith(" more)")
    assert len(frames) == logs.TRACE_FRAMES + 1 and frames[-1].endswith(" recurse")


def test_json_lines(out):
    logs.setup("DEBUG", out, "json", timestamps=False)
    try:
        raise OSError("disk\nfull")
    except OSError:
        logging.getLogger("macrowatch.store").debug("write \"x\"\n failed", exc_info=True,
                                                    extra={"fields": {"rows": 2, "path": "/var/lib/x"}})
    [line] = lines(out)
    event = json.loads(line)
    assert event["level"] == "debug" and event["logger"] == "macrowatch.store"
    assert event["msg"] == 'write "x"\n failed' and event["rows"] == 2 and event["path"] == "/var/lib/x"
    assert event["exc"] == "OSError('disk\\nfull')" and "test_logs.py:" in event["trace"]
    assert list(event)[:3] == ["level", "logger", "msg"]


def test_json_escapes_unicode_line_separators(out):
    logs.setup("INFO", out, "json", timestamps=False)
    logging.getLogger("t").info("a\u2028b\u2029c\x85d é")
    [line] = lines(out)
    assert len(line.splitlines()) == 1
    assert json.loads(line)["msg"] == "a\u2028b\u2029c\x85d é"


def test_timestamps_follow_journald(out, monkeypatch):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    logs.setup("INFO", out, "kv")
    logging.getLogger("t").info("under journald")
    monkeypatch.delenv("JOURNAL_STREAM")
    logs.setup("INFO", out, "kv")
    logging.getLogger("t").info("in a terminal")
    first, second = lines(out)
    assert first.startswith("level=info ")  # journald stamps the line itself
    assert second.startswith("ts=") and second.split(" ", 1)[0].endswith("Z")


def test_setup_twice_keeps_one_handler_and_the_level(out):
    logs.setup("INFO", out, "kv", timestamps=False)
    logs.setup("WARNING", out, "kv", timestamps=False)
    logging.getLogger("t").info("hidden")
    logging.getLogger("t").warning("shown")
    assert lines(out) == ['level=warning logger=t msg="shown"']


def test_format_from_the_environment(out, monkeypatch):
    monkeypatch.setenv("MACROWATCH_LOG_FORMAT", "json")
    logs.setup("INFO", out, timestamps=False)
    logging.getLogger("t").info("x")
    assert json.loads(lines(out)[0])["msg"] == "x"


@pytest.mark.parametrize("kwargs", [{"fmt": "xml"}, {"level": "LOUD"}], ids=["format", "level"])
def test_bad_settings_are_refused(out, kwargs):
    with pytest.raises(ValueError):
        logs.setup(stream=out, **kwargs)


def test_a_bad_format_call_still_makes_one_line():
    # Formatted directly: pytest's own capture handler would raise on the bad call first.
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": "%d items", "args": ("many",)})
    line = logs.LineFormatter("kv").format(record)
    assert kv(line)["msg"] == "unformattable log call: '%d items' % ('many',)"


def test_warnings_become_one_line(out):
    logs.setup("INFO", out, "kv", timestamps=False)
    warnings.warn("careful\nnow", UserWarning, stacklevel=1)
    [line] = lines(out)
    assert kv(line)["logger"] == "py.warnings" and "careful\nnow" in kv(line)["msg"]


def _library_warning(text: str) -> None:
    """A warning as pandas raises one inside yfinance: its file is in the installed libraries."""
    site = sysconfig.get_paths()["purelib"]
    warnings.warn_explicit(text, FutureWarning, os.path.join(site, "yfinance", "scrapers", "history.py"), 1)


def test_library_warnings_go_to_debug_and_ours_stay(out):
    logs.setup("INFO", out, "kv", timestamps=False)
    _library_warning("Series.__getitem__ treating keys as positions is deprecated")
    ours = os.path.join(os.path.dirname(macrowatch.__file__), "sources", "files.py")  # not runtime/
    warnings.warn_explicit("ours: still a warning", UserWarning, ours, 7)
    [line] = lines(out)  # the library's is below INFO: not shown
    assert kv(line)["level"] == "warning" and "ours: still a warning" in kv(line)["msg"]
    out.truncate(0), out.seek(0)
    logs.setup("DEBUG", out, "kv", timestamps=False)
    _library_warning("deprecated, seen at debug")
    [line] = lines(out)
    assert kv(line)["level"] == "debug" and kv(line)["logger"] == "py.warnings"
    assert "deprecated, seen at debug" in kv(line)["msg"]


def test_apscheduler_job_runs_are_quiet_at_info(out):
    logs.setup("INFO", out, "kv", timestamps=False)
    logging.getLogger("apscheduler.executors.default").info('Running job "heartbeat"')
    logging.getLogger("apscheduler.scheduler").info("Scheduler started")
    assert lines(out) == ['level=info logger=apscheduler.scheduler msg="Scheduler started"']


# ---- secrets -----------------------------------------------------------------------------------------

def test_secrets_are_masked_in_message_fields_and_exceptions(out):
    handler = logs.setup("INFO", out, "kv", timestamps=False)
    handler.addFilter(logs.SecretFilter([API_KEY, *logs.url_secrets(SLACK), *logs.url_secrets(TGRAM)]))
    log = logging.getLogger("macrowatch.notify")
    log.info("sending to %s", TGRAM, extra={"fields": {"url": SLACK, "key": API_KEY}})
    try:
        raise ConnectionError(f"POST https://api.telegram.org/bot123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/x "
                              f"failed; api_key={API_KEY}")
    except ConnectionError:
        log.exception("delivery failed")
    text = out.getvalue()
    for secret in (API_KEY, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "abcDEF123ghiJKL456mno", "T1A2B3C4D"):
        assert secret not in text
    first, second = lines(out)
    assert kv(first) == {"level": "info", "logger": "macrowatch.notify", "msg": "sending to ***",
                         "url": "***", "key": "***"}
    assert "api_key=***" in kv(second)["exc"]


def test_secrets_are_masked_in_json_too(out):
    handler = logs.setup("INFO", out, "json", timestamps=False)
    handler.addFilter(logs.SecretFilter([API_KEY]))
    logging.getLogger("t").info("key is %s", API_KEY, extra={"fields": {"k": API_KEY}})
    assert json.loads(lines(out)[0]) == {"level": "info", "logger": "t", "msg": "key is ***", "k": "***"}


def test_update_replaces_the_secrets(out):
    handler = logs.setup("INFO", out, "kv", timestamps=False)
    scrub = logs.SecretFilter(["old-secret-1"])
    handler.addFilter(scrub)
    scrub.update(["new-secret-2"])
    logging.getLogger("t").info("old-secret-1 new-secret-2")
    assert kv(lines(out)[0])["msg"] == "old-secret-1 ***"


def test_short_strings_are_not_treated_as_secrets():
    scrub = logs.SecretFilter(["", "ab", "abc"])
    assert scrub.redact("ab abc abcd") == "ab abc abcd"


def test_the_longest_secret_wins():
    url = "json://user:hunter2pass@hooks.example.com/path"
    scrub = logs.SecretFilter(logs.url_secrets(url))
    assert scrub.redact(f"to {url} as user") == "to *** as user"
    assert scrub.redact("password hunter2pass") == "password ***"


@pytest.mark.parametrize("url, secret, kept", [
    (TGRAM, "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", None),
    (SLACK, "abcDEF123ghiJKL456mno", "alerts"),
    ("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", "JHMHI8qBe7bk2ZwO5U711o3dV_js", None),
    ("json://hooks.example.com/services/hook?token=Zx81kQp0aa", "Zx81kQp0aa", "hooks.example.com"),
    ("mailtos://user:app-password@gmail.com", "app-password", "gmail.com"),
], ids=["telegram-bot-token", "slack-tokens", "discord", "query-token", "mail-password"])
def test_url_secrets(url, secret, kept):
    found = logs.url_secrets(url)
    assert url in found and secret in found
    if kept is not None:
        assert not any(kept == s for s in found)
    assert "services" not in found  # a path word of the API, not a token
