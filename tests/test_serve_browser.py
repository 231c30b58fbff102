"""nst-serve's page in a real browser (issue 23): Debian's Chromium, headless,
driven by Playwright, against a real uvicorn server on a loopback port.
It gives the server's token when the page asks (once), chooses a photo and
a painting, starts a 64 px job, sees the live preview change at least twice
and the result appear, downloads the PNG and the JSON record through the
page's links, and cancels a second job.

``NST_SERVE_SCREENSHOTS=<folder>`` makes the first job the README's: the
bundled example photo and painting at 256 px with nst-stylize's default
layers and 300 iterations, the server's default --preview_seconds; it
prints the time from "start" to the first preview, and writes the page
while it paints and when done (laptop width) and at a phone's width
there."""

import json
import os
import time

import pytest

from conftest import ROOT
from serving import Server, picture

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
TOKEN = "page-token"
PARAMS = {"size": 64, "iterations": 200, "content_layers": "relu2_1",
          "style_layers": "relu1_1,relu2_1"}


@pytest.fixture(scope="module")
def browser():
  # The test extra installs playwright: a missing one fails, not skips.
  from playwright import sync_api  # pylint: disable=g-import-not-at-top
  if not os.path.exists(CHROMIUM):
    pytest.fail(f"{CHROMIUM} missing: `apt-get install -y chromium` "
                "(make test installs it)", pytrace=False)
  with sync_api.sync_playwright() as p:
    chromium = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
    yield chromium
    chromium.close()


def _start(page, params):
  if not page.is_visible("#extra"):
    page.click("details.more summary")
  page.fill("#extra", json.dumps(params))
  before = page.text_content("#live-title")
  page.click("#start")
  page.wait_for_function(
      "before => { const t = document.getElementById('live-title')"
      ".textContent; return t.startsWith('Job ') && t !== before; }",
      arg=before, timeout=60_000)
  return page.text_content("#live-title").split()[1]


def test_the_page_paints_watches_downloads_and_cancels(browser, tmp_path,
                                                      vgg16_params):
  del vgg16_params   # the server loads the real weights itself
  shots = os.environ.get("NST_SERVE_SCREENSHOTS")
  params, size = PARAMS, 64
  if shots:   # the README's picture
    content = str(ROOT / "examples/chelsea.png")
    style = str(ROOT / "examples/style_brushwork.png")
    params, size = {"size": 256, "iterations": 300}, 256
    server = Server(tmp_path / "data", "--checkpoint_every=1000")
  else:   # with a token, which the page asks for once
    content = picture(tmp_path / "photo.png", (48, 64), 0)
    style = picture(tmp_path / "painting.png", (64, 64), 1)
    server = Server(tmp_path / "data", "--preview_seconds=0.1",
                    "--checkpoint_every=1000", token=TOKEN)
  try:
    page = browser.new_page(viewport={"width": 1280, "height": 860},
                            accept_downloads=True)
    errors, asked = [], []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (asked.append(d.message), d.accept(TOKEN)))
    page.goto(server.url + "/")
    page.set_input_files("#content", content)
    page.set_input_files("#style", style)
    assert page.is_visible("#content-drop img")   # the chosen photo shows
    started = time.perf_counter()
    job_id = _start(page, params)
    seen, first_preview = [], None
    while page.text_content("#state") not in ("done", "failed"):
      src = page.get_attribute("#preview", "src") or ""
      if "preview.png" in src and src not in seen:
        seen.append(src)
        if first_preview is None:
          first_preview = time.perf_counter() - started
          print(f"start to first preview: {first_preview:.2f} s", flush=True)
        if shots and len(seen) == 8:
          page.screenshot(path=os.path.join(shots, "serve_running.png"))
      assert time.perf_counter() - started < (1800 if shots else 180), (
          server.log()[-3000:])
      time.sleep(0.02)
    assert page.text_content("#state") == "done", page.text_content(
        "#job-error")
    assert len(seen) >= 3, (seen, server.log()[-2000:])   # changed twice
    page.wait_for_function(
        "() => document.getElementById('preview').src.includes('result.png')"
        " && document.getElementById('preview').complete"
        f" && document.getElementById('preview').naturalWidth === {size}")
    iterations = params["iterations"]
    assert page.text_content("#iteration") == f"{iterations} / {iterations}"
    assert page.get_attribute("#curve path", "d").startswith("M")
    with page.expect_download() as download:
      page.click("#download")
    path = download.value.path()
    with open(path, "rb") as f:
      assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with page.expect_download() as download:
      page.click("#record")
    with open(download.value.path(), encoding="utf-8") as f:
      assert json.load(f)["iterations"] == iterations
    page.wait_for_selector(f".jobs li[data-id='{job_id}'] img")
    if shots:
      os.makedirs(shots, exist_ok=True)
      page.screenshot(path=os.path.join(shots, "serve_laptop.png"))
    # A second, long job, cancelled from the page.
    second = _start(page, dict(PARAMS, iterations=2000))
    assert second != job_id
    page.wait_for_function("() => document.getElementById('state')"
                           ".textContent === 'running'", timeout=180_000)
    page.click("#cancel")
    page.wait_for_function("() => document.getElementById('state')"
                           ".textContent === 'cancelled'", timeout=180_000)
    assert server.json("GET", f"/api/jobs/{second}")[1]["state"] == (
        "cancelled")
    # The methods' presets send the method and the size alone (their own
    # iterations and weights) and hide the Gatys-only controls.
    page.fill("#extra", "")
    page.select_option("#preset", "nnst")
    assert not page.is_visible("#iterations")
    assert not page.is_visible("#style_stat")
    sent = json.loads(page.evaluate("JSON.stringify(params())"))
    assert set(sent) == {"size", "method"} and sent["method"] == "nnst"
    page.select_option("#preset", "balanced")
    assert page.is_visible("#iterations")
    sent = json.loads(page.evaluate("JSON.stringify(params())"))
    assert "method" not in sent and sent["style_stat"] == "gram"
    if shots:
      phone = browser.new_page(viewport={"width": 390, "height": 844},
                               device_scale_factor=2)
      phone.goto(server.url + "/")
      phone.wait_for_selector(".jobs li img")
      phone.screenshot(path=os.path.join(shots, "serve_phone.png"),
                       full_page=True)
    assert not errors, errors
    assert len(asked) == (0 if shots else 1), asked   # the token, once
  finally:
    assert server.stop() in (0, -15), server.log()[-3000:]
  assert "Traceback" not in server.log(), server.log()[-5000:]
