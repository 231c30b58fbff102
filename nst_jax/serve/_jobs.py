"""The jobs of ``nst-serve``, on disk: one folder per job under
``<data_dir>/jobs/<id>/``, with its uploads (``content.<ext>``,
``style_<i>.<ext>``: the bytes sent, under names the server chooses),
``job.json`` (its state, written atomically at every change), and what its
run writes: ``preview.png``, ``result.png``, ``record.json`` (nst-stylize's
record) and, while it runs, ``result.resume.npz`` (nst-stylize's one resume
state, ``commands._resume``).

A job is ``queued``, ``running``, ``done``, ``failed`` or ``cancelled``.
``JobStore`` reads the folder back at start: a job that was ``running``
when the server died is queued again (the worker resumes it from its
state), so nothing accepted is lost. Ids are 12 hex digits drawn at
random; anything else names no job (an id is never a path).
"""

import json
import os
import re
import secrets
import threading
import time
from typing import Any, Dict, List, Sequence

from PIL import Image

from nst_jax import io
from nst_jax.errors import NSTError
from nst_jax.serve import _params

STATES = ("queued", "running", "done", "failed", "cancelled")
FINISHED = ("done", "failed", "cancelled")
_ID = re.compile(r"^[0-9a-f]{12}$")
# Fields of ``GET /api/jobs/{id}`` (and of job.json).
PUBLIC = ("id", "state", "iteration", "iterations", "loss", "error",
          "created", "started", "finished", "seconds", "eta_seconds",
          "params", "size", "curve", "preview", "attempts", "level",
          "levels")
_CURVE_POINTS = 400


class UploadError(NSTError):
  """A bad upload: ``field`` is the form field (``content``, ``style``),
  ``status`` the HTTP status it calls for."""

  def __init__(self, field: str, message: str, status: int = 400):
    super().__init__(message)
    self.name = field
    self.status = status


class QueueFull(NSTError):
  """The queue holds as many jobs as the server takes."""


class JobStore:
  """The jobs under ``root`` (``<data_dir>/jobs``), thread-safe. The worker
  waits on ``take``; the web handlers call ``submit``, ``get``, ``all``,
  ``cancel``; ``update`` changes a job's fields and writes its
  ``job.json``. ``version(id)`` grows at each change (the live events)."""

  def __init__(self, root: str, *, max_queue: int = 16,
               limits: _params.Limits = _params.Limits(),
               max_pixels: int = io.DEFAULT_MAX_PIXELS):
    self.root = os.path.abspath(root)
    self.max_queue = max_queue
    self.limits = limits
    self.max_pixels = max_pixels
    self._jobs: Dict[str, Dict[str, Any]] = {}
    self._versions: Dict[str, int] = {}
    self._cancel: set = set()
    self._reserved = 0
    self._changed = threading.Condition()
    os.makedirs(self.root, exist_ok=True)
    self._load()

  # -- on disk ---------------------------------------------------------------

  def folder(self, job_id: str) -> str:
    """The folder of job ``job_id`` (which must be a job's id)."""
    if not _ID.match(job_id):
      raise ValueError(f"not a job id: {job_id!r}")
    return os.path.join(self.root, job_id)

  def _load(self) -> None:
    for name in sorted(os.listdir(self.root)):
      path = os.path.join(self.root, name, "job.json")
      if not _ID.match(name) or not os.path.isfile(path):
        continue
      try:
        with open(path, encoding="utf-8") as f:
          job = json.load(f)
      except (OSError, ValueError):
        continue   # a job whose folder was being made when the server died
      if job.get("state") == "running":   # the server died under it
        job["state"] = "queued"
      self._jobs[name] = job
      self._versions[name] = 0

  def _write(self, job: Dict[str, Any]) -> None:
    io.save_json(os.path.join(self.folder(job["id"]), "job.json"), job)

  # -- the web side ----------------------------------------------------------

  def _pending(self) -> int:
    return sum(j["state"] in ("queued", "running")
               for j in self._jobs.values()) + self._reserved

  def submit(self, content: bytes, styles: Sequence[bytes],
             params: Any) -> Dict[str, Any]:
    """Stores a new queued job: the ``content`` and ``styles`` files (each
    read as an image, refused with ``UploadError`` naming its field) and
    its ``params`` (``_params.resolve``: ``ParamError`` naming the
    parameter). Raises ``QueueFull`` when ``max_queue`` jobs wait or
    run."""
    if not styles:
      raise UploadError("style", "style: at least one style image is needed")
    with self._changed:
      if self._pending() >= self.max_queue:
        raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting "
                        "or running): try again later")
      self._reserved += 1
    job_id = secrets.token_hex(6)
    folder = self.folder(job_id)
    try:
      os.makedirs(folder)
      content_path, content_shape = self._store(folder, "content",
                                                "content", content)
      stored = [self._store(folder, f"style_{i}", "style", data)
                for i, data in enumerate(styles)]
      style_paths = [path for path, _ in stored]
      values = _params.resolve(params, content=content_path,
                               styles=style_paths,
                               output=os.path.join(folder, "result.png"),
                               limits=self.limits)
      setup = _params.job_setup(values)
      _params.check_sizes(setup, content_shape, [s for _, s in stored])
      levels = setup.levels
      job = {"id": job_id, "state": "queued", "created": time.time(),
             "params": params, "values": values, "iteration": 0,
             "iterations": sum(n for _, n in levels), "loss": None,
             "error": None, "started": None, "finished": None,
             "seconds": 0.0, "eta_seconds": None, "size": levels[-1][0],
             "levels": [list(l) for l in levels], "level": 0, "curve": [],
             "preview": 0, "attempts": 0}
      self._write(job)
    except BaseException:
      with self._changed:
        self._reserved -= 1
      _remove_tree(folder)
      raise
    with self._changed:
      self._reserved -= 1
      self._jobs[job_id] = job
      self._versions[job_id] = 0
      self._changed.notify_all()
    return self.public(job)

  def _store(self, folder: str, stem: str, field: str, data: bytes
             ) -> tuple:
    """Writes an uploaded file as ``<stem>.<ext>`` (its format's extension)
    once ``io.load_image`` reads it, and returns its path and ``(H, W)``;
    the sender's file name is never used."""
    if not data:
      raise UploadError(field, f"{field}: the file is empty")
    tmp = os.path.join(folder, stem + ".upload")
    with open(tmp, "wb") as f:
      f.write(data)
    try:
      try:   # the header first: a decompression bomb is refused undecoded
        with Image.open(tmp) as im:
          kind, (width, height) = (im.format or "img").lower(), im.size
      except Image.DecompressionBombError:
        raise UploadError(field, f"{field}: a decompression bomb (more "
                          "pixels than Pillow decodes)", 413) from None
      except OSError:
        raise UploadError(field, f"{field}: not an image (Pillow cannot "
                          "read it)") from None
      if width * height > self.max_pixels:
        raise UploadError(field, f"{field}: a decompression bomb or too "
                          f"large an image ({width}x{height} pixels, over "
                          f"{self.max_pixels})", 413)
      try:
        shape = io.load_image(tmp, max_pixels=self.max_pixels).shape[:2]
      except NSTError as e:
        raise UploadError(field, f"{field}: "
                          f"{str(e).replace(tmp, 'the file')}") from None
    except UploadError:
      os.remove(tmp)
      raise
    ext = {"jpeg": "jpg", "tiff": "tif"}.get(kind, kind)
    path = os.path.join(folder, f"{stem}.{re.sub(r'[^a-z0-9]', '', ext)}")
    os.replace(tmp, path)
    return path, shape

  def public(self, job: Dict[str, Any]) -> Dict[str, Any]:
    return {k: job.get(k) for k in PUBLIC}

  def get(self, job_id: str) -> Dict[str, Any] | None:
    with self._changed:
      job = self._jobs.get(job_id) if _ID.match(job_id) else None
      return None if job is None else self.public(job)

  def all(self) -> List[Dict[str, Any]]:
    """Every job, newest first, without its loss curve."""
    with self._changed:
      jobs = sorted(self._jobs.values(), key=lambda j: j["created"],
                    reverse=True)
      return [{k: v for k, v in self.public(j).items() if k != "curve"}
              for j in jobs]

  def version(self, job_id: str) -> int:
    with self._changed:
      return self._versions.get(job_id, -1)

  def cancel(self, job_id: str) -> Dict[str, Any] | None:
    """Cancels a queued job now, a running one after its current step (the
    worker keeps the image it reached); a finished job is left as is."""
    with self._changed:
      job = self._jobs.get(job_id) if _ID.match(job_id) else None
      if job is None:
        return None
      if job["state"] == "queued":
        self._set(job, state="cancelled", finished=time.time())
      elif job["state"] == "running":
        self._cancel.add(job_id)
      return self.public(job)

  # -- the worker side -------------------------------------------------------

  def take(self, stop: threading.Event, timeout: float = 0.5
           ) -> Dict[str, Any] | None:
    """The oldest queued job, marked running (``None`` once ``stop`` is
    set)."""
    with self._changed:
      while not stop.is_set():
        queued = [j for j in self._jobs.values() if j["state"] == "queued"]
        if queued:
          job = min(queued, key=lambda j: j["created"])
          self._set(job, state="running", started=time.time(),
                    attempts=job.get("attempts", 0) + 1, error=None)
          return dict(job)
        self._changed.wait(timeout)
    return None

  def cancel_requested(self, job_id: str) -> bool:
    with self._changed:
      return job_id in self._cancel

  def update(self, job_id: str, **fields) -> None:
    """Sets fields of a job and writes its job.json; a loss curve point
    (``point=(iteration, loss)``) is appended, thinned to at most
    ``_CURVE_POINTS``."""
    with self._changed:
      job = self._jobs[job_id]
      point = fields.pop("point", None)
      if point is not None:
        curve = job["curve"]
        if not curve or curve[-1][0] < point[0]:
          curve.append(list(point))
        if len(curve) > _CURVE_POINTS:
          del curve[1:-1:2]
      if fields.get("state") in FINISHED:
        self._cancel.discard(job_id)
      self._set(job, **fields)

  def _set(self, job: Dict[str, Any], **fields) -> None:
    job.update(fields)
    self._write(job)
    self._versions[job["id"]] = self._versions.get(job["id"], 0) + 1
    self._changed.notify_all()


def _remove_tree(folder: str) -> None:
  if not os.path.isdir(folder):
    return
  for name in os.listdir(folder):
    os.remove(os.path.join(folder, name))
  os.rmdir(folder)
