"""The library's layer table (docs/library/architecture.md, once the
README's) says data flows one way, "each module importing only from those
before it": the table's order is checked against the modules' own
imports."""

import ast
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _table_modules():
  """The modules of the table's first column, in order (a row may name
  several: each is checked)."""
  text = (ROOT / "docs/library/architecture.md").read_text(encoding="utf-8")
  section = text[text.index("# The library"):]
  cells = re.findall(r"^\| ((?:`nst_jax\.\w+`(?:, )?)+) \|", section, re.M)
  return [m for cell in cells for m in re.findall(r"`nst_jax\.(\w+)`", cell)]


def _imports(module: str) -> set:
  """The nst_jax modules ``module`` (a module or a package) imports."""
  path = ROOT / "nst_jax" / module
  files = (sorted(path.glob("*.py")) if path.is_dir()
           else [path.with_suffix(".py")])
  found = set()
  for f in files:
    for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
      if isinstance(node, ast.ImportFrom) and node.module and (
          node.module.split(".")[0] == "nst_jax"):
        parts = node.module.split(".")
        found |= ({parts[1]} if len(parts) > 1
                  else {a.name for a in node.names})
      elif isinstance(node, ast.Import):
        found |= {a.name.split(".")[1] for a in node.names
                  if a.name.startswith("nst_jax.")}
  return found - {module}


def test_the_library_table_lists_each_module_after_those_it_imports():
  order = _table_modules()
  assert {"io", "vgg", "winograd", "memory", "tiling", "problem", "run",
          "transfer", "grid"} <= set(order), order
  later = {m: sorted(d for d in _imports(m)
                     if d in order and order.index(d) > order.index(m))
           for m in order if m != "cli"}
  assert not {m: d for m, d in later.items() if d}, later
