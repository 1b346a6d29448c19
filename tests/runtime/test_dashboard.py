"""The dashboard over real HTTP on 127.0.0.1, against a store filled as the daemon leaves it (dashboard_world.py):
every section and its values, GET and HEAD only, markup shown as text, no secret, charts kept until the next close,
and nothing written to the store."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import http.client
from html.parser import HTMLParser
from pathlib import Path
from types import SimpleNamespace

import pytest

from daemonproc import STUB_SOURCES, Daemon, environment, free_port, wait_until
from macrowatch.clock import FakeClock
from macrowatch.model import Alert
from macrowatch.runtime import dashboard as dashboard_module
from macrowatch.runtime.dashboard import Dashboard
from macrowatch.store import open_reader, open_store
from stubs.fred import KEY

from .dashboard_world import FRED_KEY, NOW, NY, OPS_URL, TOKEN, TRADING_URL, bar, build, serve


class Tables(HTMLParser):
    """The page's tables by id, each a list of rows of cell texts; the badges' colours; tags seen; the text."""

    def __init__(self, page: str):
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self.colors: dict[str, str] = {}
        self.tags: set[str] = set()
        self.text: list[str] = []
        self._table: str | None = None
        self._cell: list[str] | None = None
        self.feed(page)

    def handle_starttag(self, tag, attrs):
        self.tags.add(tag)
        a = dict(attrs)
        if tag == "table":
            self._table = a.get("id")
            self.tables[self._table] = []
        elif tag == "tr" and self._table:
            self.tables[self._table].append([])
        elif tag == "td" and self._table:
            self._cell = []
        elif tag in ("li", "br") and self._cell is not None:
            self._cell.append(" ")  # one item, one line: apart in the text
        elif tag == "span" and a.get("class") == "badge":
            self._badge = a["style"].removeprefix("background:")

    def handle_endtag(self, tag):
        if tag == "td" and self._cell is not None:
            self.tables[self._table][-1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "table":
            self._table = None

    def handle_data(self, data):
        self.text.append(data)
        if self._cell is not None:
            self._cell.append(data)
        if getattr(self, "_badge", None):
            self.colors[data] = self._badge
            self._badge = None

    def rows(self, table: str) -> list[list[str]]:
        return [r for r in self.tables[table] if r]  # the header row has no <td>


def request(server, path: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        conn.request(method, path, body=b"x=1" if method in ("POST", "PUT", "PATCH") else None)
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


@pytest.fixture
def world(tmp_path: Path, monkeypatch):
    config, store_path = build(tmp_path, monkeypatch)
    server = serve(config, store_path)
    yield server, store_path
    server.stop()


def page_of(server) -> tuple[str, Tables]:
    status, headers, body = request(server, "/")
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    text = body.decode()
    return text, Tables(text)


def test_the_levels_with_their_close_its_age_value_state_colour_and_distance(world):
    text, page = page_of(world[0])
    assert '<meta http-equiv="refresh" content="30">' in text and "<script" not in text
    assert page.rows("levels-table") == [
        ["spx-3000", "S&P 500 (^GSPC)", "2,984.50", "2019-08-16, 3d ago", "3,000.00", "failed", "+0.52%"],
        ["spx-20d", "S&P 500 (^GSPC)", "2,984.50", "2019-08-16, 3d ago", "3,020.00", "below", "+1.19%"],
        ["spx-2850s", "S&P 500 (^GSPC)", "2,984.50", "2019-08-16, 3d ago", "2,850.00", "above", "-4.51%"],
        ["rut-1550", "Russell 2000 (^RUT)", "1,560.00", "2019-08-16, 3d ago", "1,550.00", "confirmed", "-0.64%"],
    ]
    assert page.colors["failed"] == "#c2410c" and page.colors["confirmed"] == "#1d4ed8"
    assert page.colors["below"] == page.colors["above"] == "#6b7280"
    assert '<a href="/levels/spx-3000.png">spx-3000</a>' in text
    assert f'store <span title="{world[1]}">mw.sqlite</span>, as of 2019-08-19 10:00:00 EDT' in text


def test_the_next_releases_with_their_consensus_and_its_source(world):
    _, page = page_of(world[0])
    assert page.rows("releases-table") == [
        ["es", "2019-09-06 08:30 EDT (in 17d)", "release calendar", "payrolls: +158.00 for 2019-08 from consensus "
                                                                    "(config)"],
        ["cpi", "2019-09-12 08:30 EDT (in 23d)", "config's dates", "none configured"],
    ]


def test_the_last_alerts_with_evidence_and_delivery_per_channel(world):
    _, page = page_of(world[0])
    rows = page.rows("alerts-table")
    assert [r[:4] for r in rows] == [
        ["2019-08-05 16:00 EDT", "rut-confirmed", "warning", "rut-1550 entered confirmed"],
        ["2019-08-05 16:00 EDT", "spx-false-breakout", "warning", "spx-3000 entered failed"],
        ["2019-08-02 08:30 EDT", "jobs-beat", "warning", "payrolls +164k vs +150k"],
        ["2019-07-31 16:00 EDT", "spx-breakout", "critical", "S&P 500 3012.00 above 3000"],
    ]
    assert rows[3][4] == "met: S&P 500 closed 3012.00, above its level 3000 (state breakout)"
    assert rows[2][4].startswith("met: payrolls +164k vs consensus +150k: beat by 14k")
    assert rows[3][5] == ("ops: 1 failed try, next 2019-07-31 16:05:00 EDT (HTTP 401 from <url>) "
                          "trading: sent 2019-07-31 16:00:02 EDT (possible repeat x1)")
    assert rows[0][5] == "trading: sent 2019-08-05 16:00:02 EDT"
    assert page.colors["critical"] == "#b91c1c"


def test_at_most_the_last_50_alerts_newest_first(tmp_path, monkeypatch):
    at = dt.datetime(2019, 6, 3, 9, 0, tzinfo=NY)
    many = [Alert("hourly", at + dt.timedelta(hours=i), "info", {}, f"number {i}", {}, f"hourly||{i}", ("trading",))
            for i in range(60)]
    config, store_path = build(tmp_path, monkeypatch, extra=many)
    server = serve(config, store_path)
    try:
        _, page = page_of(server)
    finally:
        server.stop()
    rows = page.rows("alerts-table")
    assert len(rows) == 50 and rows[0][1] == "rut-confirmed"
    assert [r[3] for r in rows[4:]] == [f"number {i}" for i in range(59, 13, -1)]


def test_sources_outbox_and_leader(world):
    text, page = page_of(world[0])
    assert page.rows("sources-table") == [
        ["fred", "failing for 29m (since 2019-08-19 09:31 EDT): HTTP 500 from FRED for api_key=***"],
        ["prices", "ok, last success 40s ago"],
    ]
    assert "daemon: pid 4242, started 2019-08-16 10:00 EDT, running, last heartbeat 12s ago" in text
    assert "1 delivery pending; possible repeats: 1" in text
    assert "spx-breakout||close:2019-07-31 to trading: 1" in text
    assert "SQLite store: one instance, which holds the store's lock (no lease)" in text


def test_the_leader_on_postgresql(postgres_url, tmp_path, monkeypatch):
    config, _ = build(tmp_path, monkeypatch)
    with open_store(postgres_url) as store:
        token = store.acquire_lease("db-host-1:4242", 10)
    config = dataclasses.replace(config, store=postgres_url)
    server = serve(config, postgres_url)
    try:
        text, page = page_of(server)
    finally:
        server.stop()
    assert "db-host-1:4242 since" in text and f"(token {token})" in text and "expires in" in text
    assert "no evaluations yet" in text and page.tables.keys() == {"releases-table"}


def test_the_page_forbids_scripts_and_outside_resources(world):
    _, headers, _ = request(world[0], "/")
    assert headers["Content-Security-Policy"].startswith("default-src 'none'; style-src 'unsafe-inline'")
    assert headers["X-Content-Type-Options"] == "nosniff" and headers["Cache-Control"] == "no-store"


def test_head_is_get_without_the_body(world):
    server, _ = world
    _, got, body = request(server, "/")
    status, headers, empty = request(server, "/", "HEAD")
    assert (status, empty) == (200, b"") and headers["Content-Length"] == got["Content-Length"] == str(len(body))


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
@pytest.mark.parametrize("path", ["/", "/levels/spx-3000.png", "/healthz", "/metrics"])
def test_every_method_but_get_and_head_is_refused(world, method, path):
    status, headers, body = request(world[0], path, method)
    assert status == 405 and headers["Allow"] == "GET, HEAD"
    assert body == f"method {method} not allowed: GET, HEAD only\n".encode()


def test_nothing_is_written_to_the_store(world):
    server, store_path = world
    before = hashlib.sha256(store_path.read_bytes()).hexdigest()
    for method, path in [("GET", "/"), ("HEAD", "/"), ("GET", "/levels/spx-20d.png"), ("POST", "/"),
                         ("DELETE", "/levels/spx-20d.png")]:
        request(server, path, method)
    assert hashlib.sha256(store_path.read_bytes()).hexdigest() == before
    assert sorted(p.name for p in store_path.parent.iterdir() if p.name.startswith("mw.sqlite")) == ["mw.sqlite"]


MARKUP_RULE = "<script>alert('rule')</script>"
MARKUP_MESSAGE = '<img src=x onerror="alert(1)"> & <b>bold</b>'


def test_markup_in_a_rule_name_message_or_label_is_shown_as_text(tmp_path, monkeypatch):
    at = dt.datetime(2019, 8, 16, 16, 0, tzinfo=NY)
    hostile = Alert(MARKUP_RULE, at, "<i>critical</i>", {"desk": "<u>us</u>"}, MARKUP_MESSAGE,
                    {"<level>": {"holds": True, "state": "<s>x</s>"}}, "hostile||close", ("trading",))
    config, store_path = build(tmp_path, monkeypatch, extra=[hostile])
    server = serve(config, store_path)
    try:
        text, page = page_of(server)
    finally:
        server.stop()
    assert page.tags.isdisjoint({"script", "img", "b", "i", "u", "s", "level"})
    assert "&lt;script&gt;alert(&#x27;rule&#x27;)&lt;/script&gt;" in text
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text
    first = page.rows("alerts-table")[0]
    assert first[1:4] == [f"{MARKUP_RULE} desk=<u>us</u>", "<i>critical</i>", MARKUP_MESSAGE]


def test_no_secret_on_any_page(tmp_path, monkeypatch):
    at = dt.datetime(2019, 8, 16, 16, 0, tzinfo=NY)
    leaky = Alert("leaky", at, "info", {}, f"posted to {TRADING_URL}", {}, "leaky||close", ("trading",))
    config, store_path = build(tmp_path, monkeypatch, extra=[leaky])
    server = serve(config, store_path)
    try:
        pages = [request(server, p)[2] for p in ("/", "/levels/spx-3000.png", "/nothing", "/healthz")]
    finally:
        server.stop()
    rows = Tables(pages[0].decode()).rows("alerts-table")
    assert rows[0][3] == "posted to ***"  # the channels by id only
    assert rows[0][5].startswith("trading: sent") and rows[-1][5].startswith("ops: 1 failed try")
    secrets = [TOKEN, TRADING_URL, FRED_KEY, OPS_URL, "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw", "987654321"]
    for body in pages:
        assert not [s for s in secrets if s.encode() in body]


def test_a_level_chart_is_a_png_kept_until_the_next_close(world, monkeypatch):
    server, store_path = world
    drawn = []
    real = dashboard_module.draw
    monkeypatch.setattr(dashboard_module, "draw", lambda *a, **k: drawn.append(a[1][0].id) or real(*a, **k))
    first = request(server, "/levels/spx-3000.png")
    again = request(server, "/levels/spx-3000.png")
    assert first[0] == 200 and first[1]["Content-Type"] == "image/png" and first[2].startswith(b"\x89PNG\r\n\x1a\n")
    assert again[2] == first[2] and drawn == ["spx-3000"]
    with open_store(store_path) as store:  # the next close
        store.put_bars("spx", [bar(dt.date(2019, 8, 19), 3030.0)])
    after = request(server, "/levels/spx-3000.png")
    assert after[0] == 200 and after[2] != first[2] and drawn == ["spx-3000", "spx-3000"]
    assert request(server, "/levels/rut-1550.png")[0] == 200 and drawn[-1] == "rut-1550"


def test_a_chart_is_drawn_again_when_a_reload_renames_its_instrument(tmp_path, monkeypatch):
    config, store_path = build(tmp_path, monkeypatch)
    current, titles = [config], []
    monkeypatch.setattr(dashboard_module, "draw", lambda *a, name, **k: titles.append(name) or SimpleNamespace(png=b""))
    dashboard = Dashboard(lambda: current[0], lambda: open_reader(store_path), FakeClock(NOW), str)
    dashboard.chart("spx-3000")
    dashboard.chart("spx-3000")  # kept
    renamed = dataclasses.replace(config.instruments["spx"], name="S&P")
    current[0] = dataclasses.replace(config, instruments={**config.instruments, "spx": renamed})  # a reload
    dashboard.chart("spx-3000")
    assert titles == ["S&P 500: spx-3000", "S&P: spx-3000"]


@pytest.mark.parametrize("path", ["/levels/unknown.png", "/levels/spx-3000.svg", "/levels/..%2Fmw.png", "/admin",
                                  "/levels/"])
def test_unknown_pages_are_404(world, path):
    status, _, body = request(world[0], path)
    assert status == 404 and body == b"not found: try /, /healthz or /metrics\n"


def test_an_empty_store_says_so(tmp_path, monkeypatch):
    config, _ = build(tmp_path, monkeypatch)
    empty = tmp_path / "empty.sqlite"
    open_store(empty).close()
    server = serve(config, empty)
    try:
        text, page = page_of(server)
        chart = request(server, "/levels/spx-3000.png")
    finally:
        server.stop()
    assert "no evaluations yet" in text and "no alerts yet" in text and "no heartbeat recorded" in text
    assert "0 deliveries pending; possible repeats: 0" in text
    assert chart[0] == 404 and chart[2] == b"no bars stored for this level's instrument yet\n"


def test_an_unreadable_store_is_503_with_the_reason(tmp_path, monkeypatch):
    config, _ = build(tmp_path, monkeypatch)
    server = serve(config, tmp_path / "gone.sqlite")
    try:
        status, _, body = request(server, "/")
    finally:
        server.stop()
    assert status == 503 and body.startswith(b"cannot read the store: no store at")


RUN_CONFIG = """\
store: state/mw.sqlite
health: {{listen: "127.0.0.1:{port}"}}
""" + STUB_SOURCES + """\
levels:
  spx-100: {{instrument: spx, price: 100}}
channels:
  trading: ${{MW_TEST_TRADING}}
rules:
  - {{name: spx-breakout, when: {{level: spx-100, entered: breakout}}, notify: [trading]}}
"""


@pytest.mark.slow
def test_macrowatch_run_serves_it_on_the_health_address(tmp_path, yahoo_stub, fred_stub):
    days = [dt.date(2019, 7, d) for d in (22, 23, 24, 25, 26, 29, 30, 31)] + [dt.date(2019, 8, 1)]
    yahoo_stub.add_daily("^GSPC", [(d, c, c + 1, c - 1, c, 1e9) for d, c in zip(days, range(95, 104), strict=True)])
    fred_stub.add_series("PAYEMS", [("2019-06-01", "2019-07-05", 151200)])
    port, hook = free_port(), "json://127.0.0.1:9/hook?token=RunT0kenSecret"
    path = tmp_path / "mw.yaml"
    path.write_text(RUN_CONFIG.format(port=port, fred=fred_stub.base_url, yahoo=yahoo_stub.url))
    daemon = Daemon(path, environment(tmp_path, MW_TEST_FRED_KEY=KEY, MW_TEST_TRADING=hook), tmp_path / "run.log",
                    now=dt.datetime(2019, 8, 1, 18, 0, tzinfo=NY))
    server = type("At", (), {"port": port})
    try:
        daemon.wait_for_line("warmed up")
        wait_until(lambda: "spx-100" in request(server, "/")[2].decode(), what="the levels on the dashboard")
        _, page = page_of(server)
        chart = request(server, "/levels/spx-100.png")
        refused = request(server, "/", "POST")
    finally:
        assert daemon.stop() == 0
        daemon.close()
    assert page.rows("levels-table")[0][:3] == ["spx-100", "S&P 500 (^GSPC)", "103.00"]
    assert chart[0] == 200 and chart[2].startswith(b"\x89PNG")
    assert refused[0] == 405
    assert "RunT0kenSecret" not in "".join(page.text) and KEY not in "".join(page.text)
