"""``nst-serve``'s parts: a local web app that paints in the browser.

``JobStore`` keeps the jobs on disk (``_jobs``), ``Worker`` runs them one at
a time through the library's run loop (``_worker``), ``create_app`` is the
FastAPI app with the page and the JSON API (``_app``); a job's parameters
are ``nst-stylize``'s flags (``_params``). The command is
``nst_jax.serve.command``.
"""

from nst_jax.serve._app import Guard, check_host, create_app
from nst_jax.serve._jobs import (FINISHED, STATES, JobStore, QueueFull,
                                 UploadError)
from nst_jax.serve._params import Limits, ParamError, resolve
from nst_jax.serve._worker import Worker, eta_seconds, preview_image

__all__ = ["FINISHED", "Guard", "check_host", "JobStore", "Limits", "ParamError",
           "QueueFull", "STATES", "UploadError", "Worker", "create_app",
           "eta_seconds", "preview_image", "resolve"]
