"""An upgrade never crashes an existing install (issue [11]): a saved engine state this macrowatch does not read
(an older or a newer format, or one garbled) is not loaded; the daemon rebuilds the engine by replaying the
store's history, and says so in a warning.

In-process, under a fake clock, with the real clients against the stubs (the world of test_history.py): the
daemon watches from session START, fires the new all-time high at START + 2 and a release every session. Then
its saved engine state is replaced by one it cannot read and a new daemon starts on the store: no crash, the
levels are those `macrowatch replay` gives over the same data, no alert is sent again, and the next real event
fires once. `macrowatch status` on such a store says the state is unreadable instead of crashing.
"""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from macrowatch.commands import status
from macrowatch.engine.evaluator import Engine
from macrowatch.model import Bar, Vintage
from macrowatch.runtime import history as replay
from macrowatch.runtime.history import History, macro_prints

from .test_history import START, Setup, close_of, yf_cache  # noqa: F401 - yf_cache: the fixture


def older(data: dict) -> dict:
    return {**data, "version": 0}   # the format before this one (the same fields under another version)


def newer(data: dict) -> dict:
    return {**data, "version": 2, "levels": {"spx-ath": {"kind": "some future shape"}}}


def garbled(data: dict) -> dict:
    return {**data, "bar_index": "many", "levels": [1, 2], "sessions": None}


def not_a_mapping(_data: dict) -> list:
    return ["engine", "state"]


@pytest.fixture
def setup(tmp_path, monkeypatch, yf_cache):  # noqa: F811 - the fixture imported above
    s = Setup(tmp_path, monkeypatch, yf_cache)
    yield s
    s.stop()


def replayed_engine(s: Setup, config, until: dt.datetime) -> Engine:
    """The engine `macrowatch replay` builds over the whole data up to `until`."""
    bars = {iid: [Bar(d, at, close_of(i), close_of(i) + 0.5, close_of(i) - 0.5, close_of(i))
                  for i, (d, at) in enumerate(s.days) if at <= until] for iid in config.instruments}
    vintages = [Vintage(d, d, 1000.0 + i) for i, (d, _at) in enumerate(s.days)]
    engine = Engine(config)
    replay.run(engine, History(bars, [p for p in macro_prints(config, config.macro["gauge"], vintages, None)
                                      if p.at <= until]))
    return engine


def write_raw_state(s: Setup, text: str) -> None:
    """A state row whose text is not JSON at all (a torn write, a hand edit)."""
    with s.store._db.transaction() as tx:
        tx.execute("UPDATE state SET data = ? WHERE name = ?", (text, "engine"))


@pytest.mark.parametrize("spoil", [older, newer, garbled, not_a_mapping, "not json {"],
                         ids=["older", "newer", "garbled", "not-a-mapping", "not-json"])
def test_an_unreadable_engine_state_is_rebuilt_from_the_store(setup, spoil, caplog):
    s = setup
    d = s.daemon()
    d.start(s.clock.now())
    for i in (START, START + 1, START + 2):
        s.session(d, i)
    assert [m for r, m in s.news() if r == "spx-high"] == ["S&P 125.00 > 120.00"]
    before, sent = d.engine.to_data(), len(s.trading.requests)
    assert sent == len(s.news())

    if isinstance(spoil, str):
        write_raw_state(s, spoil)
    else:
        s.store.save_state("engine", spoil(s.store.load_state("engine")))
    shown = status.collect(d.config, s.store, s.clock.now())         # `macrowatch status`: no crash
    assert shown["levels"] is None and "saved engine state" in shown["engine_error"]
    assert status.render(shown, d.config.timezone)

    s.fired.clear()
    with caplog.at_level(logging.WARNING, logger="macrowatch.app"):
        d2 = s.daemon()                                               # an upgraded daemon on the same store
        d2.start(s.clock.now())
    assert any("rebuilt from the store's history" in r.getMessage() for r in caplog.records), caplog.text
    assert s.news() == []                                             # nothing old again
    assert len(s.trading.requests) == sent
    assert d2.engine.to_data() == before
    replayed = replayed_engine(s, d2.config, s.clock.now())
    assert {lid: m.to_data() for lid, m in d2.engine.machines.items()} == \
        {lid: m.to_data() for lid, m in replayed.machines.items()}
    assert s.store.load_state("engine") == before                     # saved again, in this version's format

    s.session(d2, START + 3)                                          # the next release fires, once
    assert s.news() == [("gauge", "gauge 1053")]
    assert len(s.trading.requests) == sent + 1
    d3 = s.daemon()                                                   # and a restart loads the state saved
    d3.start(s.clock.now())
    assert s.news() == [("gauge", "gauge 1053")]
    assert d3.engine.to_data() == d2.engine.to_data()


def test_a_state_migration_is_applied_on_load(setup, monkeypatch):
    """The hook for the next format: a migration from version N rewrites a saved state of version N."""
    from macrowatch.engine import evaluator

    s = setup
    d = s.daemon()
    d.start(s.clock.now())
    s.session(d, START)
    before = d.engine.to_data()
    monkeypatch.setitem(evaluator.MIGRATIONS, 0, lambda data: {**data, "version": 1, "bar_index": data["bars"]})
    old = {k: v for k, v in before.items() if k != "bar_index"} | {"version": 0, "bars": before["bar_index"]}
    engine = Engine(d.config)
    engine.load(old)
    assert engine.to_data() == before
