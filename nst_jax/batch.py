"""Folders of photos: every content image × every style as batched programs.

A batch is the Cartesian product of content images and the cells of a style
grid (``grid.GridAxes``: style images, layer sets, α, β, γ, seeds); each
(content, cell) pair is one transfer of Gatys, Ecker & Bethge (2016) — a
*job*. Contents are grouped into buckets of equal shape (``buckets``); the
jobs of a bucket run as ONE compiled program: the grid's cells
(``grid.cell_data``: one row of targets and weights per job) minimised
together under ``jax.vmap`` in one ``while_loop``, sharded over the devices
of a mesh (``sharded.minimize_cells``), in chunks sized to the memory
estimate (``grid.default_chunk_size``). Every chunk of a bucket is padded to
the same number of cells, so each shape compiles once, and the network's
parameters are prepared once for the whole batch.

``stylize_batch(params, contents, styles, axes, config)`` yields one
``Output`` per job as its chunk finishes, so a caller can write results as
they come (``nst-stylize --output_dir`` does) and a run stopped half-way
keeps what it finished. ``find_images`` expands a folder, a glob or a comma
list into image files and ``output_names`` names the results
``<content>_<style>`` (plus the grid axes that vary).

Array contract: images are float32 ``(H, W, 3)`` RGB in [0, 1]; contents are
used at their own shapes (resize them first, e.g. ``io.resize_to`` with
``io.long_edge_shape``), styles at any size.
"""

import glob
import os
import time
from typing import (Any, Callable, Dict, Iterable, Iterator, List, NamedTuple,
                    Sequence, Tuple)

import numpy as np
from jax.sharding import Mesh

from nst_jax import grid
from nst_jax import sharded
from nst_jax import transfer
from nst_jax import vgg
from nst_jax.errors import NSTError, param

# The files a folder or a glob contributes (an explicitly named file is taken
# whatever its name; a bad one fails alone when it is read).
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff",
                  ".webp", ".ppm", ".pgm", ".pnm")


# --- naming the inputs and the outputs ------------------------------------------


def _is_pattern(text: str) -> bool:
  return any(ch in text for ch in "*?[")


def _image_names(names: Iterable[str]) -> List[str]:
  return sorted(n for n in names if not n.startswith(".")
                and n.lower().endswith(IMAGE_SUFFIXES))


def find_images(spec: str | Sequence[str], *, what: str = "content"
                ) -> List[str]:
  """The image files that ``spec`` names, in order, each once.

  ``spec`` is a path or a sequence of them, and a path holding commas that
  is not an existing file is a comma list. Each item is a folder (its image
  files, ``IMAGE_SUFFIXES``, sorted by name, not recursive, hidden files
  left out), a glob pattern (its matching image files, sorted), or a file
  (kept as given, even if missing or unreadable: reading it fails for it
  alone). Raises ``NSTError`` (naming parameter ``what``) for a folder or a
  pattern with no image, or for no item at all.
  """
  items = [spec] if isinstance(spec, str) else list(spec or ())
  parts = []
  for item in items:
    item = os.fspath(item)
    split = [item] if os.path.exists(item) else item.split(",")
    parts += [p.strip() for p in split if p.strip()]
  if not parts:
    raise NSTError(f"{param(what)} names no image")
  found = []
  for part in parts:
    if os.path.isdir(part):
      names = _image_names(n for n in os.listdir(part)
                           if os.path.isfile(os.path.join(part, n)))
      if not names:
        raise NSTError(f"no images in the folder {part} ({param(what)}; "
                       f"looked for {' '.join(IMAGE_SUFFIXES)})")
      found += [os.path.join(part, n) for n in names]
    elif _is_pattern(part) and not os.path.exists(part):
      matches = sorted(m for m in glob.glob(part) if os.path.isfile(m)
                       and m.lower().endswith(IMAGE_SUFFIXES))
      if not matches:
        raise NSTError(f"no images match {part} ({param(what)})")
      found += matches
    else:
      found.append(part)
  return list(dict.fromkeys(found))


class Job(NamedTuple):
  """One result of a batch: ``content`` indexes the content images and
  ``cell`` is a grid cell (``GridAxes.cells``; its ``style`` indexes the
  style images)."""
  content: int
  cell: Dict[str, Any]


def jobs(contents: int, axes: grid.GridAxes) -> List[Job]:
  """Every content (``contents`` of them) × every cell of ``axes``, the
  content varying slowest (the order of ``stylize_batch``'s outputs)."""
  cells = axes.cells()
  return [Job(i, cell) for i in range(contents) for cell in cells]


# Short names of the axes in output names (the value follows a '-').
_AXIS_NAMES = {"style_layer_sets": "style_layers",
               "style_layer_weights": "style_layer_weights"}


def _stem(path: str) -> str:
  return os.path.splitext(os.path.basename(path))[0]


def _unique_stems(paths: Sequence[str], what: str) -> List[str]:
  stems = [_stem(p) for p in paths]
  seen: Dict[str, str] = {}
  for path, stem in zip(paths, stems):
    if stem in seen:
      raise NSTError(f"two {param(what)} images are named {stem!r} "
                     f"({seen[stem]} and {path}): their results would have "
                     "the same name; rename one")
    seen[stem] = path
  return stems


def output_names(content_paths: Sequence[str], style_paths: Sequence[str],
                 batch_jobs: Sequence[Job], axes: grid.GridAxes) -> List[str]:
  """The file stem of each job's result: ``<content>_<style>`` (the file
  names without their extensions), followed by ``_<axis>-<value>`` for each
  other axis of ``axes`` with several values (a layer set or a list of layer
  weights by its position on its axis). Refuses two contents or two styles
  of the same name, and axes whose values repeat (``NSTError``)."""
  contents = _unique_stems(content_paths, "content")
  styles = _unique_stems(style_paths, "style")
  varying = [n for n in axes.varying() if n != "style"]
  names = []
  for job in batch_jobs:
    name = f"{contents[job.content]}_{styles[job.cell['style']]}"
    for axis in varying:
      value = job.cell[axis]
      if axis in _AXIS_NAMES:
        value = getattr(axes, axis).index(value)
      elif isinstance(value, float):
        value = f"{value:g}"
      name += f"_{_AXIS_NAMES.get(axis, axis)}-{value}"
    names.append(name)
  if len(set(names)) != len(names):
    repeated = next(n for n in names if names.count(n) > 1)
    raise NSTError(f"two results would be named {repeated!r}: an axis "
                   "repeats a value")
  return names


# --- buckets and the batched run ------------------------------------------------


class Bucket(NamedTuple):
  """Contents of one shape ``(H, W)``: their indices, in order."""
  shape: Tuple[int, int]
  contents: Tuple[int, ...]


def buckets(shapes: Sequence[Tuple[int, int]]) -> List[Bucket]:
  """The indices of ``shapes`` grouped by equal ``(H, W)``, buckets in the
  order of their first member."""
  groups: Dict[Tuple[int, int], List[int]] = {}
  for i, shape in enumerate(shapes):
    groups.setdefault(tuple(int(s) for s in shape[:2]), []).append(i)
  return [Bucket(shape, tuple(members)) for shape, members in groups.items()]


class Output(NamedTuple):
  """The result of job ``index`` (of ``jobs(len(contents), axes)``):
  ``image`` float32 ``(H, W, 3)`` in [0, 1]; the final weighted loss terms
  (``transfer.TERMS``) and its loss records (``grid.CellsResult``);
  iterations, evaluations and stop reason
  (``solvers.status_name``: ``interrupted`` when ``should_stop`` ended
  it); its ``bucket`` (index into ``buckets``), the ``cells`` of its
  compiled ``chunk`` (its position in the bucket), the chunk's ``cells``
  (padding included) and its wall ``seconds`` (targets, optimisation and
  final terms of all its cells together)."""
  index: int
  job: Job
  image: np.ndarray
  terms: Dict[str, float]
  iterations: int
  function_evaluations: int
  status: str
  bucket: int
  chunk: int
  cells: int
  seconds: float
  loss_history: Sequence[Dict[str, Any]] = ()


def stylize_batch(params, contents: Sequence[np.ndarray],
                  styles: Sequence[np.ndarray], axes: grid.GridAxes,
                  config: transfer.TransferConfig, *,
                  skip: Iterable[int] = (), mesh: Mesh | None = None,
                  chunk_size: int | None = None,
                  on_progress: Callable[[float, int], None] | None = None,
                  should_stop: Callable[[], bool] | None = None,
                  log_every: int = 0) -> Iterator[Output]:
  """Stylises every content with every cell of ``axes``, bucket by bucket.

  ``contents`` are float32 ``(H, W, 3)`` images in [0, 1] of any shapes
  (those of equal shape form a bucket, ``buckets``); ``styles`` are indexed
  by the cells' ``style``. ``config`` supplies what the axes do not vary,
  as for ``grid.style_grid`` (blend weights and re-drawing representations
  are refused). Job ``k`` of ``jobs(len(contents), axes)`` is left out when
  ``k`` is in ``skip`` (e.g. finished by an earlier run): no ``Output``, and
  its chunk runs only for the others in it. Chunks are cut from all of a
  bucket's jobs, skipped ones included, so that a job gets the result, bit
  for bit, that a run without ``skip`` gives it (pass the same
  ``contents``, styles and axes).

  Each bucket's jobs run as one compiled program (``sharded.minimize_cells``
  over ``mesh``, default all devices) in chunks of ``chunk_size`` cells
  (default: what fits in 60% of the devices' memory,
  ``grid.default_chunk_size``), the last chunk padded to the same size by
  repeating its last job. Each job paints the levels of ``config.schedule``
  for its content's long edge (``grid.run_cells``) and equals the same
  transfer run alone, with the cell's layers and weights, up to float32
  rounding: ``transfer.stylize`` for one level (the styles as given),
  ``transfer.stylize_multiscale`` through several (the styles resized to
  each level's style size).

  Everything is checked before this returns (``NSTError``: a content too
  small for the layers or too large for the device's memory, a style index
  out of range, the grid's refusals); the returned iterator then runs the
  chunks, yielding each chunk's ``Output`` s as it finishes, in job order
  within a bucket. ``on_progress(done, total)`` reports the jobs done, a
  running chunk counted by its share of the iterations of all its levels.
  ``should_stop()`` is asked between compiled stretches of iterations (a
  Ctrl-C handler): the running chunk then stops and is yielded with status
  ``interrupted`` and no further chunk starts. Every ``log_every``
  iterations (0: only at the end of each level) a job's loss terms are
  recorded in its ``Output.loss_history``, as the single command records
  them.
  """
  contents = [np.asarray(c, np.float32) for c in contents]
  for i, c in enumerate(contents):
    if c.ndim != 3 or c.shape[-1] != 3:
      raise ValueError(f"{param('contents')}[{i}] must have shape (H, W, 3), "
                       f"got {c.shape}")
  if not contents:
    raise NSTError("a batch needs at least one content image")
  for cell in axes.cells():
    if not 0 <= cell["style"] < len(styles):
      raise NSTError(f"style index {cell['style']} but {len(styles)} style "
                     "images")
  all_jobs = jobs(len(contents), axes)
  config = grid.cell_config(config, axes.style_layer_sets)
  groups = buckets([c.shape[:2] for c in contents])
  for bucket in groups:
    grid.check_levels(config, bucket.shape)   # every level it paints
    transfer.check_memory(config, bucket.shape)
  skip = frozenset(int(k) for k in skip)
  params = vgg.prepare_params(params, config.conv,
                              config.objective_spec().layers)
  mesh = sharded.cell_mesh() if mesh is None else mesh
  return _run(params, contents, list(styles), all_jobs, groups, config,
              skip, mesh, chunk_size, on_progress, should_stop, log_every)


def _run(params, contents, styles, all_jobs, groups, config, skip, mesh,
         chunk_size, on_progress, should_stop, log_every
         ) -> Iterator[Output]:
  """The generator behind ``stylize_batch``."""
  devices = mesh.devices.size
  todo = [k for k in range(len(all_jobs)) if k not in skip]
  total, done = len(todo), 0
  report = on_progress or (lambda done, total: None)
  for b, bucket in enumerate(groups):
    members = set(bucket.contents)
    # Chunks are cut from all the bucket's jobs, skipped ones included: a
    # batch run again with its finished results skipped runs each remaining
    # job in the chunk (program and place) an uninterrupted batch gave it,
    # so it gets the same result, bit for bit. A chunk whose jobs are all
    # skipped does not run; one with some skipped runs whole.
    bucket_jobs = [k for k in range(len(all_jobs))
                   if all_jobs[k].content in members]
    if not any(k not in skip for k in bucket_jobs):
      continue
    limit = chunk_size or grid.default_chunk_size(
        config, bucket.shape, devices) or len(bucket_jobs)
    chunk = sharded.padded_size(min(limit, len(bucket_jobs)), devices)
    # A running chunk counts by its share of the iterations of every level
    # it paints (run_cells: each level's progress starts again at 0).
    counts = [n for _, n in config.schedule.levels(max(bucket.shape),
                                                   config.solver.maxiter)]
    steps = max(sum(counts), 1)
    before = [0]
    def level_start(index, size, n):
      del size, n
      before[0] = sum(counts[:index])
    for start in range(0, len(bucket_jobs), chunk):
      whole = bucket_jobs[start:start + chunk]
      part = [k for k in whole if k not in skip]
      if not part:
        continue
      if should_stop is not None and should_stop():
        return
      padded = whole + [whole[-1]] * (chunk - len(whole))
      cells = [dict(all_jobs[k].cell, content=all_jobs[k].content)
               for k in padded]
      began = time.perf_counter()
      def progress(first, p, base=done, n=len(part)):
        del first
        report(base + n * min((before[0] + int(p.iteration)) / steps, 1.0),
               total)
      result = grid.run_cells(params, contents, styles, cells, config,
                              mesh=mesh, chunk_size=chunk,
                              on_progress=progress, should_stop=should_stop,
                              on_level_start=level_start,
                              log_every=log_every)
      images, terms, status = result.images, result.terms, result.status
      seconds = time.perf_counter() - began
      interrupted = "interrupted" in status
      if not interrupted:
        done += len(part)
        report(done, total)
      for n, k in enumerate(whole):
        if k in skip:
          continue
        yield Output(index=k, job=all_jobs[k], image=images[n],
                     terms=terms[n], iterations=int(result.iterations[n]),
                     function_evaluations=int(
                         result.function_evaluations[n]),
                     status=status[n], bucket=b, chunk=start // chunk,
                     cells=chunk,
                     seconds=seconds, loss_history=result.loss_history[n])
      if interrupted:
        return

