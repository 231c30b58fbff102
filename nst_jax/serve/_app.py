"""The web app of ``nst-serve`` (FastAPI on Starlette, served by uvicorn):
the page (``static/``, shipped in the package: no build step, no CDN) and
the JSON API it uses, documented by the framework's OpenAPI
(``/openapi.json``, read at ``/docs``).

API (every error is ``{"error": message, "param": name}`` with a 4xx
status, never a traceback):

* ``POST /api/jobs`` — multipart ``content`` (file), ``style`` (file,
  repeatable), ``params`` (a JSON object of ``nst-stylize`` flag names to
  values) → ``201 {"id": ...}``; 400 a file that is not an image or a bad
  param, 413 a decompression bomb or an upload over ``max_upload_mb``, 429
  a full queue.
* ``GET /api/jobs`` — the jobs, newest first; ``GET /api/jobs/{id}`` —
  ``{"id", "state", "iteration", "iterations", "loss", "error", ...}``.
* ``GET /api/jobs/{id}/preview.png``, ``/result.png``, ``/record.json``;
  ``GET /api/jobs/{id}/events`` — server-sent events, one ``job`` event
  (the job's JSON) at each change until it ends.
* ``DELETE /api/jobs/{id}`` — cancels (a running job stops after its
  current step and keeps the image it reached).
* ``GET /api/options`` — the parameters a job may set, their defaults,
  help and choices.

With a ``token`` every ``/api`` request needs ``Authorization: Bearer
<token>`` (or ``?token=`` where a browser cannot send a header: images,
events); the page asks for it once.
"""

import asyncio
import hmac
import json
import os
from importlib import resources
from typing import List

from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import (HTMLResponse, JSONResponse, Response,
                               StreamingResponse)
from starlette.exceptions import HTTPException

from nst_jax import io
from nst_jax.errors import NSTError
from nst_jax.serve import _jobs
from nst_jax.serve import _params
from nst_jax.serve import _worker

STATIC = resources.files("nst_jax.serve") / "static"
_MB = 1 << 20
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _check_token(token: str | None) -> None:
  if token is not None and not token.strip():
    raise NSTError("--token is empty: give a secret (an empty one would "
                   "let every request in), or leave --token out")


def check_host(host: str, token: str | None) -> None:
  """Refuses (``NSTError``) to listen beyond the loopback without a
  token."""
  _check_token(token)
  if host not in LOOPBACK and not token:
    raise NSTError(f"--host={host} opens the server to other machines: give "
                   "--token too (clients send it as a bearer header)")


def _error(status: int, message: str, param: str | None = None
           ) -> JSONResponse:
  return JSONResponse({"error": message, "param": param}, status_code=status)


def _hostname(value: str) -> str:
  """The host of a ``Host`` header or an ``Origin`` (``[::1]:8000`` →
  ``::1``, ``http://localhost:8000`` → ``localhost``)."""
  value = value.split("://", 1)[-1].split("/", 1)[0]
  if value.startswith("["):
    return value[1:value.find("]")]
  return value.rsplit(":", 1)[0] if value.count(":") == 1 else value


class Guard:
  """ASGI middleware in front of the app: with a ``token``, an ``/api/``
  request without it is answered 401; without one (the loopback), a
  request that names another host (DNS rebinding) or a change sent from
  another site's page (its ``Origin``) is answered 403; a request body
  over ``limit`` bytes (by its ``Content-Length``, or as it arrives) is
  answered 413 before the app reads any of it (bodies up to ``limit`` are
  buffered, then replayed)."""

  def __init__(self, app, *, limit: int, token: str | None):
    self.app, self.limit, self.token = app, limit, token

  def _foreign(self, scope) -> bool:
    """A loopback server's request from elsewhere: its ``Host`` is not a
    loopback name, or a change comes with another host's ``Origin``."""
    if self.token is not None:
      return False
    headers = Request(scope).headers
    if _hostname(headers.get("host", "127.0.0.1")) not in LOOPBACK:
      return True
    origin = headers.get("origin")
    return scope["method"] not in ("GET", "HEAD") and origin is not None and (
        _hostname(origin) not in LOOPBACK)

  def _authorized(self, scope) -> bool:
    if self.token is None or not scope["path"].startswith("/api/"):
      return True
    request = Request(scope)
    given = request.headers.get("authorization", "")
    given = given[7:] if given.lower().startswith("bearer ") else (
        request.query_params.get("token", ""))
    return hmac.compare_digest(given.encode(), self.token.encode())

  async def __call__(self, scope, receive, send):
    if scope["type"] != "http":
      return await self.app(scope, receive, send)
    if not self._authorized(scope):
      return await _error(401, "this server needs its token (Authorization: "
                          "Bearer <token>)", "token")(scope, receive, send)
    if self._foreign(scope):
      return await _error(403, "this server answers its own pages on the "
                          "loopback only (start it with --token to serve "
                          "others)", "host")(scope, receive, send)
    length = dict(scope["headers"]).get(b"content-length", b"")
    if length.isdigit() and int(length) > self.limit:
      return await self._refuse(scope, receive, send)
    body, more = [], True
    while more:
      message = await receive()
      if message["type"] != "http.request":
        return   # the client went away
      body.append(message.get("body", b""))
      more = message.get("more_body", False)
      if sum(map(len, body)) > self.limit:
        return await self._refuse(scope, receive, send)
    replayed = False

    async def replay():
      nonlocal replayed
      if not replayed:
        replayed = True
        return {"type": "http.request", "body": b"".join(body),
                "more_body": False}
      return await receive()
    await self.app(scope, replay, send)

  async def _refuse(self, scope, receive, send):
    response = _error(413, f"the upload is over this server's "
                      f"--max_upload_mb={self.limit / _MB:g}", "max_upload_mb")
    await response(scope, receive, send)


def create_app(store: _jobs.JobStore, worker: "_worker.Worker | None", *,
               token: str | None = None, max_upload_mb: float = 20.0
               ) -> FastAPI:
  """The app over ``store``; ``worker`` (started and stopped with the app;
  ``None``: jobs only queue) runs the jobs; ``token`` (or ``None``) guards
  ``/api/``; a request body is at most ``max_upload_mb`` MiB."""
  _check_token(token)

  async def lifespan(app):
    del app
    if worker is not None:
      worker.start()
    yield
    if worker is not None:
      await asyncio.to_thread(worker.stop)
    left = sum(j["state"] in ("queued", "running") for j in store.all())
    _worker.log.info("nst-serve stopped: %d jobs left to run at the next "
                     "start", left)

  app = FastAPI(title="nst_jax", version="0.1.0", docs_url=None,
                redoc_url=None, lifespan=lifespan,
                description="Neural style transfer jobs: upload a content "
                "and style images with nst-stylize's flags as params, watch "
                "the preview, download the PNG and its JSON record.")

  @app.exception_handler(RequestValidationError)
  async def invalid(request, exc):   # a missing field: the house's 400
    del request
    first = (exc.errors() or [{}])[0]
    name = str((first.get("loc") or ["request"])[-1])
    return _error(400, f"{name}: {first.get('msg', 'invalid')}", name)

  @app.exception_handler(HTTPException)
  async def http_error(request, exc):   # unknown paths and methods
    del request
    return _error(exc.status_code, str(exc.detail))

  def found(job_id: str):
    job = store.get(job_id)
    if job is None:
      return None, _error(404, f"no job {job_id!r}", "id")
    return job, None

  @app.post("/api/jobs", status_code=201, summary="Start a job",
            responses={400: {"description": "not an image, bad params"},
                       413: {"description": "too large"},
                       429: {"description": "the queue is full"}})
  def post_job(content: UploadFile = File(..., description="content image"),
               style: List[UploadFile] = File(
                   ..., description="style image(s)"),
               params: str = Form("{}", description="JSON object of "
                                  "nst-stylize flag names to values")):
    try:
      values = json.loads(params or "{}")
    except ValueError:
      return _error(400, "params is not JSON", "params")
    try:
      job = store.submit(content.file.read(), [s.file.read() for s in style],
                         values)
    except _jobs.QueueFull as e:
      return _error(429, str(e), "queue")
    except _jobs.UploadError as e:
      return _error(e.status, str(e), e.name)
    except _params.ParamError as e:
      return _error(400, str(e), e.name)
    return JSONResponse({"id": job["id"], "job": job}, status_code=201)

  @app.get("/api/jobs", summary="The jobs, newest first")
  def list_jobs():
    return {"jobs": store.all()}

  @app.get("/api/jobs/{job_id}", summary="A job's state")
  def get_job(job_id: str):
    job, error = found(job_id)
    return error or job

  @app.delete("/api/jobs/{job_id}", summary="Cancel a job")
  def cancel_job(job_id: str):
    job = store.cancel(job_id)
    return _error(404, f"no job {job_id!r}", "id") if job is None else job

  def job_file(job_id: str, name: str, media: str):
    job, error = found(job_id)
    if error:
      return error
    path = os.path.join(store.folder(job_id), name)
    # Read whole, then sent: the worker replaces the preview (atomically)
    # while it runs, and a file streamed from its path could change size
    # between the length sent and the bytes read.
    try:
      with open(path, "rb") as f:
        content = f.read()
    except FileNotFoundError:
      return _error(404, f"job {job_id} has no {name} yet ({job['state']})",
                    "id")
    headers = {"Cache-Control": "no-store"}
    if name != "preview.png":
      headers["Content-Disposition"] = (
          f'inline; filename="nst_{job_id}_{name}"')
    return Response(content, media_type=media, headers=headers)

  @app.get("/api/jobs/{job_id}/preview.png", summary="The current image",
           response_class=Response)
  def preview(job_id: str):
    return job_file(job_id, "preview.png", "image/png")

  @app.get("/api/jobs/{job_id}/result.png", summary="The result PNG",
           response_class=Response)
  def result(job_id: str):
    return job_file(job_id, "result.png", "image/png")

  @app.get("/api/jobs/{job_id}/record.json",
           summary="The result's JSON record (nst-stylize's)")
  def record(job_id: str):
    return job_file(job_id, "record.json", "application/json")

  @app.get("/api/jobs/{job_id}/events", summary="Live updates (SSE)",
           response_class=StreamingResponse)
  async def events(job_id: str, request: Request):
    _, error = found(job_id)
    if error:
      return error

    async def stream():
      seen = -1
      while True:
        version = store.version(job_id)
        job = store.get(job_id)
        if version != seen:
          seen = version
          yield f"event: job\ndata: {json.dumps(io.to_jsonable(job))}\n\n"
          if job["state"] in _jobs.FINISHED:
            return
        if await request.is_disconnected() or (
            worker is not None and worker.stopping.is_set()):
          return
        await asyncio.sleep(0.25)
    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store"})

  @app.get("/api/options", summary="The params a job may set")
  def options():
    return {"params": io.to_jsonable(_params.choices()),
            "max_size": store.limits.max_size,
            "max_iterations": store.limits.max_iterations,
            "max_upload_mb": max_upload_mb, "token": token is not None}

  def page(name: str, media: str):
    return Response((STATIC / name).read_bytes(), media_type=media)

  @app.get("/", include_in_schema=False)
  def index():
    return HTMLResponse((STATIC / "index.html").read_text(encoding="utf-8"))

  @app.get("/docs", include_in_schema=False)
  def docs():
    return HTMLResponse((STATIC / "docs.html").read_text(encoding="utf-8"))

  @app.get("/static/{name}", include_in_schema=False)
  def static(name: str):
    kinds = {"app.js": "text/javascript", "style.css": "text/css",
             "favicon.svg": "image/svg+xml"}
    if name not in kinds:
      return _error(404, f"no static file {name!r}")
    return page(name, kinds[name])

  app.add_middleware(Guard, limit=int(max_upload_mb * _MB), token=token)
  return app
