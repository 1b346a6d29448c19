"""One secret masker (secrets.py), one table: every kind of service and secret, against every output.

Each row puts its secrets where users put them (the environment: a channel URL, the store URL, an API key),
drives one failing delivery through the real apprise plugin (json:// and form:// to a local receiver that
answers 500 and quotes the tokens; the others through a dead proxy or to a refused mail port: never the
internet), then searches each output for each secret, as written and percent-decoded:
- a log line through logs.setup's handler with the filter `run` installs (apprise's debug lines included, and
  lines quoting each secret, as an error body or an exception might);
- the delivery error as the outbox stores it (short_error);
- `macrowatch status`, `macrowatch check --show` and `macrowatch notify-test` output;
- the /metrics text of a daemon that made the delivery.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import zoneinfo
from pathlib import Path
from urllib.parse import unquote

import pytest
from click.testing import CliRunner

from macrowatch.clock import FakeClock
from macrowatch.commands.cli import cli
from macrowatch.config import load_config
from macrowatch.model import Alert
from macrowatch.runtime import health, logs
from macrowatch.runtime.daemon import Daemon
from macrowatch.runtime.service import secrets_of
from macrowatch.store import open_store
from stubs.webhook import WebhookReceiver

NY = zoneinfo.ZoneInfo("America/New_York")
NOW = dt.datetime(2019, 7, 9, 16, 1, tzinfo=NY)
DEAD_PROXY = "http://127.0.0.1:9"  # https services go here, and are refused: never the internet
FRED_KEY = "fredsecretkey0123456789abcdef012"
BLS_KEY = "blssecretkey0123456789abcdef0123"

CONFIG = """\
store: "${MW_MASK_STORE}"
sources:
  fred: {api_key: "${MW_MASK_FRED}", url: "http://127.0.0.1:9/fred"}
  bls: {api_key: "${MW_MASK_BLS}", url: "http://127.0.0.1:9"}
instruments:
  spx: {symbol: "^GSPC", name: "S&P 500"}
levels:
  spx-100: {instrument: spx, price: 100}
channels:
  desk: ${MW_MASK_DESK}
rules:
  - {name: breakout, when: {level: spx-100, entered: breakout}, notify: [desk]}
"""


@dataclasses.dataclass(frozen=True)
class Kind:
    """A kind of service: its URL ({hook} is the local receiver's host:port) and the secrets in it."""

    url: str
    secrets: tuple[str, ...]
    store: str | None = None  # a postgresql:// store URL ({server} is the test server's user@host:port/db)


KINDS = {
    # A webhook token in lower case, a header in lower case: no mixed case or digits to give them away.
    "json": Kind("json://{hook}/hook/lowercasewebhooktokenvalue?-X-Api-Key=lowercaseheadersecret",
                 ("lowercasewebhooktokenvalue", "lowercaseheadersecret")),
    # A short path token, and a bearer header quoted as written.
    "form": Kind("form://{hook}/f/ab12cd/x?-Authorization=Bearer%20Fz81kQp0&-X-Key=Qz9r",
                 ("ab12cd", "Fz81kQp0", "Qz9r")),
    "slack": Kind("slack://T0SECRETA/B0SECRETB/slackSecretTokenC0123456789/#alerts",
                  ("T0SECRETA", "B0SECRETB", "slackSecretTokenC0123456789")),
    "tgram": Kind("tgram://123456789:AAsecretTelegramBotToken_0123456789/987654321",
                  ("AAsecretTelegramBotToken_0123456789",)),
    "discord": Kind("discord://4174216298/JHMHI8qBe7bk2ZwO5U711o3dV_js", ("JHMHI8qBe7bk2ZwO5U711o3dV_js",)),
    "mailto": Kind("mailto://user:Mail%2FPassw0rdSecret@example.com?smtp=127.0.0.1&port=9&to=ops@example.com",
                   ("Mail%2FPassw0rdSecret", "Mail/Passw0rdSecret")),
    "pover": Kind("pover://uQiRzpo4DXghDmr9QzzfQu27cmVRsG@azGDORePK8gMaC0QOYAMyEEuzJnyUi",
                  ("uQiRzpo4DXghDmr9QzzfQu27cmVRsG", "azGDORePK8gMaC0QOYAMyEEuzJnyUi")),
    "postgresql": Kind("json://{hook}/hook", ("St0reP%40ssw0rdSecret", "St0reP@ssw0rdSecret"),
                       "postgresql://{user}:St0reP%40ssw0rdSecret@{server}"),
    "postgresql-query": Kind("json://{hook}/hook", ("QueryPassw0rdSecret",),
                             "postgresql://{user}@{server}?password=QueryPassw0rdSecret"),
    "fred": Kind("json://{hook}/hook", (FRED_KEY,)),
    "bls": Kind("json://{hook}/hook", (BLS_KEY,)),
}


def _store_url(kind: Kind, request, tmp_path: Path) -> str:
    if kind.store is None:
        return str(tmp_path / "mw.sqlite")
    url = request.getfixturevalue("postgres_url")  # postgresql://USER@HOST:PORT/DB, trust authentication
    user, _, server = url.partition("://")[2].partition("@")
    return kind.store.format(user=user, server=server)


@pytest.fixture
def case(request, tmp_path, monkeypatch, webhook: WebhookReceiver):
    """(the config file, its Config, the secrets) for one kind, its receiver failing and quoting them."""
    kind = KINDS[request.param]
    webhook.reply(500, f"invalid token(s): {' '.join(kind.secrets)}".encode())
    env = {"MW_MASK_DESK": kind.url.format(hook=f"127.0.0.1:{webhook.port}"), "MW_MASK_FRED": FRED_KEY,
           "MW_MASK_BLS": BLS_KEY,
           "MW_MASK_STORE": _store_url(kind, request, tmp_path),
           "HTTPS_PROXY": DEAD_PROXY, "HTTP_PROXY": DEAD_PROXY, "NO_PROXY": "127.0.0.1,localhost"}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    path = tmp_path / "mw.yaml"
    path.write_text(CONFIG)
    config, _ = load_config(path, for_run=True)
    hidden = {s for secret in kind.secrets for s in (secret, unquote(secret))}
    if request.param == "fred":
        hidden.add(FRED_KEY)
    return path, config, hidden


def _outputs(path: Path, config, hidden: set[str]) -> dict[str, str]:
    """Every output, after one failed delivery of one alert to the channel."""
    out = io.StringIO()
    handler = logs.setup("DEBUG", out, "kv", timestamps=False)
    handler.addFilter(logs.SecretFilter(secrets_of(config)))  # as `run` does
    metrics = health.Metrics()
    store = open_store(config.store)
    try:
        daemon = Daemon(config, store, FakeClock(NOW), None, None, metrics=metrics)
        alert = Alert("breakout", NOW, "warning", {}, "S&P 500 above 100", {}, "breakout|2019-07-09", ("desk",))
        daemon.alerts.dispatcher.submit([alert], NOW)
        [outcome] = daemon.alerts.deliver(NOW)
        assert not outcome.ok, "the delivery must fail, or its error is not tested"
        [due] = store.due(NOW + dt.timedelta(days=1))
        stored = due.last_error
        # What an error body or an exception may quote: each secret, the URLs and the key.
        log = logging.getLogger("macrowatch.notify")
        for url in (*config.channels["desk"].urls, config.store):
            log.warning("send to %s failed", url)
        for secret in sorted(hidden):
            log.warning("send failed: answer %r", f"invalid token {secret}", extra={"fields": {"token": secret}})
        metrics_text = metrics.render()
    finally:
        store.close()
        logging.getLogger().removeHandler(handler)
    runner = CliRunner()
    results = {" ".join(args): runner.invoke(cli, [*args, "-c", str(path)])
               for args in (["status"], ["check", "--show"], ["notify-test", "desk", "--timeout", "2"])}
    assert results["status"].exit_code == 0, results["status"].output
    assert results["check --show"].exit_code == 0, results["check --show"].output
    assert results["notify-test desk --timeout 2"].exit_code == 1, results["notify-test desk --timeout 2"].output
    return {"log": out.getvalue(), "stored error": stored, "metrics": metrics_text,
            **{name: r.output for name, r in results.items()}}


@pytest.mark.parametrize("case", list(KINDS), indirect=True)
def test_no_secret_in_any_output(case):
    path, config, hidden = case
    outputs = _outputs(path, config, hidden)
    assert "level=warning" in outputs["log"] and "desk" in outputs["metrics"]  # not vacuous: they did run
    found = {name: [s for s in hidden if s in text] for name, text in outputs.items()}
    assert not {name: leaked for name, leaked in found.items() if leaked}, outputs
