"""API keys and secrets from the environment never reach the database file or the logs, even
when an exchange quotes them back in its error messages."""

from __future__ import annotations

import logging
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest

from quantum_trading.domain import Side
from quantum_trading.execution.errors import ExchangeUnavailable, InvalidOrder
from quantum_trading.execution.order_manager import OrderManager
from quantum_trading.execution.paper import PaperExchange
from quantum_trading.live.reconcile import ReconcileError, reconcile
from quantum_trading.live.redact import RedactingFilter, SecretRedactor
from quantum_trading.live.store import TradingStore

from ._helpers import FakeExchange, market, run
from ._trader_helpers import WAVES, paper_trader, real_bars

KEY = "qtKEY-7f3a9c2e5b1d4f60a8e2"
SECRET = "qtSECRET-0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a"


class LeakyExchange(FakeExchange):
    """Quotes the credentials in its errors, as a careless adapter or a proxy might."""

    def __init__(self) -> None:
        super().__init__()
        self.leaks = 0
        self.down = False

    def _leak(self, what: str) -> ExchangeUnavailable:
        self.leaks += 1
        return ExchangeUnavailable(f"{what}: 502 from https://fapi.example/v1/order?"
                                   f"apiKey={KEY}&secret={SECRET}&signature=abc")

    async def fetch_order(self, symbol, *, client_order_id):  # type: ignore[override]
        if self.leaks == 0:
            raise self._leak("fetch_order")
        return await super().fetch_order(symbol, client_order_id=client_order_id)

    async def open_orders(self, symbol=None):  # type: ignore[override]
        if self.down:
            raise self._leak("open_orders")
        return await super().open_orders(symbol)


def _trading_session(db: Path) -> TradingStore:
    """A short run: orders (one rejected with the key in the reason), a reconcile whose
    queries fail with the credentials in the message, a failed start, state and alerts."""
    store = TradingStore.open(f"sqlite:///{db}", exchange="leaky")
    ex = LeakyExchange()
    store.start_run(mode="live", note=f"started with key {KEY}")
    om = OrderManager(ex, clock=ex.clock)
    ex.reject_next(f"invalid signature for apiKey={KEY}")
    run(om.submit(market(Side.BUY, 1.0, "rej-1"), tag=f"tag-{KEY}"))
    ex.fail_next("create_order", after=True)
    run(om.submit(market(Side.BUY, 1.0, "lost-1")))  # filled: found by fetch_order
    store.drain_order_manager(om)
    assert "apiKey=" in om.get("rej-1").reason and KEY in om.get("rej-1").reason
    report = run(reconcile(store, ex))  # the lost order's query leaks the credentials
    assert not report.ok and "***" in report.unresolved[0]
    assert KEY not in report.unresolved[0] and SECRET not in report.unresolved[0]
    report = run(reconcile(store, ex))
    assert report.ok
    ex.down = True
    with pytest.raises(ReconcileError) as info:
        run(reconcile(store, ex))
    assert KEY not in str(info.value) and SECRET not in str(info.value)
    store.record_alert("test", f"secret was {SECRET}", level="error")
    store.set_state("note", {"key": KEY})
    store.end_run()
    return store


def test_secrets_never_reach_the_database_or_the_logs(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch,
                                                      caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    db = tmp_path / "q.sqlite"
    log_file = tmp_path / "trader.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.setLevel(logging.DEBUG)
    handler.addFilter(RedactingFilter())  # what the trader installs on its log handlers
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with caplog.at_level(logging.DEBUG):
            store = _trading_session(db)
    finally:
        root.removeHandler(handler)
        handler.close()
    store.engine.dispose()

    files = sorted(tmp_path.glob("q.sqlite*"))
    assert files and sum(f.stat().st_size for f in files) > 0
    for f in files:
        data = f.read_bytes()
        assert KEY.encode() not in data and SECRET.encode() not in data, f.name
    # the text did reach the database, masked
    store = TradingStore.open(f"sqlite:///{db}", exchange="leaky")
    assert store.get_order("rej-1").reason.count("***") == 1
    assert store.get_state("note") == {"key": "***"}

    text = log_file.read_text(encoding="utf-8")
    assert "reconcile" in text and "***" in text
    assert KEY not in text and SECRET not in text
    # this package's own log lines are clean even without the filter
    own = [r for r in caplog.records if r.name.startswith("quantum_trading.live")]
    assert own and not [r for r in own if KEY in r.getMessage() or SECRET in r.getMessage()]


def test_redactor_masks_environment_and_extra_values() -> None:
    r = SecretRedactor(["extra-value-123"], environ={"OKX_PASSPHRASE": "pass-phrase-xyz",
                                                     "HOME": "/home/trader", "MY_TOKEN": "abc"})
    assert r("pass-phrase-xyz /home/trader extra-value-123 abc") == "*** /home/trader *** abc"
    r.add("later-secret")
    assert r("x later-secret") == "x ***"
    assert r.optional(None) is None


def test_log_filter_masks_messages_arguments_and_tracebacks(tmp_path: Path) -> None:
    redactor = SecretRedactor([KEY, SECRET], environ={})
    log_file = tmp_path / "x.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")
    handler.addFilter(RedactingFilter(redactor))
    logger = logging.getLogger("test.secrets.filter")
    logger.addHandler(handler)
    try:
        logger.warning("key %s and secret %s", KEY, SECRET)
        try:
            try:
                raise ExchangeUnavailable(f"timeout; apiKey={KEY}")
            except ExchangeUnavailable as exc:
                raise RuntimeError("wrapped") from exc
        except RuntimeError:
            logger.exception("failed")
    finally:
        logger.removeHandler(handler)
        handler.close()
    text = log_file.read_text(encoding="utf-8")
    assert "key *** and secret ***" in text and "apiKey=***" in text
    assert KEY not in text and SECRET not in text


class _LeakyPaper(PaperExchange):
    """A paper exchange whose errors quote the credentials (as a careless adapter or a proxy
    might): every third create is refused, every fourth open-orders read and every fifth
    positions read time out, each error text carrying the API key and secret."""

    calls: Counter[str]

    def _leak(self, kind: type[Exception], what: str) -> Exception:
        return kind(f"{what}: 401 from https://fapi.example/fapi/v1/order?apiKey={KEY}&"
                    f"signature=abc (secret {SECRET})")

    async def create_order(self, request, **kw):  # type: ignore[override]
        self.calls = getattr(self, "calls", Counter())
        self.calls["create"] += 1
        if self.calls["create"] % 3 == 0:
            raise self._leak(InvalidOrder, "create_order")
        return await super().create_order(request, **kw)

    async def open_orders(self, symbol=None):  # type: ignore[override]
        self.calls = getattr(self, "calls", Counter())
        self.calls["open_orders"] += 1
        if self.calls["open_orders"] % 4 == 0:
            raise self._leak(ExchangeUnavailable, "open_orders")
        return await super().open_orders(symbol)

    async def positions(self):  # type: ignore[override]
        self.calls = getattr(self, "calls", Counter())
        self.calls["positions"] += 1
        if self.calls["positions"] % 5 == 0:
            raise self._leak(ExchangeUnavailable, "positions")
        return await super().positions()


def test_exchange_error_texts_are_masked_whatever_the_handler(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
        binance_futures_dir: Path) -> None:
    """Exchange errors that quote the key and secret, through the whole trader: the order
    manager's reasons, event details and DEBUG lines, the trader's alerts and warnings. A
    plain file handler at DEBUG **without** a redacting filter, pytest's capture, the
    database file and the reports (order frame, alerts, the run summary) never see them."""
    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    db = tmp_path / "t.sqlite"
    log_file = tmp_path / "plain.log"
    handler = logging.FileHandler(log_file, encoding="utf-8")  # no RedactingFilter here
    handler.setLevel(logging.DEBUG)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root, package = logging.getLogger(), logging.getLogger("quantum_trading")
    old_level = package.level
    root.addHandler(handler)
    package.setLevel(logging.DEBUG)
    try:
        with caplog.at_level(logging.DEBUG):
            store = TradingStore.open(f"sqlite:///{db}", exchange="paper")
            bars = real_bars(binance_futures_dir, "1h", 160)
            trader, paper, store = paper_trader(bars, strategy=WAVES, store=store,
                                                paper_cls=_LeakyPaper, entry_order="limit")
            summary = run(trader.run())
    finally:
        root.removeHandler(handler)
        handler.close()
        package.setLevel(old_level)
    assert paper.calls["create"] >= 9 and paper.calls["open_orders"] >= 4
    assert summary.rejected >= 3 and summary.bars == len(bars)
    # the leaks did happen and were masked
    rejected = [o for o in trader.om.orders.values() if o.state.value == "rejected"]
    assert rejected and all("apiKey=***" in o.reason for o in rejected)
    text = log_file.read_text(encoding="utf-8")
    assert "apiKey=***" in text and "DEBUG quantum_trading.execution.order_manager" in text
    captured = "\n".join(r.getMessage() for r in caplog.records)
    reports = [trader.om.order_frame().to_csv(), "\n".join(summary.alerts),
               "\n".join(a.message for a in store.alerts()),
               "\n".join(e.detail for e in trader.om.events),
               "\n".join(str(h) for o in trader.om.orders.values() for h in o.history)]
    store.engine.dispose()
    for secret in (KEY, SECRET):
        assert secret not in text and secret not in captured
        for report in reports:
            assert secret not in report
        for f in sorted(tmp_path.glob("t.sqlite*")):
            assert secret.encode() not in f.read_bytes(), f.name


def test_the_write_ahead_journal_masks_secrets(tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """Orders written ahead sit in the journal beside the database until they are settled:
    a tag quoting the credentials is masked there too, and in the row recovered from it."""
    from quantum_trading.execution.order_state import ManagedOrder

    monkeypatch.setenv("BINANCE_API_KEY", KEY)
    monkeypatch.setenv("BINANCE_API_SECRET", SECRET)
    store = TradingStore.open(f"sqlite:///{tmp_path / 'j.sqlite'}", exchange="leaky")
    request = market(Side.BUY, 1.0, "ahead-1")
    store.write_ahead([ManagedOrder(request=request, created_at=pd.Timestamp.now(tz="UTC"),
                                    tag=f"tag {KEY} {SECRET}", reason=f"why {SECRET}")])
    journal = store._journal.path
    data = journal.read_bytes()
    assert data and KEY.encode() not in data and SECRET.encode() not in data
    restarted = TradingStore.open(f"sqlite:///{tmp_path / 'j.sqlite'}", exchange="leaky")
    assert restarted.recover_write_ahead() == (1, [])
    assert restarted.get_order("ahead-1").tag.count("***") == 2
