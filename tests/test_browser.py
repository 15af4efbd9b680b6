"""The risk report in a real browser: headless Chromium, driven over the DevTools protocol.

Chromium (Debian's ``chromium``; ``make test`` installs it via scripts/ensure-chromium) is started
with ``--remote-debugging-pipe``: DevTools messages are NUL-terminated JSON on file descriptors 3
(to the browser) and 4 (from it), so the standard library is enough. The test opens report.html,
waits for the load event, takes a screenshot, and checks that the page made no failed request and
no request outside itself, logged no console error or exception, showed every figure, and that
every number on the page (``span.num``) equals :func:`bayes_scaling.report.formats.fmt` of the value
at its path in report.json, and parses back to that value.

Without chromium these tests FAIL (they do not skip): the test command installs it.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import math
import os
import select
import shutil
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from bayes_scaling.report.blocks import lookup
from bayes_scaling.report.formats import fmt
from tests.test_report import example_report, fake_report

FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking")
TIMEOUT_S = 60.0


def chromium_path() -> str:
    """The browser executable, or a failing test that says how to get it."""
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    pytest.fail("chromium not found: run ./scripts/ensure-chromium (make test does) or "
                "apt-get install chromium; the report's browser test needs it")


def _high_fd(fd: int) -> int:
    """A close-on-exec copy of ``fd`` numbered >= 10 (so dup2 onto 3 and 4 clobbers nothing)."""
    new = fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    os.close(fd)
    return new


class DevTools:
    """A minimal DevTools-protocol client over ``--remote-debugging-pipe`` (stdlib only)."""

    def __init__(self, exe: str, profile: Path, log: Path) -> None:
        to_r, to_w = (_high_fd(f) for f in os.pipe())
        from_r, from_w = (_high_fd(f) for f in os.pipe())
        argv = [exe, *FLAGS, "--remote-debugging-pipe", "--enable-logging=stderr", "--v=0",
                f"--user-data-dir={profile}", "--window-size=1200,1600", "about:blank"]
        actions = [(os.POSIX_SPAWN_DUP2, to_r, 3), (os.POSIX_SPAWN_DUP2, from_w, 4),
                   (os.POSIX_SPAWN_OPEN, 1, str(log), os.O_WRONLY | os.O_CREAT | os.O_TRUNC,
                    0o644),
                   (os.POSIX_SPAWN_DUP2, 1, 2)]
        self.pid = os.posix_spawn(exe, argv, dict(os.environ), file_actions=actions)
        os.close(to_r)
        os.close(from_w)
        self.wfd, self.rfd = to_w, from_r
        self.buf = b""
        self.next_id = 0
        self.events: list[dict[str, Any]] = []

    def _read_message(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("chromium did not answer in time")
            ready, _, _ = select.select([self.rfd], [], [], left)
            if ready:
                chunk = os.read(self.rfd, 1 << 20)
                if not chunk:
                    raise RuntimeError("chromium closed the DevTools pipe")
                self.buf += chunk
        raw, self.buf = self.buf.split(b"\0", 1)
        return json.loads(raw)

    def call(self, method: str, params: dict[str, Any] | None = None,
             session: str | None = None) -> dict[str, Any]:
        """Send one command and return its result (events seen meanwhile are kept)."""
        self.next_id += 1
        msg: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self.wfd, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + TIMEOUT_S
        while True:
            reply = self._read_message(deadline)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self.events.append(reply)

    def wait_for(self, method: str, timeout: float = TIMEOUT_S) -> dict[str, Any]:
        """Block until an event named ``method`` arrives (or has arrived)."""
        for ev in self.events:
            if ev.get("method") == method:
                return ev
        deadline = time.monotonic() + timeout
        while True:
            ev = self._read_message(deadline)
            self.events.append(ev)
            if ev.get("method") == method:
                return ev

    def drain(self, quiet_s: float = 0.5) -> None:
        """Collect events until none has arrived for ``quiet_s`` seconds."""
        while True:
            try:
                self.events.append(self._read_message(time.monotonic() + quiet_s))
            except TimeoutError:
                return

    def close(self) -> None:
        """Ask the browser to quit; kill it (by its pid) if it does not."""
        with contextlib.suppress(RuntimeError, TimeoutError, OSError):
            self.call("Browser.close")
        for _ in range(50):
            pid, _status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                break
            time.sleep(0.1)
        else:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        os.close(self.wfd)
        os.close(self.rfd)


def render(html_path: Path, workdir: Path) -> dict[str, Any]:
    """Open ``html_path`` in headless Chromium; return what the page did and showed."""
    browser = DevTools(chromium_path(), workdir / "profile", workdir / "chromium.log")
    try:
        target = browser.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        sid = browser.call("Target.attachToTarget", {"targetId": target, "flatten": True})[
            "sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            browser.call(f"{domain}.enable", session=sid)
        browser.call("Page.navigate", {"url": html_path.resolve().as_uri()}, session=sid)
        browser.wait_for("Page.loadEventFired")
        browser.drain()
        nums = browser.call("Runtime.evaluate", {"returnByValue": True, "expression": (
            "JSON.stringify(Array.from(document.querySelectorAll('span.num'))"
            ".map(e => [e.dataset.k, e.dataset.fmt, e.textContent]))")}, session=sid)
        images = browser.call("Runtime.evaluate", {"returnByValue": True, "expression": (
            "JSON.stringify(Array.from(document.images).map(i => [i.complete, "
            "i.naturalWidth]))")}, session=sid)
        shot = browser.call("Page.captureScreenshot", {"format": "png",
                                                       "captureBeyondViewport": True},
                            session=sid)
        browser.drain(0.3)
    finally:
        browser.close()
    png = base64.b64decode(shot["data"])
    (workdir / "screenshot.png").write_bytes(png)
    ev = browser.events

    def of(name: str) -> list[dict[str, Any]]:
        return [e["params"] for e in ev if e.get("method") == name]

    return {
        "numbers": json.loads(nums["result"]["value"]),
        "images": json.loads(images["result"]["value"]),
        "screenshot": png,
        "failed": of("Network.loadingFailed"),
        "urls": [p["request"]["url"] for p in of("Network.requestWillBeSent")],
        "exceptions": of("Runtime.exceptionThrown"),
        "console_errors": [p for p in of("Runtime.consoleAPICalled")
                           if p.get("type") in ("error", "assert")],
        "log_errors": [p["entry"] for p in of("Log.entryAdded")
                       if p["entry"].get("level") == "error"],
    }


# ------------------------------------------------------------------------------ checks
_SCALE = {" T": 1e12, " B": 1e9, " M": 1e6, " k": 1e3}


def parse_shown(text: str) -> float | None:
    """Read a shown number back (independently of ``fmt``): '1.4 T', '75%', '∞', '5.9e23'."""
    text = text.strip().replace(",", "")
    if text in ("n/a", "yes", "no"):
        return {"n/a": None, "yes": 1.0, "no": 0.0}[text]
    if text in ("∞", "-∞"):
        return math.inf if text == "∞" else -math.inf
    if text.endswith("%"):
        return float(text[:-1])
    for suffix, scale in _SCALE.items():
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * scale
    return float(text)


def _close(shown: float | None, value: Any, kind: str) -> bool:
    if value is None or shown is None:
        return value is None and shown is None
    if isinstance(value, str | bool):
        return shown == {"inf": math.inf, "-inf": -math.inf}.get(value, float(value))
    v = float(value) * (100 if kind == "pct" else 1)
    if kind in ("prob", "loss", "rhat", "weight"):
        return abs(shown - v) <= 5e-4 + 1e-12
    return math.isclose(shown, v, rel_tol=0.051, abs_tol=0.51 if kind in ("int", "pct") else
                        0.0051)


def check_page(html: Path, workdir: Path) -> dict[str, Any]:
    """Render the page and assert everything the browser test promises; return the result."""
    page = render(html, workdir)
    risk = json.loads((html.parent / "report.json").read_text())
    assert page["failed"] == [], f"failed requests: {page['failed']}"
    outside = [u for u in page["urls"] if not u.startswith(("file:", "data:", "about:"))]
    assert outside == [], f"requests outside the page: {outside}"
    assert page["exceptions"] == [] and page["console_errors"] == [], page
    assert page["log_errors"] == [], f"console errors: {page['log_errors']}"
    assert page["images"] and all(ok and width > 0 for ok, width in page["images"])
    assert page["screenshot"][:8] == b"\x89PNG\r\n\x1a\n" and len(page["screenshot"]) > 20_000
    assert len(page["numbers"]) > 50
    for key, kind, text in page["numbers"]:
        value = lookup(risk, json.loads(key))
        assert text == fmt(value, kind), (key, text, value)
        assert _close(parse_shown(text), value, kind), (key, kind, text, value)
    return page


def test_fake_report_renders_cleanly(tmp_path_factory):
    """A report from fake fits (no sampler): escaped data, no requests, numbers as in the JSON."""
    out = fake_report(tmp_path_factory)
    page = check_page(out / "report.html", tmp_path_factory.mktemp("browser_fake"))
    shown = [t for _, _, t in page["numbers"]]
    risk = json.loads((out / "report.json").read_text())
    p = risk["verdict"]["families"]["chinchilla"]["predictive"]["p_target"]
    assert f"{p:.3f}" in shown


def test_the_harness_sees_failed_requests_and_errors(tmp_path):
    """The checks above could fail: a broken page trips every one of them."""
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><img src="missing.png">'
                   '<img src="http://127.0.0.1:9/x.png">'
                   '<script>console.error("boom"); undefined_fn();</script></body></html>')
    page = render(bad, tmp_path)
    assert "net::ERR_FILE_NOT_FOUND" in {f["errorText"] for f in page["failed"]}
    assert "http://127.0.0.1:9/x.png" in page["urls"]
    assert page["exceptions"] and page["console_errors"] and page["log_errors"]
    assert [w for _, w in page["images"]] == [0, 0]


def test_parse_shown_reads_what_fmt_writes():
    assert parse_shown(fmt(1.4e12, "tokens")) == pytest.approx(1.4e12)
    assert parse_shown(fmt(7e10, "params")) == pytest.approx(7e10)
    assert parse_shown(fmt(5.88e23, "flops")) == pytest.approx(5.9e23)
    assert parse_shown(fmt(0.75, "pct")) == 75.0
    assert parse_shown(fmt("inf", "tokens")) == math.inf


@pytest.mark.slow
def test_example_report_renders_cleanly(tmp_path_factory):
    """The Chinchilla-70B example, built from the shipped runs, in Chromium."""
    out = example_report(tmp_path_factory)
    page = check_page(out / "report.html", tmp_path_factory.mktemp("browser_example"))
    assert len(page["images"]) == 3
