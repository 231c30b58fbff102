"""Test helper: ``nst-serve`` as a user starts it — a real uvicorn process
on a free loopback port (``--port=0``, the port read from its first line),
with the session's compilation cache (conftest) — and a small client of its
JSON API (the standard library's ``urllib``: no other HTTP code between the
test and the server)."""

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid

import numpy as np
from PIL import Image

from conftest import ROOT

# A tiny job: 32 px, the first two VGG blocks (compiles and runs in seconds).
TINY = {"size": 32, "iterations": 20, "content_layers": "relu2_1",
        "style_layers": "relu1_1,relu2_1"}


def picture(path, shape=(32, 40), seed=0):
  """A smooth random RGB PNG of ``shape`` at ``path``; returns ``path``."""
  rng = np.random.default_rng(seed)
  small = rng.uniform(size=(4, 5, 3))
  image = Image.fromarray((small * 255).astype(np.uint8)).resize(
      (shape[1], shape[0]), Image.BILINEAR)
  image.save(path)
  return str(path)


class Server:
  """``scripts/serve.py`` on 127.0.0.1 and a free port, ``data_dir`` and
  ``flags``; ``stop()`` (SIGTERM) or ``kill()`` (SIGKILL)."""

  def __init__(self, data_dir, *flags_, token=None, timeout=120):
    self.token = token
    self.log_path = os.path.join(str(data_dir), f"server-{os.getpid()}-"
                                 f"{uuid.uuid4().hex[:6]}.log")
    os.makedirs(str(data_dir), exist_ok=True)
    args = [sys.executable, str(ROOT / "scripts/serve.py"), "--port=0",
            f"--data_dir={data_dir}", *flags_]
    if token:
      args.append(f"--token={token}")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    self._log = open(self.log_path, "w+", encoding="utf-8")
    self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=self._log,
                                 stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + timeout
    while True:
      found = re.search(r"http://127\.0\.0\.1:(\d+)/", self.log())
      if found:
        self.url = f"http://127.0.0.1:{found.group(1)}"
        break
      if self.proc.poll() is not None or time.monotonic() > deadline:
        self.kill()
        raise AssertionError(f"nst-serve did not start:\n{self.log()}")
      time.sleep(0.1)

  def log(self) -> str:
    with open(self.log_path, encoding="utf-8") as f:
      return f.read()

  def request(self, method, path, *, data=None, headers=None, auth=True):
    """``(status, headers, body bytes)`` of one request."""
    headers = dict(headers or {})
    if auth and self.token:
      headers["Authorization"] = f"Bearer {self.token}"
    req = urllib.request.Request(self.url + path, data=data, method=method,
                                 headers=headers)
    try:
      with urllib.request.urlopen(req, timeout=60) as response:
        return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as e:
      return e.code, dict(e.headers), e.read()

  def json(self, method, path, **kwargs):
    status, _, body = self.request(method, path, **kwargs)
    return status, json.loads(body)

  def post_job(self, content, styles, params=None, *, names=None,
               raw_params=None):
    """POST /api/jobs (multipart): ``content`` and ``styles`` are paths or
    bytes; ``names`` the file names sent (default: the paths' own)."""
    boundary = uuid.uuid4().hex
    parts = []
    files = [("content", content)] + [("style", s) for s in styles]
    for i, (field, item) in enumerate(files):
      data = item if isinstance(item, bytes) else open(item, "rb").read()
      name = (names[i] if names else
              ("upload.png" if isinstance(item, bytes)
               else os.path.basename(item)))
      parts.append(
          f"--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\";"
          f" filename=\"{name}\"\r\nContent-Type: image/png\r\n\r\n".encode()
          + data + b"\r\n")
    text = raw_params if raw_params is not None else json.dumps(params or {})
    parts.append(f"--{boundary}\r\nContent-Disposition: form-data; "
                 f"name=\"params\"\r\n\r\n{text}\r\n".encode())
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return self.json("POST", "/api/jobs", data=body, headers={
        "Content-Type": f"multipart/form-data; boundary={boundary}"})

  def wait(self, job_id, states=("done", "failed", "cancelled"),
           timeout=240, until=None):
    """The job once it is in one of ``states`` (or ``until(job)``)."""
    deadline = time.monotonic() + timeout
    while True:
      status, job = self.json("GET", f"/api/jobs/{job_id}")
      assert status == 200, job
      if job["state"] in states or (until is not None and until(job)):
        return job
      assert time.monotonic() < deadline, (job, self.log()[-3000:])
      time.sleep(0.05)

  def rss_kb(self) -> int:
    with open(f"/proc/{self.proc.pid}/status", encoding="utf-8") as f:
      return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))

  def stop(self, timeout=60) -> int:
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGTERM)
      try:
        self.proc.wait(timeout)
      except subprocess.TimeoutExpired:
        self.proc.kill()
        self.proc.wait()
    self._log.close()
    return self.proc.returncode

  def kill(self) -> None:
    if self.proc.poll() is None:
      self.proc.send_signal(signal.SIGKILL)
      self.proc.wait(30)
    self._log.close()
