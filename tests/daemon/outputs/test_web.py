"""The web view: its live state, token, store handling and pages, then in a real headless
Chromium: `defectd web` on a store the tracker filled, and the real daemon's line page as a
simulated line runs (coil A, then coil B; A closes), with the docs' screenshots."""

from __future__ import annotations

import base64
import http.client
import os
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from defectd.daemon.cli import main
from defectd.daemon.config.schema import WebSettings
from defectd.daemon.outputs.web import WebView
from defectd.daemon.outputs.web import auth as web_auth
from defectd.daemon.outputs.web.live import LiveState
from defectd.daemon.tools.loopback.line import free_port
from tests.daemon.outputs.web_browser import (
    chromium,
    console_errors,
    images_loaded,
    needs_browser,
    wait_until,
)
from tests.daemon.outputs.web_store import (
    ODD_COIL,
    coil_event,
    defect_event,
    fill_store,
    frame_event,
    status_event,
)

REPO = Path(__file__).resolve().parents[3]
TOKEN = "s3cret-token-for-the-test"


def _get(
    port: int, path: str, headers: dict[str, str] | None = None, method: str = "GET"
) -> tuple[int, dict[str, str], bytes]:
    """One request as sent (no redirect followed): status, headers, body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(method, path, headers=headers or {})
        answer = connection.getresponse()
        return answer.status, dict(answer.getheaders()), answer.read()
    finally:
        connection.close()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Any]:
    """Start WebViews on free ports (closed at the end): ``serve(store_url, **web)``."""
    views: list[WebView] = []

    def start(store_url: str | None, live: bool = True, **web: Any) -> WebView:
        settings = WebSettings(enabled=True, bind=f"127.0.0.1:{free_port()}", **web)
        view = WebView(
            settings, store_url, "line1", ("top", "side"), ("c1", "c2"), live=live, poll_s=0.1
        )
        view.start()
        views.append(view)
        return view

    yield start
    for view in views:
        view.close()


def test_the_live_state_keeps_what_the_line_page_shows() -> None:
    now = [100.0]
    live = LiveState("line1", ("top", "side"), clock=lambda: now[0], feed_size=3)
    assert live.handle("status", status_event())
    for seq in (0, 1, 2, 5):  # 3 and 4 never came
        assert live.handle("defect.line1.top.c1", defect_event("top", seq, "C1", seq * 0.1))
        assert live.handle("frame.line1.top", frame_event("top", seq, "C1", seq * 0.1))
        now[0] += 0.5
    assert not live.handle("frame.line2.top", {**frame_event("top", 9, "C9", 0.0), "line": "line2"})
    assert not live.handle("defect.line1.top.c1", {"line": "line1", "camera_id": "top"})
    assert live.unreadable == 1
    snap = live.snapshot()
    top, side = snap.cameras
    assert (top.camera_id, top.frames, top.missed, top.defect_frames) == ("top", 4, 2, 4)
    assert top.fps > 0 and top.age_s == pytest.approx(0.5)
    assert (side.frames, side.age_s) == (0, None)  # listed before its first frame
    assert [item.seq for item in snap.feed] == [5, 2, 1]  # newest first, the last 3
    assert snap.feed[0].position_m == pytest.approx(0.51) and snap.feed[0].area_mm2 == 25.0
    assert snap.heartbeat is not None and snap.heartbeat.dropped_total == 2
    assert snap.heartbeat.age_s == pytest.approx(2.0)
    assert snap.open_coil is not None and snap.open_coil.coil_id == "C1"
    extent = snap.open_coil.extent
    assert extent is not None and extent.frames == 4
    # The region's 5 px are 5 mm: a 100 px frame is 0.1 m long, 200 mm wide.
    assert extent.head_m == pytest.approx(0.0) and extent.tail_m == pytest.approx(0.6)
    assert extent.across_mm == pytest.approx((0.0, 200.0))
    assert live.handle("coil.line1.C0", coil_event("C0", "B", 5 * 10**9))
    assert [(c.coil_id, c.grade) for c in live.snapshot().closed] == [("C0", "B")]
    assert live.handle("coil.line1.C1", coil_event("C1", "A", 6 * 10**9))
    assert live.snapshot().open_coil is None  # closed by silence: nothing under the cameras


def test_the_token_is_needed_once_then_a_cookie(
    serve: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    token_file = tmp_path / "web.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    compared: list[int] = []
    real = web_auth.hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        compared.append(len(a))
        return real(a, b)

    monkeypatch.setattr(web_auth.hmac, "compare_digest", spy)
    port = serve(None, token_file=str(token_file)).port
    for path in ("/", "/coils", "/events", "/healthz", "/static/app.css"):
        status, headers, body = _get(port, path)
        assert status == 401, path
        assert b"Token needed" in body and "Bearer" in headers["WWW-Authenticate"]
    assert _get(port, "/coils?token=wrong")[0] == 401
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert _get(port, "/healthz", bearer)[0] == 200
    status, headers, _ = _get(port, f"/coils?grade=B&token={TOKEN}")
    assert status == 303 and headers["Location"] == "/coils?grade=B"  # the token leaves the URL
    cookie = headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and TOKEN not in cookie
    session = {"Cookie": cookie.split(";")[0]}
    status, _, body = _get(port, "/coils?grade=B", session)
    assert status == 200 and b"Coils of grade B" in body
    assert _get(port, "/coils", {"Cookie": "defectd_web=forged"})[0] == 401
    assert compared, "tokens are compared with hmac.compare_digest (constant time)"


def test_without_a_store_yet_the_pages_say_so(serve: Any, tmp_path: Path) -> None:
    database = tmp_path / "state" / "defects.db"
    database.parent.mkdir()
    view = serve(f"sqlite:///{database}")
    status, _, body = _get(view.port, "/coils")
    assert status == 200 and b"No defect store yet at" in body and str(database).encode() in body
    wait = time.monotonic() + 5
    while view.poller.polls < 1 and time.monotonic() < wait:
        time.sleep(0.05)
    status, _, body = _get(view.port, "/")
    assert status == 200 and b"No defect store yet at" in body  # the line page still works
    status, _, body = _get(view.port, "/coils/C1")
    assert status == 503 and b"No defect store yet" in body
    assert _get(view.port, "/coils/C1/map.png")[0] == 404
    assert not database.exists()  # the web view never creates a store
    status, _, body = _get(serve(None).port, "/coils")
    assert status == 200 and b"keeps no defect store (store.enabled is false" in body


def test_pages_escape_ids_and_crops_stay_in_their_folder(serve: Any, tmp_path: Path) -> None:
    url = fill_store(tmp_path / "state")
    view = serve(url)
    view.handle("defect.line1.top.c1", defect_event("top", 1, "<b>C9</b>", 0.1, "<i>c1</i>"))
    view.handle("frame.line1.top", frame_event("top", 1, "<b>C9</b>", 0.1))
    status, _, body = _get(view.port, "/coils")
    assert status == 200
    assert b"X&lt;1&gt;&amp;&#x27;&quot;" in body and ODD_COIL.encode() not in body
    odd = "/coils/" + urllib.parse.quote(ODD_COIL, safe="") + "?line=line1"
    assert f'href="{odd}"'.replace("&", "&amp;").encode() in body
    status, _, body = _get(view.port, odd)
    assert status == 200 and b"Coil X&lt;1&gt;" in body
    view.push_now()
    status, _, body = _get(view.port, "/")
    assert b"&lt;b&gt;C9&lt;/b&gt;" in body and b"&lt;i&gt;c1&lt;/i&gt;" in body
    assert b"<b>C9" not in body and b"<i>c1" not in body
    status, _, body = _get(view.port, "/coils/C1")
    crops = [part.split('"')[0] for part in body.decode().split('src="/crops/')[1:]]
    assert crops, "the coil page shows its largest defects' crops"
    status, headers, body = _get(view.port, "/crops/" + crops[0])
    assert status == 200 and headers["Content-Type"] == "image/jpeg" and body[:2] == b"\xff\xd8"
    for escape in ("/crops/../defects.db", "/crops/%2E%2E/defects.db", "/crops//etc/passwd"):
        assert _get(view.port, escape)[0] == 404, escape
    assert _get(view.port, "/coils", method="POST")[0] == 405
    status, headers, body = _get(view.port, "/coils/C1/map.png")
    assert status == 200 and body[:8] == b"\x89PNG\r\n\x1a\n"
    assert "script-src 'self'" in _get(view.port, "/")[1]["Content-Security-Policy"]


def test_the_command_refuses_an_open_bind_without_a_token(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["web", "--store", "sqlite:///nowhere.db", "--bind", "0.0.0.0:8123"]) == 2
    assert "--bind 0.0.0.0:8123 is reachable from other machines" in capsys.readouterr().err


# -- in Chromium ------------------------------------------------------------------------------


def _screenshot(driver: Any, name: str, tmp_path: Path) -> Path:
    """A screenshot of the whole page: into docs/img with DEFECTD_WRITE_SCREENSHOTS=1."""
    folder = REPO / "docs" / "img" if os.environ.get("DEFECTD_WRITE_SCREENSHOTS") else tmp_path
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {"x": 0, "y": 0, "width": size["width"], "height": size["height"], "scale": 1}
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path = folder / name
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def _settle(check: Any, timeout_s: float) -> None:
    """Until `check()` holds or `timeout_s` passed (for the screenshots' looks, not a test)."""
    deadline = time.monotonic() + timeout_s
    while not check() and time.monotonic() < deadline:
        time.sleep(0.2)


def _defects(database: Path, coil_id: str) -> int:
    from defectd.daemon.store.backend import open_store

    store = open_store(f"sqlite:///{database}")
    try:
        return len(store.defects(coil_id))
    finally:
        store.close()


def _wait_http(port: int, headers: dict[str, str] | None = None, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if _get(port, "/healthz", headers)[0] == 200:
                return
        except OSError:
            pass
        time.sleep(0.1)
    pytest.fail(f"nothing answered on 127.0.0.1:{port} after {timeout_s:g} s")


def _web_command(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "defectd.daemon.cli", "web", *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _stop(process: subprocess.Popen[str]) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    return int(process.returncode)


@needs_browser
@pytest.mark.slow
def test_defectd_web_serves_a_store_to_a_browser_with_the_token(tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url = fill_store(tmp_path / "state")
    token_file = tmp_path / "web.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port = free_port()
    process = _web_command(
        "--store", url, "--bind", f"127.0.0.1:{port}", "--token-file", str(token_file)
    )
    try:
        with chromium(tmp_path / "profile") as driver:
            _wait_http(port, {"Authorization": f"Bearer {TOKEN}"})
            assert _get(port, "/coils")[0] == 401
            driver.get(f"http://127.0.0.1:{port}/?token={TOKEN}")  # → /coils, no live feed
            assert driver.current_url == f"http://127.0.0.1:{port}/coils"
            rows = driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")
            assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == [ODD_COIL, "C2", "C1"]
            assert console_errors(driver) == []
            driver.find_element(By.LINK_TEXT, "C1").click()
            wait_until(
                driver,
                lambda d: "Coil C1" in d.find_element(By.TAG_NAME, "h1").text,
                10,
                "the page of coil C1",
            )
            text = driver.find_element(By.TAG_NAME, "main").text
            assert "c1 count 4 > 1 → B" in text and "0.2 m not inspected" in text
            wait_until(driver, lambda d: images_loaded(d, "img.map") == 1, 10, "the map")
            wait_until(driver, lambda d: images_loaded(d, "img.thumb") >= 3, 10, "thumbnails")
            assert console_errors(driver) == []
            driver.find_element(By.LINK_TEXT, "Coils").click()
            Select(driver.find_element(By.NAME, "grade")).select_by_value("B")
            driver.find_element(By.CSS_SELECTOR, "form.filter button").click()
            wait_until(driver, lambda d: "grade=B" in d.current_url, 10, "the grade filter")
            rows = driver.find_elements(By.CSS_SELECTOR, "main table tbody tr")
            assert [r.find_element(By.TAG_NAME, "a").text for r in rows] == ["C1"]
            driver.get(f"http://127.0.0.1:{port}/coils")
            driver.find_element(By.LINK_TEXT, ODD_COIL).click()
            wait_until(
                driver,
                lambda d: d.find_element(By.TAG_NAME, "h1").text.startswith(f"Coil {ODD_COIL}"),
                10,
                "the odd coil's page",
            )
            assert console_errors(driver) == []
    finally:
        status = _stop(process)
        output = process.stdout.read() if process.stdout else ""
    assert status == 0, output
    assert f"serving http://127.0.0.1:{port}/" in output


@needs_browser
@pytest.mark.slow
def test_the_line_page_follows_the_real_daemon_in_a_browser(tmp_path: Path) -> None:
    import zmq
    from selenium.webdriver.common.by import By

    from defectd.daemon.tools.loopback import (
        Camera,
        DaemonProcess,
        Listener,
        LoopbackPorts,
        line_config,
    )
    from defectd.engines.synth import SyntheticLine

    ports = LoopbackPorts()
    web_port, command_port = free_port(), free_port()
    database = tmp_path / "state" / "defects.db"
    config = line_config(
        ports,
        ("cam0", "cam1"),
        push=True,
        engine={"backend": "onnxruntime", "max_batch": 4, "threads": 1},
        sections={
            "batching": {"max_wait_ms": 10.0, "policy": "block"},
            "publish": {"status_interval_s": 0.5},
            "store": {"enabled": True, "url": f"sqlite:///{database}"},
            "coils": {"rules": [{"grade": "B", "count_over": 5}]},
            "web": {"enabled": True, "bind": f"127.0.0.1:{web_port}", "title": "Line 1"},
        },
    )
    for index, camera in enumerate(config["cameras"]):  # side by side, 10 mm overlap
        camera.update(across_mm_per_px=0.5, left_mm=index * 790.0)
    lines = {"cam0": SyntheticLine(13), "cam1": SyntheticLine(14)}
    images = {name: [line.frame(i).image for i in range(14)] for name, line in lines.items()}
    base = f"http://127.0.0.1:{web_port}"

    def every_frame(driver: Any) -> bool:
        rows = driver.find_elements(By.CSS_SELECTOR, "#cameras tbody tr")
        cells = [row.find_elements(By.TAG_NAME, "td") for row in rows]
        return [(c[0].text, c[2].text) for c in cells] == [("cam0", "14"), ("cam1", "14")]

    context: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    command = None
    try:
        with (
            DaemonProcess(config, tmp_path, ports) as daemon,
            Listener(ports.publish_endpoint, topics=("frame.",)) as listener,
            chromium(tmp_path / "profile") as driver,
        ):
            command = _web_command(
                "--connect",
                ports.publish_endpoint,
                "--store",
                f"sqlite:///{database}",
                "--bind",
                f"127.0.0.1:{command_port}",
            )
            daemon.wait_ready(60)
            _wait_http(web_port)
            assert listener.wait_subscribed()
            driver.get(base + "/")
            wait_until(
                driver,
                lambda d: "READY" in d.find_element(By.ID, "status").text,
                10,
                "a ready daemon on the line page",
            )
            assert console_errors(driver) == []
            camera = Camera(ports.camera_endpoint, context=context)
            started = time.monotonic()
            for seq in range(14):  # coil A then coil B: A closes
                coil, first = ("C-A", 0) if seq < 8 else ("C-B", 8)
                for name, frames in images.items():
                    position = (seq - first) * 0.128
                    camera.send(name, seq, frames[seq], coil_id=coil, position_m=position)
                time.sleep(0.15)
            wait_until(
                driver,
                lambda d: d.find_elements(By.CSS_SELECTOR, "#feed tbody tr"),
                20,
                "defects in the live feed",
            )
            feed_after_s = time.monotonic() - started
            listener.until(lambda: len(listener.of("frame")) >= 28, 60, "28 frame summaries")
            wait_until(
                driver,
                lambda d: "C-A" in d.find_element(By.ID, "coils").text,
                20,
                "coil A among the recent coils",
            )
            wait_until(
                driver,
                lambda d: "C-B" in d.find_element(By.ID, "coil").text,
                10,
                "coil B under the cameras",
            )
            wait_until(driver, lambda d: images_loaded(d, "#coil-map") == 1, 15, "B's map")
            wait_until(
                driver, lambda d: images_loaded(d, "#feed img.thumb") >= 1, 20, "a crop in the feed"
            )
            wait_until(driver, every_frame, 20, "14 frames of each camera on the page")
            # The open coil's strip defects already final are in the store, and on its map.
            wait_until(driver, lambda d: _defects(database, "C-B"), 15, "C-B's defects stored")
            driver.execute_script(
                "var i = document.getElementById('coil-map'), u = new URL(i.src);"
                "u.searchParams.set('v', Date.now()); i.src = u.toString();"
            )
            wait_until(driver, lambda d: images_loaded(d, "#coil-map") == 1, 15, "B's map")
            b_crop = "Array.from(document.querySelectorAll('#feed tr')).some(r => "
            b_crop += "r.textContent.includes('C-B') && r.querySelector('img.thumb'))"
            _settle(lambda: driver.execute_script(f"return {b_crop};"), 8)
            assert console_errors(driver) == []
            line_png = _screenshot(driver, "web-line.png", tmp_path)

            # Clicked in the page, in one step: the coils table is redrawn as it refreshes, so
            # an element found first can be gone (stale) by the time it is clicked.
            driver.execute_script(
                "document.querySelector(\"#coils a[href^='/coils/C-A']\").click();"
            )
            wait_until(
                driver,
                lambda d: "Coil C-A" in d.find_element(By.TAG_NAME, "h1").text,
                10,
                "coil A's page",
            )
            text = driver.find_element(By.TAG_NAME, "main").text
            assert "Defects by class" in text and "Largest defects" in text
            wait_until(driver, lambda d: images_loaded(d, "img.map") == 1, 15, "A's map")
            wait_until(driver, lambda d: images_loaded(d, "img.thumb") >= 1, 10, "A's crops")
            assert console_errors(driver) == []
            coil_png = _screenshot(driver, "web-coil.png", tmp_path)
            for path in ("/coils", "/coils/C-B"):  # the list, and the open coil's page
                driver.get(base + path)
                wait_until(driver, lambda d: d.find_element(By.TAG_NAME, "h1").text, 5, path)
                assert console_errors(driver) == [], path
            camera.close()

            _wait_http(command_port)
            status, _, body = _get(command_port, "/")
            assert status == 200 and b"C-A" in body and b"<td>cam0</td>" in body
            assert _stop(command) == 0
            assert daemon.stop() == 0
    finally:
        if command is not None and command.poll() is None:
            _stop(command)
        context.destroy(linger=0)
    assert feed_after_s < 15, f"the first defects reached the page after {feed_after_s:.1f} s"
    assert line_png.stat().st_size > 50_000 and coil_png.stat().st_size > 50_000
