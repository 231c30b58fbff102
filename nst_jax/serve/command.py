"""``nst-serve``: a local web app to paint in the browser, with a JSON API.

  nst-serve                       # http://127.0.0.1:8000
  nst-serve --host=0.0.0.0 --port=8080 --token=SECRET --data_dir=~/nst

Open the page, choose a content photo and a style painting, pick the
controls and start: the painting forms live in the page (its preview, loss
curve, iteration and ETA), then download the PNG and its JSON record (the
same files ``nst-stylize`` writes with the same flags). The API the page
uses is at ``/docs`` (OpenAPI: ``/openapi.json``). One worker runs the jobs
one at a time through the library's run loop; jobs queue (``--max_queue``).

Everything lives under ``--data_dir``: uploads, job states, previews,
results, and each running job's resume state (nst-stylize's), so a restart
after a crash or ``kill -9`` continues the queued jobs and resumes the
running one from its last checkpoint. Any host but 127.0.0.1 (or
localhost) needs ``--token``, sent as ``Authorization: Bearer <token>``.
A job's params are nst-stylize's flags by name; the server's flags are
those below.
"""

import logging as std_logging
import os

from absl import flags

from nst_jax import cli
from nst_jax.errors import NSTError

flags.DEFINE_string("host", "127.0.0.1", "Address to listen on; any but "
                    "127.0.0.1/localhost/::1 needs --token.")
flags.DEFINE_integer("port", 8000, "TCP port (0: any free one, printed).",
                     lower_bound=0, upper_bound=65535)
flags.DEFINE_string("data_dir", "out/serve", "Where uploads, job states, "
                    "previews and results live (made if missing).")
flags.DEFINE_string("token", None, "Bearer token every API request must "
                    "carry (the page asks for it once).")
flags.DEFINE_float("max_upload_mb", 20.0, "Largest request body (all its "
                   "images together), MiB.", lower_bound=0.01)
flags.DEFINE_integer("max_queue", 16, "Jobs waiting or running at most; "
                     "more are refused with 429.", lower_bound=1)
flags.DEFINE_integer("max_size", 1024, "Largest output long edge a job may "
                     "ask for, px.", lower_bound=16)
flags.DEFINE_integer("max_iterations", 2000, "Most iterations a job may ask "
                     "for (all its levels together).", lower_bound=1)
flags.DEFINE_integer("checkpoint_every", 20, "Write a running job's resume "
                     "state every N iterations (and at a shutdown).",
                     lower_bound=1)
flags.DEFINE_float("preview_seconds", 1.0, "Seconds between two previews "
                   "of a running job.", lower_bound=0.05)
FLAGS = flags.FLAGS


def main(argv):
  say = cli.command_start(argv, False)
  # pylint: disable=g-import-not-at-top
  import socket
  import uvicorn
  from nst_jax import serve
  serve.check_host(FLAGS.host, FLAGS.token)
  cli.enable_compilation_cache()
  data_dir = os.path.expanduser(FLAGS.data_dir)
  store = serve.JobStore(
      os.path.join(data_dir, "jobs"), max_queue=FLAGS.max_queue,
      limits=serve.Limits(FLAGS.max_size, FLAGS.max_iterations))
  worker = serve.Worker(store, checkpoint_every=FLAGS.checkpoint_every,
                        preview_seconds=FLAGS.preview_seconds)
  app = serve.create_app(store, worker, token=FLAGS.token,
                         max_upload_mb=FLAGS.max_upload_mb)
  family = socket.AF_INET6 if ":" in FLAGS.host else socket.AF_INET
  sock = socket.socket(family, socket.SOCK_STREAM)
  sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
  try:
    sock.bind((FLAGS.host, FLAGS.port))
    sock.listen(128)   # connections wait from now on, until uvicorn serves
  except OSError as e:
    raise NSTError(f"cannot listen on {FLAGS.host}:{FLAGS.port}: "
                   f"{e.strerror or e}") from None
  port = sock.getsockname()[1]
  shown = f"[{FLAGS.host}]" if ":" in FLAGS.host else FLAGS.host
  waiting = sum(j["state"] in ("queued", "running") for j in store.all())
  say(f"nst-serve: http://{shown}:{port}/ (API: /docs), data in "
      f"{data_dir}, {waiting} jobs to run on {cli.device_description()}")
  std_logging.getLogger("nst_jax.serve").setLevel(std_logging.INFO)
  config = uvicorn.Config(app, log_level="warning",
                          timeout_graceful_shutdown=3)
  uvicorn.Server(config).run(sockets=[sock])


def run():
  """The ``nst-serve`` console command (and ``scripts/serve.py``)."""
  cli.run(main)


if __name__ == "__main__":
  run()
