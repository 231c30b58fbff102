"""nst-serve's JSON API against a real uvicorn process on a loopback port
(issue 23): a job paints nst-stylize's picture and writes its record, the
files and states it promises, bad input refused with a 4xx naming the
problem (no traceback in the log), a full queue 429, cancel, a token, and
a load of 10 clients posting 30 jobs (all finish or get 429, none lost or
run twice, the server's memory bounded). One server for the module; the
kill -9 test has its own (tests/test_serve_restart.py)."""

import json
import os
import struct
import threading
import zlib

import numpy as np
import pytest

from nst_jax import io
from nst_jax import serve
from nst_jax.errors import NSTError
from serving import TINY, Server, picture
from scripting import assert_ok, run

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def images(tmp_path_factory):
  folder = tmp_path_factory.mktemp("serve_images")
  return (picture(folder / "photo.png", (32, 40), 0),
          picture(folder / "painting.png", (32, 32), 1))


@pytest.fixture(scope="module")
def server(tmp_path_factory, vgg16_params):
  del vgg16_params   # the server loads the real weights itself
  data = tmp_path_factory.mktemp("serve_data")
  srv = Server(data, "--max_queue=3", "--max_upload_mb=0.25",
               "--checkpoint_every=5", "--preview_seconds=0.2",
               "--max_size=128", "--max_iterations=400", token=TOKEN)
  yield srv
  # uvicorn stops gracefully on SIGTERM, then dies of it (its exit status)
  assert srv.stop() in (0, -15), srv.log()[-3000:]
  assert "nst-serve stopped: 0 jobs left" in srv.log(), srv.log()[-3000:]
  assert "Traceback" not in srv.log(), srv.log()[-5000:]


def test_a_job_paints_the_picture_of_nst_stylize(server, images, tmp_path):
  status, posted = server.post_job(images[0], [images[1]], TINY)
  assert status == 201, posted
  job = server.wait(posted["id"])
  assert job["state"] == "done", job
  assert job["iteration"] == job["iterations"] == 20
  assert {"id", "state", "iteration", "iterations", "loss", "error"} <= set(
      job)
  assert job["error"] is None and job["loss"] > 0 and job["attempts"] == 1
  assert job["curve"][-1] == [20, job["loss"]]
  folder = os.path.join(server.log_path.rsplit("/", 1)[0], "jobs", job["id"])
  for name, kind in (("preview.png", "image/png"), ("result.png", "image/png"),
                     ("record.json", "application/json")):
    status, headers, body = server.request(
        "GET", f"/api/jobs/{job['id']}/{name}")
    assert status == 200 and headers["content-type"].startswith(kind)
  record = json.loads(server.request(
      "GET", f"/api/jobs/{job['id']}/record.json")[2])
  assert record["iterations"] == 20 and record["stop_reason"] != "interrupted"
  assert record["params"]["size"] == 32
  # The same flags through nst-stylize paint the same picture.
  out = tmp_path / "cli.png"
  proc = run("stylize.py", f"--content={folder}/content.png",
             f"--style={folder}/style_0.png", "--size=32", "--iterations=20",
             "--content_layers=relu2_1", "--style_layers=relu1_1,relu2_1",
             f"--output={out}", "--quiet")
  assert_ok(proc)
  np.testing.assert_array_equal(io.load_image(out),
                                io.load_image(f"{folder}/result.png"))
  theirs = json.loads((tmp_path / "cli.json").read_text())
  assert theirs["loss_history"][-1] == record["loss_history"][-1] or (
      theirs["loss_history"][-1]["total"] == record["loss_history"][-1][
          "total"])
  same = {k: v for k, v in record["params"].items()
          if k not in ("output", "quiet", "content", "style")}
  assert same == {k: theirs["params"][k] for k in same}
  status, listed = server.json("GET", "/api/jobs")
  assert status == 200 and job["id"] in [j["id"] for j in listed["jobs"]]


def test_a_strotss_job_paints_with_progress_and_its_record(server, images):
  """--method=strotss as a job (the page's STROTSS preset): one level of
  64 px, two iterations; the iterations count the method's stages, the
  record and the picture are the method's."""
  status, posted = server.post_job(images[0], [images[1]],
                                   {"method": "strotss", "size": 64,
                                    "iterations": 2})
  assert status == 201, posted
  job = server.wait(posted["id"])
  assert job["state"] == "done", job
  assert job["iteration"] == job["iterations"] == 2
  record = json.loads(server.request(
      "GET", f"/api/jobs/{job['id']}/record.json")[2])
  assert record["params"]["method"] == "strotss"
  assert record["params"]["iterations"] == 2
  assert {"remd", "palette", "size"} <= set(record["loss_history"][-1])
  status, _, body = server.request("GET", f"/api/jobs/{job['id']}/result.png")
  assert status == 200 and body.startswith(b"\x89PNG")


def _bomb() -> bytes:
  """A PNG whose header claims 100000 x 100000 pixels (a few bytes of
  data): a decompression bomb."""
  def chunk(kind, data):
    return (struct.pack(">I", len(data)) + kind + data
            + struct.pack(">I", zlib.crc32(kind + data)))
  return (b"\x89PNG\r\n\x1a\n"
          + chunk(b"IHDR", struct.pack(">IIBBBBB", 100000, 100000, 8, 2, 0,
                                       0, 0))
          + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("case, status, param, words", [
    ("not_an_image", 400, "content", "not an image"),
    ("bomb", 413, "style", "decompression bomb"),
    ("too_large", 413, "max_upload_mb", "over this server's --max_upload_mb"),
    ("unknown", 400, "colour", "unknown parameter 'colour'"),
    ("out_of_range", 400, "iterations", "iterations=-3 is not valid"),
    ("bad_choice", 400, "style_stat", "style_stat='paint' is not valid"),
    ("over_max_size", 400, "size", "over this server's --max_size=128"),
    ("over_max_iterations", 400, "iterations", "--max_iterations=400"),
    ("server_only", 400, "output", "output is set by the server"),
    ("method_flag", 400, "style_weight", "method=nnst does not use "
     "style_weight"),
    ("method_too_small", 400, "size", "size 32 px makes NNST's first level"),
    ("gatys_alpha", 400, "alpha", "alpha belongs to method=nnst"),
    ("too_small", 400, "size", "too small for layer relu5_1"),
    ("bad_layer", 400, "style_layers", "unknown layers 'relu9_9'"),
    ("not_json", 400, "params", "not JSON"),
])
def test_bad_input_is_a_4xx_naming_it(server, images, case, status, param,
                                      words):
  content, styles, params, raw = images[0], [images[1]], dict(TINY), None
  if case == "not_an_image":
    content = b"these are not the pixels you are looking for"
  elif case == "bomb":
    styles = [_bomb()]
  elif case == "too_large":
    content = os.urandom(300 * 1024)
  elif case == "unknown":
    params["colour"] = "blue"
  elif case == "out_of_range":
    params["iterations"] = -3
  elif case == "bad_choice":
    params["style_stat"] = "paint"
  elif case == "over_max_size":
    params["size"] = 256
  elif case == "over_max_iterations":
    params["iterations"] = 401
  elif case == "server_only":
    params["output"] = "/tmp/elsewhere.png"
  elif case == "method_flag":   # a Gatys flag the method would ignore
    params = {"method": "nnst", "size": 64, "style_weight": 5}
  elif case == "gatys_alpha":   # NNST's flag, which Gatys would ignore
    params["alpha"] = 0.5
  elif case == "method_too_small":   # NNST's first level: 4 px
    params = {"method": "nnst", "size": 32, "iterations": 5}
  elif case == "too_small":
    params = {"size": 16, "iterations": 5}   # the default layers
  elif case == "bad_layer":
    params["style_layers"] = "relu1_1,relu9_9"
  elif case == "not_json":
    raw = "{size: 32"
  before = server.json("GET", "/api/jobs")[1]["jobs"]
  got, body = server.post_job(content, styles, params, raw_params=raw)
  assert got == status, body
  assert body["param"] == param and words in body["error"], body
  assert server.json("GET", "/api/jobs")[1]["jobs"] == before   # nothing kept


def test_upload_names_never_become_paths(server, images):
  status, posted = server.post_job(
      images[0], [images[1]], TINY,
      names=["../../../escape.png", "/etc/passwd"])
  assert status == 201, posted
  server.wait(posted["id"])
  data = server.log_path.rsplit("/", 1)[0]
  assert sorted(os.listdir(os.path.join(data, "jobs", posted["id"]))) == [
      "content.png", "job.json", "preview.png", "record.json", "result.png",
      "style_0.png"]
  assert not os.path.exists(os.path.join(data, "escape.png"))
  # An id is never a path either.
  status, body = server.json("GET", "/api/jobs/..%2F..%2Fjob.json")
  assert status == 404


def test_a_token_is_required(server):
  for headers in ({}, {"Authorization": "Bearer wrong"}):
    status, body = server.json("GET", "/api/jobs", headers=headers,
                               auth=False)
    assert status == 401 and body["param"] == "token"
  assert server.json("GET", f"/api/jobs?token={TOKEN}", auth=False)[0] == 200
  status, _, page = server.request("GET", "/", auth=False)  # the page asks
  assert status == 200 and b"<input type=\"file\" id=\"content\"" in page
  serve.check_host("127.0.0.1", None)
  serve.check_host("0.0.0.0", "t")
  for empty in ("", "  "):   # an empty secret would let every request in
    with pytest.raises(NSTError, match="empty"):
      serve.check_host("127.0.0.1", empty)
  with pytest.raises(NSTError, match="--host=0.0.0.0 .* give --token"):
    serve.check_host("0.0.0.0", None)


def test_a_full_queue_is_429_and_cancel_keeps_what_was_reached(server,
                                                               images):
  long = dict(TINY, iterations=400)
  ids = []
  for _ in range(3):
    status, posted = server.post_job(images[0], [images[1]], long)
    assert status == 201, posted
    ids.append(posted["id"])
  status, body = server.post_job(images[0], [images[1]], long)
  assert status == 429 and body["param"] == "queue", body
  status, queued = server.json("DELETE", f"/api/jobs/{ids[2]}")
  assert status == 200 and queued["state"] == "cancelled"
  running = server.wait(ids[0], states=(), until=lambda j: j["iteration"] > 0)
  assert running["state"] == "running"
  server.json("DELETE", f"/api/jobs/{ids[0]}")
  server.json("DELETE", f"/api/jobs/{ids[1]}")
  first = server.wait(ids[0])
  assert first["state"] == "cancelled" and 0 < first["iteration"] < 400
  record = json.loads(server.request(
      "GET", f"/api/jobs/{ids[0]}/record.json")[2])
  assert record["stop_reason"] == "interrupted"
  assert record["iterations"] == first["iteration"]
  assert server.request("GET", f"/api/jobs/{ids[0]}/result.png")[0] == 200
  assert server.wait(ids[1])["state"] == "cancelled"
  assert server.request("GET", f"/api/jobs/{ids[2]}/result.png")[0] == 404
  assert server.json("DELETE", "/api/jobs/000000000000")[0] == 404


def test_load_ten_clients_thirty_jobs(server, images):
  """10 clients post 30 small jobs: each is accepted (and then done, run
  once) or refused 429; the server's memory stays bounded."""
  params = TINY   # compiled by the first test
  rss = server.rss_kb()
  answers, lock = [], threading.Lock()

  def client():
    for _ in range(3):
      status, body = server.post_job(images[0], [images[1]], params)
      with lock:
        answers.append((status, body))
  threads = [threading.Thread(target=client) for _ in range(10)]
  for t in threads:
    t.start()
  for t in threads:
    t.join()
  assert len(answers) == 30
  assert {s for s, _ in answers} <= {201, 429}, answers
  accepted = [b["id"] for s, b in answers if s == 201]
  assert accepted and len(set(accepted)) == len(accepted)
  for job_id in accepted:
    job = server.wait(job_id)
    assert job["state"] == "done" and job["attempts"] == 1, job
  listed = {j["id"] for j in server.json("GET", "/api/jobs")[1]["jobs"]}
  assert set(accepted) <= listed
  assert server.rss_kb() - rss < 300_000, (rss, server.rss_kb())


# --- in process: the framework's test client, no worker, no JAX run -------


@pytest.mark.filterwarnings("ignore:Using `httpx`")   # the test client's
def test_the_app_in_process(tmp_path):
  """The app over a store read back from disk (a job that was running when
  its server died is queued again) through Starlette's test client: the
  token, 413 before any of an oversized body is used (by Content-Length and
  when it arrives chunked), 404s, cancel of a queued job, the page, its
  static files and the OpenAPI description."""
  from fastapi.testclient import TestClient
  job_id = "0123456789ab"
  folder = tmp_path / "jobs" / job_id
  folder.mkdir(parents=True)
  io.save_json(folder / "job.json", {"id": job_id, "state": "running",
                                     "created": 1.0, "curve": [],
                                     "preview": 0})
  (tmp_path / "jobs" / "not-a-job").mkdir()
  store = serve.JobStore(str(tmp_path / "jobs"))
  app = serve.create_app(store, None, token=TOKEN, max_upload_mb=0.001)
  auth = {"Authorization": f"Bearer {TOKEN}"}
  with TestClient(app) as client:
    assert client.get("/api/jobs").status_code == 401
    jobs = client.get("/api/jobs", headers=auth).json()["jobs"]
    assert [(j["id"], j["state"]) for j in jobs] == [(job_id, "queued")]
    response = client.post("/api/jobs", headers=auth,
                           files={"content": ("a.png", b"x" * 2000)})
    assert response.status_code == 413
    assert response.json()["param"] == "max_upload_mb"
    response = client.post("/api/jobs", headers=auth,
                           content=iter([b"x" * 800, b"y" * 800]))
    assert response.status_code == 413
    response = client.post("/api/jobs", headers=auth, data={"params": "{}"})
    assert response.status_code == 400 and response.json()["param"] in (
        "content", "style"), response.json()
    response = client.get("/api/nothing", headers=auth)
    assert response.status_code == 404 and "error" in response.json()
    assert client.get("/api/jobs/zzz", headers=auth).status_code == 404
    response = client.get(f"/api/jobs/{job_id}/result.png", headers=auth)
    assert response.status_code == 404 and "no result.png yet" in (
        response.json()["error"])
    cancelled = client.delete(f"/api/jobs/{job_id}", headers=auth).json()
    assert cancelled["state"] == "cancelled"
    assert json.loads((folder / "job.json").read_text())["state"] == (
        "cancelled")
    page = client.get("/").text
    assert page.count("<input type=\"file\"") >= 2 and "http" not in page
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/..%2Fapp.py").status_code == 404
    assert "openapi.json" in client.get("/docs").text
    spec = client.get("/openapi.json").json()
    assert set(spec["paths"]["/api/jobs"]) == {"get", "post"}
    assert "multipart/form-data" in spec["paths"]["/api/jobs"]["post"][
        "requestBody"]["content"]
    for path in ("/api/jobs/{job_id}", "/api/jobs/{job_id}/preview.png",
                 "/api/jobs/{job_id}/result.png",
                 "/api/jobs/{job_id}/record.json",
                 "/api/jobs/{job_id}/events"):
      assert path in spec["paths"], path


@pytest.mark.filterwarnings("ignore:Using `httpx`")
def test_a_loopback_server_refuses_other_sites_and_hosts(tmp_path):
  """Without a token (the loopback): another host name (DNS rebinding) or
  a change posted by another site's page is 403; its own pages pass."""
  from fastapi.testclient import TestClient
  app = serve.create_app(serve.JobStore(str(tmp_path)), None)
  with TestClient(app, base_url="http://127.0.0.1:8000") as client:
    assert client.get("/api/jobs").status_code == 200
    assert client.get("/api/jobs",
                      headers={"Host": "localhost:8000"}).status_code == 200
    assert client.get("/api/jobs", headers={"Host": "[::1]:8000"}
                      ).status_code == 200
    response = client.get("/api/jobs", headers={"Host": "evil.example"})
    assert response.status_code == 403 and response.json()["param"] == "host"
    evil = {"Origin": "http://evil.example"}
    assert client.delete("/api/jobs/0123456789ab",
                         headers=evil).status_code == 403
    assert client.delete("/api/jobs/0123456789ab", headers={
        "Origin": "http://127.0.0.1:8000"}).status_code == 404
    assert client.get("/api/jobs", headers=evil).status_code == 200


def test_eta_is_the_rate_since_the_first_timed_step():
  assert serve.eta_seconds(5, 100, None, 10.0) is None
  assert serve.eta_seconds(5, 100, (2.0, 5), 10.0) is None
  # (100 − 30) · (12 − 2) / (30 − 10)
  assert serve.eta_seconds(30, 100, (2.0, 10), 12.0) == pytest.approx(35.0)


def test_the_preview_is_the_clipped_iterate_in_the_contents_colours():
  from nst_jax import color
  rng = np.random.default_rng(0)
  x = rng.uniform(-0.5, 1.5, size=(1, 8, 6, 3)).astype(np.float32)
  content = rng.uniform(size=(8, 6, 3)).astype(np.float32)
  plain = serve.preview_image(x, content, color.ColorControl())
  np.testing.assert_array_equal(plain, np.clip(x[0], 0.0, 1.0))
  kept = serve.preview_image(x, content,
                             color.ColorControl(original_colors=True))
  np.testing.assert_allclose(kept, color.combine_luminance(
      np.clip(x[0], 0.0, 1.0), content, "yiq"), atol=1e-6)
  assert kept.shape == (8, 6, 3)
