"""The health endpoint over real HTTP on 127.0.0.1: /healthz, /metrics parsed back, 404, concurrency."""

from __future__ import annotations

import http.client
import logging
import re
import socket
import struct
import threading
import time

import pytest

from macrowatch.runtime.health import CONTENT_TYPE, Family, HealthServer, Metrics

_SAMPLE = re.compile(r"(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(?P<labels>.*)\})? (?P<value>\S+)\Z")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|\Z)')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def parse(text: str) -> tuple[dict[str, tuple[str, str]], dict[tuple[str, frozenset], float]]:
    """The text exposition format back into ({name: (type, help)}, {(name, labels): value}); strict."""
    assert text.endswith("\n")
    meta: dict[str, dict[str, str]] = {}
    samples: dict[tuple[str, frozenset], float] = {}
    for line in text.splitlines():
        if line.startswith("# "):
            _hash, kind, name, rest = line.split(" ", 3)
            meta.setdefault(name, {})[kind] = rest
            continue
        m = _SAMPLE.match(line)
        assert m, f"not a sample line: {line!r}"
        labels_text = m["labels"] or ""
        pairs = _LABEL.findall(labels_text)
        # Every character of the label block must be accounted for by the pairs found.
        assert "".join(f'{k}="{v}",' for k, v in pairs).rstrip(",") == labels_text, line
        labels = frozenset((k, re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e[0]], v)) for k, v in pairs)
        assert m["name"] in meta, f"sample before its HELP/TYPE: {line!r}"
        samples[(m["name"], labels)] = float(m["value"])
    return {n: (d["TYPE"], d["HELP"]) for n, d in meta.items()}, samples


def get(server: HealthServer, path: str, method: str = "GET") -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request(method, path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type", ""), resp.read().decode()
    finally:
        conn.close()


@pytest.fixture
def served():
    """A running server on an ephemeral port, with a health verdict the test can change."""
    verdict = {"ok": True, "reason": "ok"}
    server = HealthServer("127.0.0.1", 0, Metrics(), lambda: (verdict["ok"], verdict["reason"]))
    server.start()
    yield server, verdict
    server.stop()


def test_healthz_ok(served):
    server, _ = served
    assert get(server, "/healthz") == (200, "text/plain; charset=utf-8", "ok\n")


def test_healthz_unhealthy_is_503_with_the_reason(served):
    server, verdict = served
    verdict.update(ok=False, reason="source prices failing for 12m")
    status, _, body = get(server, "/healthz")
    assert (status, body) == (503, "source prices failing for 12m\n")


def test_a_check_that_raises_is_503(served):
    server, _ = served
    server._server._healthy = lambda: 1 / 0
    status, _, body = get(server, "/healthz")
    assert status == 503 and body.startswith("health check failed: ZeroDivisionError")


@pytest.mark.parametrize("path", ["/", "/metricsx", "/healthz/x", "/favicon.ico"])
def test_unknown_paths_are_404(served, path):
    assert get(served[0], path)[0] == 404


def test_head_has_no_body(served):
    assert get(served[0], "/healthz", "HEAD") == (200, "text/plain; charset=utf-8", "")


def test_metrics_parse_back_with_names_labels_values(served):
    server, _ = served
    m = server.metrics
    m.inc("macrowatch_polls_total", source="prices")
    m.inc("macrowatch_polls_total", 2, source="prices")
    m.inc("macrowatch_polls_total", source="fred")
    m.inc("macrowatch_deliveries_total", channel="trading", result="ok")
    m.set("macrowatch_data_age_seconds", 42.5, instrument="spx")
    m.set("macrowatch_data_age_seconds", 86400, series="PAYEMS")
    m.set("macrowatch_outbox_depth", 3)
    m.set("macrowatch_last_heartbeat_timestamp_seconds", 1564761600.25)
    status, ctype, body = get(server, "/metrics?debug=1")
    assert (status, ctype) == (200, CONTENT_TYPE)
    meta, samples = parse(body)
    assert meta["macrowatch_polls_total"][0] == "counter"
    assert meta["macrowatch_outbox_depth"][0] == "gauge"
    assert {"macrowatch_up", "macrowatch_source_errors_total", "macrowatch_evaluations_total",
            "macrowatch_alerts_total"} <= set(meta)
    assert samples == {
        ("macrowatch_up", frozenset()): 1.0,
        ("macrowatch_polls_total", frozenset({("source", "prices")})): 3.0,
        ("macrowatch_polls_total", frozenset({("source", "fred")})): 1.0,
        ("macrowatch_deliveries_total", frozenset({("channel", "trading"), ("result", "ok")})): 1.0,
        ("macrowatch_data_age_seconds", frozenset({("instrument", "spx")})): 42.5,
        ("macrowatch_data_age_seconds", frozenset({("series", "PAYEMS")})): 86400.0,
        ("macrowatch_outbox_depth", frozenset()): 3.0,
        ("macrowatch_last_heartbeat_timestamp_seconds", frozenset()): 1564761600.25,
    }


def test_up_follows_the_health_verdict(served):
    server, verdict = served
    verdict.update(ok=False, reason="stale")
    _, samples = parse(get(server, "/metrics")[2])
    assert samples[("macrowatch_up", frozenset())] == 0.0


def test_label_values_are_escaped():
    m = Metrics()
    nasty = 'a "quoted"\\path\nnext line'
    m.inc("macrowatch_alerts_total", rule=nasty)
    text = m.render()
    assert 'macrowatch_alerts_total{rule="a \\"quoted\\"\\\\path\\nnext line"} 1\n' in text
    _, samples = parse(text)
    assert samples[("macrowatch_alerts_total", frozenset({("rule", nasty)}))] == 1.0


def test_help_is_escaped_and_special_values_render():
    m = Metrics((Family("x_gauge", "gauge", "line one\nline two \\ end", frozenset({"k"})),))
    m.set("x_gauge", float("inf"), k="a")
    m.set("x_gauge", float("nan"), k="b")
    m.set("x_gauge", -0.5, k="c")
    assert m.render() == ('# HELP x_gauge line one\\nline two \\\\ end\n# TYPE x_gauge gauge\n'
                          'x_gauge{k="a"} +Inf\nx_gauge{k="b"} NaN\nx_gauge{k="c"} -0.5\n')


@pytest.mark.parametrize("call, error", [
    (lambda m: m.inc("macrowatch_nope_total"), KeyError),
    (lambda m: m.inc("macrowatch_polls_total", sorce="prices"), ValueError),
    (lambda m: m.inc("macrowatch_polls_total", -1, source="prices"), ValueError),
    (lambda m: m.set("macrowatch_polls_total", 5, source="prices"), ValueError),
], ids=["unknown-metric", "misspelt-label", "counter-down", "set-a-counter"])
def test_misuse_fails_loudly(call, error):
    with pytest.raises(error):
        call(Metrics())


def test_concurrent_increments_are_not_lost(served):
    server, _ = served
    m = server.metrics
    threads, per_thread = 8, 2000

    def work(i: int) -> None:
        for _ in range(per_thread):
            m.inc("macrowatch_evaluations_total", trigger="close")
            m.inc("macrowatch_alerts_total", rule=f"r{i % 2}")

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for w in workers:
        w.start()
    for _ in range(5):  # scrapes while counting must neither block nor break the format
        assert parse(get(server, "/metrics")[2])
    for w in workers:
        w.join()
    _, samples = parse(get(server, "/metrics")[2])
    assert samples[("macrowatch_evaluations_total", frozenset({("trigger", "close")}))] == threads * per_thread
    assert samples[("macrowatch_alerts_total", frozenset({("rule", "r0")}))] == threads * per_thread / 2


def test_no_line_is_logged_per_request(served, capsys):
    server, _ = served
    for path in ("/healthz", "/metrics", "/nope"):
        get(server, path)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""


def _reset(server: HealthServer, partial: bytes) -> None:
    """A client that sends `partial` and resets the connection (a scrape cut off by its timeout)."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close() sends RST
    sock.sendall(partial)
    sock.close()


def test_a_client_resetting_its_connection_is_one_debug_line_not_a_traceback(served, capsys, caplog):
    server, _ = served
    caplog.set_level(logging.DEBUG, logger="macrowatch.health")
    for partial in (b"", b"GET /metrics HTTP/1.1\r\nHost: x\r\n"):
        _reset(server, partial)
    deadline = time.monotonic() + 10  # a bound, not a timing: the server's threads log as they meet the reset
    seen: list[str] = []
    while time.monotonic() < deadline:
        seen = [r.getMessage() for r in caplog.records if r.name == "macrowatch.health"]
        err = capsys.readouterr().err
        assert "Traceback" not in err and "Exception occurred during processing" not in err, err
        if len(seen) >= 2:
            break
        time.sleep(0.05)
    assert len(seen) == 2 and all(m.startswith("health client 127.0.0.1:") and "went away" in m for m in seen)
    assert {r.levelno for r in caplog.records if r.name == "macrowatch.health"} == {logging.DEBUG}
    assert get(server, "/healthz")[0] == 200  # and it serves on


def test_stop_frees_the_port_and_start_binds_an_ephemeral_one():
    server = HealthServer("127.0.0.1", 0, Metrics())
    server.start()
    port = server.port
    assert port != 0 and server.url == f"http://127.0.0.1:{port}"
    assert get(server, "/healthz")[0] == 200
    server.stop()
    with pytest.raises(OSError):
        http.client.HTTPConnection("127.0.0.1", port, timeout=2).request("GET", "/healthz")
