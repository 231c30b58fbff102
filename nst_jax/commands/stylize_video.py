"""``nst-stylize-video``: paints a video in the style of a painting, frame by
frame, with temporal consistency (Ruder, Dosovitskiy & Brox, GCPR 2016).

  nst-stylize-video --input=clip.mp4 --style=painting.jpg --output=out.mp4
  nst-stylize-video --input=frames_dir/ --fps=24 --style=… --output=out.mp4

(``python scripts/stylize_video.py`` runs the same command from a checkout.)

Each frame starts from the previous stylised frame warped by the optical
flow (OpenCV DIS or Farnebäck) and a temporal loss ties it to that frame
outside occlusions and motion boundaries (``nst_jax.video``). Finished
frames are kept as PNGs in a work folder (``<output>_frames/`` unless
``--work_dir``) and the run's state in ``<output>.resume.npz`` — the one
resumable state of the commands (``commands._resume``: the frame it is at,
the flags, the inputs' sha256, and with ``--save_every`` the running
frame's solver state): Ctrl-C stops after the current frame and writes the
video so far; ``--resume=<output>`` continues after a Ctrl-C, a crash or
kill -9, inside the frame it was painting when its state was saved. The video is
written atomically at the end, with the input's audio track when it has
one, and beside it a JSON record (every flag, per-frame counts and loss
terms, the temporal consistency error of each pair of frames and of the
video, seconds per frame). ``--save_flows`` also keeps each flow (.npy) and
consistency mask (.png) in the work folder.
"""

import json
import os
import sys
import time

import numpy as np
from absl import flags

from nst_jax import cli
from nst_jax import io
from nst_jax import transfer
from nst_jax import vgg
from nst_jax import video
from nst_jax import video_io
from nst_jax.commands import _resume
from nst_jax.errors import NSTError

_SHARED = cli.define_flags("style", "size", "model", "loss", "representation",
                           "solver", "init", "compute", "output", "schedule")
flags.DEFINE_string("input", None, "Input video (any format ffmpeg reads) or "
                    "a folder of frames (images in name order).")
flags.DEFINE_string("output", "out/stylized.mp4", "Output video (.mp4, .mov, "
                    ".mkv, .avi, .webm, .m4v); a JSON record with the same "
                    "name is written beside it.")
flags.DEFINE_float("temporal_weight", video.Temporal().weight, "Weight λ of "
                   "the temporal loss (Ruder et al. eq. 7; 0: none).",
                   lower_bound=0)
cli.define_numbers("long_term", video.Temporal().offsets, "Frames back that "
                   "the temporal loss looks at: 1 is the short-term loss, "
                   "e.g. 1,2,4 the long-term one (Ruder et al. §4.2).",
                   kind=int, lower_bound=1)
flags.DEFINE_bool("warm_start", True, "Start each frame from the previous "
                  "stylised frame warped by the flow (else from --init).")
flags.DEFINE_bool("independent", False, "Stylise every frame on its own "
                  "(no temporal loss, no warm start): the baseline the "
                  "temporal consistency is measured against.")
flags.DEFINE_integer("first_iterations", 0, "Iterations of the first frame "
                     "(0: --iterations).", lower_bound=0)
flags.DEFINE_enum("flow", "dis", list(video.FLOWS), "Optical flow: OpenCV's "
                  "DIS (dense inverse search) or Farnebäck.")
flags.DEFINE_float("fps", 25.0, "Frame rate of a folder of frames (a video "
                   "keeps its own).", lower_bound=1e-3)
flags.DEFINE_integer("max_frames", 0, "Stylise only the first N frames (0: "
                     "all).", lower_bound=0)
flags.DEFINE_string("work_dir", None, "Folder of the finished frames (PNG) "
                    "and their records (default: <output>_frames/).")
flags.DEFINE_string("resume", None, "Continue an interrupted run (crash, "
                    "kill, Ctrl-C): its output video, JSON record or "
                    "<output>.resume.npz state (written after every frame, "
                    "every --save_every iterations of a frame and on "
                    "Ctrl-C). Flags are the recorded ones; a flag given must "
                    "agree, except --quiet, --max_frames, --save_every.")
flags.DEFINE_integer("save_every", 0, "Also write the state every N "
                     "iterations of a frame (0: after each frame), so that "
                     "--resume goes on inside the frame.", lower_bound=0)
flags.DEFINE_bool("save_flows", False, "Also keep each frame's flow to the "
                  "previous frame (flow_NNNNN.npy) and consistency mask "
                  "(mask_NNNNN.png) in the work folder.")
flags.DEFINE_bool("audio", True, "Copy the input's audio track (when it has "
                  "one) into the output.")

FLAGS = flags.FLAGS
_RECORDED = _SHARED + ["input", "output", "temporal_weight", "long_term",
                       "warm_start", "independent", "first_iterations", "flow",
                       "fps", "max_frames", "work_dir", "save_every"]
# Flags that a resumed run may change (they do not change the frames).
_RESUMABLE_CHANGES = ("quiet", "max_frames", "save_every")
# The work folder's state file of versions before the one resume format.
_OLD_STATE = "run.json"
_COMMAND = "nst-stylize-video"


def _check_paths(output: str, source: str, work_dir: str) -> str:
  if os.path.splitext(output)[1].lower() not in video_io.VIDEO_EXTENSIONS:
    raise NSTError(f"--output must be a video file ({', '.join(video_io.VIDEO_EXTENSIONS)}), got {output}")
  absolute = lambda p: os.path.realpath(os.path.abspath(p))
  if absolute(output) == absolute(source) or (
      os.path.exists(output) and os.path.exists(source) and
      os.path.samefile(output, source)):
    raise NSTError(f"refusing to overwrite input {output}")
  if os.path.isdir(source) and absolute(work_dir) == absolute(source):
    raise NSTError(f"--work_dir {work_dir} is the input frames folder: "
                   "choose another")
  if os.path.isdir(output):
    raise NSTError(f"--output {output} is a directory")
  return os.path.splitext(output)[0] + ".json"


def _frame_path(work_dir: str, index: int, kind: str = "frame",
                ext: str = ".png") -> str:
  return os.path.join(work_dir, f"{kind}_{index:05d}{ext}")


def _finished(work_dir: str, count: int):
  """The first ``count`` finished frames of the work folder and their
  records (a resumed run's)."""
  frames, records = [], []
  for index in range(count):
    png, record = _frame_path(work_dir, index), _frame_path(
        work_dir, index, ext=".json")
    if not (os.path.isfile(png) and os.path.isfile(record)):
      raise NSTError(f"--resume: frame {index} is missing from {work_dir}: "
                     "the run cannot go on (start again)")
    frames.append(io.load_image(png))
    with open(record, encoding="utf-8") as f:
      records.append(json.load(f))
  return frames, records


def _frame_record(r: video.FrameResult) -> dict:
  return {"frame": r.index, "iterations": r.iterations,
          "function_evaluations": r.function_evaluations,
          "stop_reason": r.status, "seconds": r.seconds, "terms": r.terms,
          "temporal_error": r.temporal_error}


def main(argv):
  say = cli.command_start(argv, FLAGS.quiet)
  resumed, resumed_meta = None, None
  if FLAGS.resume:
    state = _resume.state_path(FLAGS.resume, video_io.VIDEO_EXTENSIONS)
    old = os.path.join(os.path.splitext(state[:-len(_resume.SUFFIX)])[0]
                       + "_frames", _OLD_STATE)
    if not os.path.exists(state) and os.path.isfile(old):
      raise NSTError(f"--resume: {os.path.dirname(old)} holds a run of an "
                     f"older nst-stylize-video ({_OLD_STATE}), which this "
                     "version cannot continue: start again")
    resumed, resumed_meta = _resume.load(state, command=_COMMAND)
    _resume.apply_recorded(resumed_meta, _RECORDED, resumed.iteration,
                           changeable=_RESUMABLE_CHANGES)
    cli.apply_deterministic()   # a recorded --deterministic, before any jax
  cli.enable_compilation_cache()
  defaults_message = cli.resolve_device_defaults()
  if not FLAGS.input or not FLAGS.style:
    raise NSTError("--input and --style are required")
  work_dir = FLAGS.work_dir or os.path.splitext(FLAGS.output)[0] + "_frames"
  record_path = _check_paths(FLAGS.output, FLAGS.input, work_dir)
  for style_path in FLAGS.style:
    if os.path.exists(style_path) and os.path.exists(FLAGS.output) and (
        os.path.samefile(style_path, FLAGS.output)):
      raise NSTError(f"refusing to overwrite input {FLAGS.output}")
  config = cli.transfer_config()
  if FLAGS.style_weight is None:   # recorded as the β the run used
    FLAGS.style_weight = (config.weights.style,)
  temporal = (video.INDEPENDENT if FLAGS.independent else video.Temporal(
      weight=FLAGS.temporal_weight, offsets=tuple(FLAGS.long_term),
      warm_start=FLAGS.warm_start))
  temporal = video.Temporal(temporal.weight, temporal.offsets,
                            temporal.warm_start, FLAGS.first_iterations)
  temporal.check()

  clip = video_io.read_clip(FLAGS.input, fps=FLAGS.fps,
                            max_frames=FLAGS.max_frames)
  # Every frame through nst-stylize's levels (config.schedule); the last is
  # the output size (--scales overrides --size).
  levels = config.schedule.levels(FLAGS.size, FLAGS.iterations)
  size = levels[-1][0]
  shape = video_io.even_shape(io.long_edge_shape(clip.frames[0].shape[:2],
                                                 size))
  if max(shape) != size:   # H.264 frames have even sides: one px fewer
    if config.schedule.scales is not None:
      raise NSTError(f"--scales: the last ({size}) must be even: video "
                     f"frames have even sides, here {shape[1]}x{shape[0]}")
    levels = config.schedule.levels(max(shape), FLAGS.iterations)
    size = levels[-1][0]
  transfer.check_image_size(config, shape)
  transfer.check_memory(config, shape)
  frames = [io.resize_to(f, shape) for f in clip.frames]
  # One level takes the styles at the output's style size; several resize
  # them at every level (video.stylize_video), as nst-stylize does.
  styles = [io.load_image(p) for p in FLAGS.style]
  if len(levels) == 1:
    styles = [io.resize_long_edge(s, transfer.style_size(
        size, config.schedule.style_scale)) for s in styles]
  values = cli.flag_values(_RECORDED)
  inputs = [FLAGS.input, *FLAGS.style]
  state_file = _resume.state_path(FLAGS.output, video_io.VIDEO_EXTENSIONS)
  frame_state = None
  if resumed is not None:
    _resume.check_inputs(resumed_meta, inputs)
    at = int(resumed_meta.get("stage", {}).get("frame", 0))
    done, records = _finished(work_dir, min(at, len(frames)))
    if resumed.solver and at < len(frames):   # inside frame `at`
      frame_state = resumed
  else:
    # An unfinished run (its state) or a finished one's frames: the state
    # may exist before any frame is (a crash inside the first frame).
    if os.path.exists(state_file):
      raise NSTError(f"{state_file} holds an unfinished run of "
                     f"{FLAGS.output}: --resume={FLAGS.output} to continue "
                     f"it, or remove it (and {work_dir}) to start again")
    if os.path.isfile(_frame_path(work_dir, 0)):
      raise NSTError(f"work folder {work_dir} holds frames of an earlier "
                     "run: remove the folder, or give another --work_dir")
    done, records = [], []
  digests = {p: _resume.digest(p) for p in dict.fromkeys(inputs)}

  def save_state(frame: int, state=None):
    _resume.save(state_file, state, params=values, inputs=digests,
                 stage={"frame": frame}, command=_COMMAND, protect=inputs)

  params = vgg.load_params(FLAGS.weights or FLAGS.network)
  if vgg.network_of(params) != FLAGS.network:
    raise NSTError(f"--weights {FLAGS.weights} hold {vgg.network_of(params)}, "
                   f"not --network={FLAGS.network}")
  if resumed is None:
    save_state(0)
  h, w = shape
  if defaults_message:
    say(defaults_message)
  say(f"nst_jax video: {len(frames)} frames of {w}x{h} at {clip.fps:g} fps, "
      f"{FLAGS.network}, "
      + ", ".join(f"{s} px: {n} iterations" for s, n in levels)
      + " per frame, "
      f"{'independent frames' if FLAGS.independent else 'temporal weight %g' % temporal.weight}"
      f" on {cli.device_description()}"
      + (f"; resuming after {len(done)} finished frames" if done else ""))
  say(transfer.tiling_message(config, shape))

  bars = {}
  def on_progress(index, p):
    # One bar per frame and level (a level starts again at iteration 0).
    key = (index, p.iterations)
    if key not in bars or (p.iteration == 0 and bars[key][1] > 0):
      for bar, _ in bars.values():
        bar.close()
      bars.clear()
      label = f"frame {index + 1}/{len(frames)}"
      bars[key] = (cli.ProgressBar(p.iterations, quiet=FLAGS.quiet,
                                   label=label), 0)
    bar = bars[key][0]
    bars[key] = (bar, p.iteration)
    bar.update(p.iteration, None, p.value)

  started = time.perf_counter()
  new_frames = []
  def on_frame(r: video.FrameResult):
    io.save_image(_frame_path(work_dir, r.index), r.image)
    if FLAGS.save_flows and r.flow is not None:
      with open(_frame_path(work_dir, r.index, "flow", ".npy"), "wb") as f:
        np.save(f, r.flow)
      io.save_image(_frame_path(work_dir, r.index, "mask"),
                    np.repeat(r.mask[..., None], 3, axis=-1))
    record = _frame_record(r)
    io.save_json(_frame_path(work_dir, r.index, ext=".json"), record)
    save_state(r.index + 1)   # after the frame's files: it is finished
    records.append(record)
    new_frames.append(r.index)
    for bar, _ in bars.values():
      bar.close()
    bars.clear()
    elapsed = time.perf_counter() - started
    left = len(frames) - r.index - 1
    eta = elapsed / len(new_frames) * left
    error = ("" if r.temporal_error is None
             else f", temporal error {r.temporal_error:.4f}")
    say(f"frame {r.index + 1}/{len(frames)}: {r.iterations} iterations, "
        f"{r.seconds:.1f} s{error}; {100 * (r.index + 1) // len(frames)}% "
        f"of the video, ETA {eta:.0f} s")

  stopper = cli.StopOnInterrupt("stopping after the current frame; Ctrl-C "
                                "again to abort")
  with stopper:
    try:
      result = video.stylize_video(
          params, frames, styles, config, temporal,
          flow=video.FLOWS[FLAGS.flow], previous=done, on_frame=on_frame,
          on_progress=None if FLAGS.quiet else on_progress,
          should_stop=stopper.stop_requested,
          checkpoint_every=FLAGS.save_every,
          on_checkpoint=lambda index, state: save_state(index, state),
          resume=frame_state)
    finally:
      for bar, _ in bars.values():
        bar.close()
  errors = [r["temporal_error"] for r in records
            if r.get("temporal_error") is not None]
  seconds = [r["seconds"] for r in records]
  interrupted = result.interrupted
  audio = FLAGS.audio and clip.has_audio
  record = {
      "params": values,
      "inputs": {p: d for p, d in digests.items() if d is not None},
      "frames": len(result.frames),
      "frames_in_input": len(frames),
      "fps": clip.fps,
      "size": [w, h],
      "audio_copied": bool(audio),
      "stop_reason": "interrupted" if interrupted else "finished",
      "temporal_consistency": {
          "mean_abs_error": float(np.mean(errors)) if errors else None,
          "per_pair": errors,
          "measure": "mean |x_i - warp(x_{i-1}, flow_{i->i-1})| outside "
                     "the consistency mask, pixels in [0, 1]",
      },
      "seconds_per_frame": float(np.mean(seconds)) if seconds else None,
      "per_frame": records,
      "work_dir": work_dir,
      "device": cli.device_description(),
      "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
  }
  if resumed is not None:
    record["resumed_at_frame"] = int(resumed_meta["stage"].get("frame", 0))
  video_io.write_video(FLAGS.output, result.frames, clip.fps,
                       audio_from=FLAGS.input if audio else None,
                       protect=inputs)
  io.save_json(record_path, record, protect=inputs)
  mean = record["temporal_consistency"]["mean_abs_error"]
  say(f"{'interrupted: ' if interrupted else ''}wrote {FLAGS.output} "
      f"({len(result.frames)}/{len(frames)} frames"
      f"{', audio copied' if audio else ''}) and {record_path}: "
      f"{record['seconds_per_frame']:.1f} s per frame"
      + ("" if mean is None else f", temporal error {mean:.4f}"))
  if interrupted:
    say(f"continue with: nst-stylize-video --resume={FLAGS.output}")
    sys.exit(130)
  _resume.remove(state_file)


def run():
  """The ``nst-stylize-video`` console command."""
  cli.run(main)


if __name__ == "__main__":
  run()
