"""The documentation tells the truth about the code.

* Every ```python block of README.md and docs/ runs (``test_examples``),
  the blocks of one page in order in one namespace, as a reader would paste
  them, in a folder holding the small images they name (``photo.jpg``,
  ``painting.jpg`` …). A block runs at a tiny size: an HTML comment right
  above it says how, invisible on the rendered page::

      <!-- docs-test: 256 -> 48; maxiter=300 -> maxiter=2 -->

  replaces text in the block before it runs (``old -> new``, items
  separated by ``; ``). The multi-line form takes one item a line, and
  ``before: <code>`` lines run first (names a block takes as given)::

      <!-- docs-test:
      before: style_a = style_b = style
      256 -> 48
      -->

  No block can be left out: an example that cannot run on the CPU test
  machine is not written as a ```python block.
  The tutorial notebook is executed in full by ``make docs`` (CI runs it
  after ``make test``); ``test_notebook_code_compiles`` checks its code here
  without running it (the run would cost this suite ~10 s).
* The numbers written by hand that restate a default of the code agree
  with it (``test_hand_written_defaults_agree_with_the_code``): flag tables
  (``| `--flag` | default |``), "(default N)" after a flag, and the default
  style weights in prose.
* Every name of ``nst_jax.__all__`` has an API page entry, and every page
  that uses ``{{ value(...) }}`` names a default that exists.
"""

import json
import pathlib
import re
import sys
import types

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
sys.path.insert(0, str(DOCS / "hooks"))

import nst_values  # noqa: E402  (docs/hooks/nst_values.py)


def _pages():
  """README.md and every Markdown page of docs/ (not the generated report)."""
  pages = [ROOT / "README.md"] + sorted(
      p for p in DOCS.rglob("*.md") if "hooks" not in p.parts)
  return [p for p in pages if p.name != "gpu.md"]


_BLOCK = re.compile(
    r"(?:<!--\s*docs-test:(?P<how>(?:(?!-->).)*?)-->\s*\n)?^```python\n"
    r"(?P<code>.*?)^```",
    re.S | re.M)


def _how(text: str):
  """(replacements, before) of a docs-test comment."""
  text = text.strip()
  items = ([line.rstrip() for line in text.splitlines()] if "\n" in text
           else [item.strip() for item in text.split("; ")])
  replace, before = [], []
  for item in filter(None, items):
    if item.startswith("before:"):   # the code after "before: ", indented
      before.append(item[len("before: "):])
    else:
      old, sep, new = item.partition(" -> ")
      assert sep, f"docs-test item {item!r} is not 'old -> new'"
      replace.append((old, new))
  return replace, before


def blocks(text: str, page: str = ""):
  """``[code as it will run]`` of a page's python blocks."""
  out = []
  for m in _BLOCK.finditer(text):
    code, (replace, before) = m.group("code"), _how(m.group("how") or "")
    for old, new in replace:
      assert old in code, f"docs-test: {old!r} is not in the block:\n{code}"
      code = code.replace(old, new)
    out.append("\n".join(before + [code]))
  return out


def _notebook_blocks(path: pathlib.Path):
  nb = json.loads(path.read_text(encoding="utf-8"))
  replace = nb.get("metadata", {}).get("docs_test", [])
  code = "\n".join("".join(c["source"]) for c in nb["cells"]
                   if c["cell_type"] == "code")
  code = "\n".join(line for line in code.splitlines()
                   if not line.lstrip().startswith(("%", "!")))
  for old, new in replace:
    assert old in code, f"{path.name}: docs_test {old!r} is not in the code"
    code = code.replace(old, new)
  return [code]


def _example_pages():
  return [p for p in _pages() if _BLOCK.search(p.read_text(encoding="utf-8"))]


def _small_image(src: pathlib.Path, dst: pathlib.Path, size: int = 48):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  with Image.open(src) as im:
    im = im.convert("RGB")
    im.thumbnail((size, size))
    im.save(dst)


def _fixtures(folder: pathlib.Path):
  """The images the examples name, 48 px, from the bundled examples."""
  photo, painting = ROOT / "examples/chelsea.png", (
      ROOT / "examples/style_brushwork.png")
  for name in ("photo.jpg", "a.jpg", "b.png"):
    _small_image(photo, folder / name)
  for name in ("painting.jpg", "starry.jpg", "scream.jpg"):
    _small_image(painting, folder / name)
  (folder / "photos").mkdir()
  _small_image(photo, folder / "photos/one.jpg")
  _small_image(photo, folder / "photos/two.png")
  (folder / "paintings").mkdir()
  _small_image(painting, folder / "paintings/starry.jpg")
  (folder / "out").mkdir()


def run_examples(folder: pathlib.Path) -> list:
  """Runs every page's blocks in ``folder``; returns ``[(page, seconds)]``.
  Raises AssertionError naming the page and block that fails."""
  import os  # pylint: disable=g-import-not-at-top
  import time  # pylint: disable=g-import-not-at-top
  import traceback  # pylint: disable=g-import-not-at-top
  _fixtures(folder)
  os.chdir(folder)
  timings = []
  for page in _example_pages():
    found = (_notebook_blocks(page) if page.suffix == ".ipynb"
             else blocks(page.read_text(encoding="utf-8"), page.name))
    namespace = {"__name__": "__docs__"}
    started, ran = time.perf_counter(), 0
    for index, code in enumerate(found):
      try:
        exec(compile(code, f"{page.name}[block {index}]", "exec"), namespace)
      except Exception:  # the page and block in the failure
        raise AssertionError(
            f"{page.relative_to(ROOT)}, python block {index} fails:\n{code}\n"
            f"{traceback.format_exc()}") from None
      ran += 1
    assert ran, f"{page.name}: no python block ran"
    timings.append((str(page.relative_to(ROOT)), time.perf_counter() - started))
  return timings


# Compiling is what the examples cost at these tiny sizes; with most of
# XLA's optimisations off (JAX's jax_disable_most_optimizations, and the CPU
# backend's level 0, which conftest.py sets for the whole suite too) they
# take about half the CPU time (measured 2026-12-07: 42 against 80 CPU-s on
# the 2-core machine).
_FAST_COMPILE = "--xla_backend_optimization_level=0"


@pytest.mark.slow
def test_examples(tmp_path, vgg16_params):
  """Every page's examples, in one process (pages that share a program
  compile it once), with most of XLA's optimisations off."""
  del vgg16_params   # the examples load the weights themselves
  import os  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  env = dict(os.environ)
  if _FAST_COMPILE not in env.get("XLA_FLAGS", ""):  # conftest.py's too
    env["XLA_FLAGS"] = f"{env.get('XLA_FLAGS', '')} {_FAST_COMPILE}".strip()
  env["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
  env["PYTHONPATH"] = os.pathsep.join(
      filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
  done = subprocess.run([sys.executable, __file__, str(tmp_path)], env=env,
                        capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-12000:]
  print(done.stdout)


def test_notebook_code_compiles():
  for path in sorted(DOCS.rglob("*.ipynb")):
    for code in _notebook_blocks(path):
      compile(code, path.name, "exec")


def test_a_block_cannot_be_left_out():
  """Every python block runs: a comment asking to leave one out is not a
  replacement and fails loudly."""
  with pytest.raises(AssertionError, match="is not 'old -> new'"):
    blocks("<!-- docs-test: skip: needs a GPU -->\n```python\nx = 1\n```\n")


# -- numbers written by hand ---------------------------------------------


def _flag_defaults() -> dict:
  """``{flag: default as --help prints it}`` of every command's flags."""
  import nst_docs  # pylint: disable=g-import-not-at-top
  out = {}
  for dump in nst_docs._flag_dumps().values():   # pylint: disable=protected-access
    for group in dump["groups"]:
      for flag in group["flags"]:
        out.setdefault(flag["name"], set()).add(flag["default"])
  return out


def _number(text: str):
  """A number as the pages write it: ``800``, ``1e6``, ``10⁶``, ``1.5·10⁷``,
  ``0.02``; None if ``text`` is not one."""
  text = text.strip().strip("`'").replace("−", "-").replace(",", "")
  sup = str.maketrans("⁻⁰¹²³⁴⁵⁶⁷⁸⁹", "-0123456789")
  m = re.fullmatch(r"(?:([\d.]+)\s*[·×x]\s*)?10([⁻⁰¹²³⁴⁵⁶⁷⁸⁹]+)", text)
  if m:
    return float(m.group(1) or 1) * 10 ** int(m.group(2).translate(sup))
  try:
    return float(text)
  except ValueError:
    return None


# Prose that restates a default: (pattern, key of nst_values.values()).
_PROSE = [
    (r"[Dd]efault \**β = ([\d.·⁰-⁹×]+)", "style_weight"),
    (r"Gram's (?:default )?β = ([\d.·⁰-⁹×]+)", "style_weight"),
    (r"β = ([\d.]+) and [\d.]+\. The pictures", "style_weight.swd"),
    (r"β = [\d.]+ and ([\d.]+)\. The pictures", "style_weight.cmd"),
    (r"style_weight=([\d.e+]+)\)?\s*#\s*default β", "style_weight"),
    (r"LossWeights\(style=([\d.e+]+)\)", "style_weight"),
]


def hand_written_claims(text: str) -> list:
  """``[(what, number written, number of the code)]`` for every number in
  ``text`` that restates a default: a flag table's default column, a
  ``--flag`` "(default N)" and the prose of ``_PROSE``."""
  values = nst_values.values()
  defaults = _flag_defaults()
  claims = []
  for m in re.finditer(r"^\| `--(\w+)`[^|]*\| ([^|]+) \|", text, re.M):
    flag, written = m.group(1), _number(m.group(2))
    if written is None or flag not in defaults:
      continue
    code = {_number(d) for d in defaults[flag] if d is not None} - {None}
    if code:
      claims.append((f"--{flag} default", written, code))
  for m in re.finditer(r"`--(\w+)`[^`.;]{0,40}?\(?default:? ([\d.e+-]+)\b",
                       text):
    flag, written = m.group(1), _number(m.group(2))
    code = {_number(d) for d in defaults.get(flag, ()) if d is not None}
    if written is not None and code - {None}:
      claims.append((f"--{flag} (default …)", written, code - {None}))
  for pattern, key in _PROSE:
    for m in re.finditer(pattern, text):
      written = _number(m.group(1))
      if written is not None:
        claims.append((f"{key}: {m.group(0)[:60]!r}", written,
                       {float(values[key])}))
  return claims


def _wrong(claims) -> list:
  return [c for c in claims
          if not any(np.isclose(c[1], v, rtol=1e-9) for v in c[2])]


@pytest.mark.parametrize("page", _pages(),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_hand_written_defaults_agree_with_the_code(page):
  wrong = _wrong(hand_written_claims(page.read_text(encoding="utf-8")))
  assert not wrong, wrong


def test_every_prose_pattern_still_finds_its_number():
  """A rewording that stops a ``_PROSE`` phrase from matching would turn
  its check off silently: each must match some page."""
  text = "\n".join(p.read_text(encoding="utf-8") for p in _pages())
  unmatched = [pattern for pattern, _ in _PROSE
               if not re.search(pattern, text)]
  assert not unmatched, unmatched


def test_a_comment_does_not_reach_a_later_block():
  """The comment above a block is its own: one above a shell block does
  not change the next python block."""
  page = ("<!-- docs-test: 1 -> 2 -->\n```sh\nls 1\n```\n\n"
          "```python\nx = 1\n```\n")
  assert blocks(page) == ["x = 1\n"]


def test_the_drift_check_fails_on_a_wrong_number():
  """The check above finds a default restated wrongly, in each form."""
  beta = nst_values.values()["style_weight"]
  assert not _wrong(hand_written_claims(f"The default **β = {beta:g}**"))
  for text in (f"The default **β = {beta * 2:g}**",
               "| `--history_size` | 11 | L-BFGS memory |",
               "`--score_size` (default 128)",
               "weights=nst.LossWeights(style=10000000.0)"):
    assert _wrong(hand_written_claims(text)), text


def test_pages_name_defaults_that_exist():
  import nst_docs  # pylint: disable=g-import-not-at-top
  values = nst_values.values()
  for page in _pages():
    for key in re.findall(r"\{\{\s*value\(\"([^\"]+)\"\)\s*\}\}",
                          page.read_text(encoding="utf-8")):
      assert key in values, (page.name, key)
  assert nst_docs.render('{{ value("style_weight") }}') == (
      nst_values.format_value(values["style_weight"]))


def test_every_public_name_has_an_api_entry():
  import nst_jax  # pylint: disable=g-import-not-at-top
  api = "\n".join(p.read_text(encoding="utf-8")
                  for p in (DOCS / "api").glob("*.md"))
  documented = set(re.findall(r"^::: ([\w.]+)", api, re.M))
  missing = []
  for name in nst_jax.__all__:
    obj = getattr(nst_jax, name)
    where = (obj.__name__ if isinstance(obj, types.ModuleType)
             else f"{obj.__module__}.{obj.__name__}")
    if not (where in documented or
            where.rpartition(".")[0] in documented):
      missing.append(name)
  assert not missing, missing


if __name__ == "__main__":   # test_examples's child: python test_docs.py DIR
  import time as _time
  _started = _time.perf_counter()
  for _page, _seconds in run_examples(pathlib.Path(sys.argv[1])):
    print(f"{_seconds:6.1f} s  {_page}")
  print(f"{_time.perf_counter() - _started:6.1f} s  all examples")
