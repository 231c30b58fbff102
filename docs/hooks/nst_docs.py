"""mkdocs hook: the numbers and flag tables of the pages, written from the
code at build time so that they cannot drift from it.

In a page's Markdown:

* ``{{ value("style_weight") }}``: a default the code holds, formatted
  (``docs/hooks/nst_values.py`` lists the keys: ``style_weight.swd``,
  ``size.cpu``, ``iterations.gpu``, ``nnst.alpha`` …); an unknown key fails
  the build.
* ``{{ flags("nst-stylize") }}``: every flag of a console command (the
  commands of pyproject.toml's ``[project.scripts]``), grouped as its
  ``--help`` groups them, each with its default and help text, read from the
  absl definitions by importing the command in a fresh process
  (``docs/hooks/flag_dump.py``).
* ``{{ representations_table() }}``: every ``--style_stat`` name with its
  class and suggested style weight (``representations.register``).
* ``{{ command_list() }}``: the console commands and their modules.
"""

import functools
import html
import json
import pathlib
import re
import subprocess
import sys
import tomllib

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(pathlib.Path(__file__).parent))

import nst_values  # noqa: E402

# A macro; one written as inline code (`{{ value("x") }}`) is shown, not run.
_CALL = re.compile(
    r"(?<!`)\{\{\s*(\w+)\(\s*(?:\"([^\"]*)\")?\s*\)\s*\}\}(?!`)")


@functools.lru_cache(maxsize=None)
def scripts() -> dict:
  """``{command: module}`` from pyproject.toml's ``[project.scripts]``."""
  data = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
  return {name: target.split(":")[0]
          for name, target in data["project"]["scripts"].items()}


@functools.lru_cache(maxsize=None)
def _values() -> dict:
  return nst_values.values()


@functools.lru_cache(maxsize=None)
def _flag_dumps() -> dict:
  """Every command's flags, read by one fresh process
  (``docs/hooks/flag_dump.py``)."""
  done = subprocess.run(
      [sys.executable, str(ROOT / "docs/hooks/flag_dump.py"),
       *scripts().values()],
      capture_output=True, text=True, cwd=ROOT, check=False)
  if done.returncode:
    raise RuntimeError(f"docs/hooks/flag_dump.py failed:\n{done.stderr}")
  dumps = json.loads(done.stdout)
  return {command: dumps[module] for command, module in scripts().items()}


def _cell(text: str) -> str:
  text = html.escape(text, quote=False).replace("|", "\\|")
  return re.sub(r"([*_`\[\]])", r"\\\1", text)


def flags_markdown(command: str) -> str:
  if command not in scripts():
    raise KeyError(f"no console command {command!r} in pyproject.toml")
  dump = _flag_dumps()[command]
  out = []
  for group in dump["groups"]:
    out += [f"### {group['title']}", "",
            "| flag | default | meaning |", "| --- | --- | --- |"]
    for flag in group["flags"]:
      name = (f"`--[no]{flag['name']}`" if flag["boolean"]
              else f"`--{flag['name']}`")
      name += "".join(f" (or `--{a}`)" for a in flag["aliases"])
      default = ("—" if flag["default"] is None
                 else "`" + flag["default"].strip("'") + "`")
      meaning = _cell(flag["help"])
      if flag["syntax"]:
        meaning += f" ({_cell(flag['syntax'])})"
      out.append(f"| {name} | {default} | {meaning} |")
    out.append("")
  if dump["deprecated"]:
    out += ["### Deprecated names", "",
            "Still accepted (a run records the new name): " + ", ".join(
                f"`--{old}` for `--{new}`"
                for old, new in sorted(dump["deprecated"].items())) + ".", ""]
  out += [f"absl's own flags (logging, debugging) are listed by "
          f"`{command} --helpfull`.", ""]
  return "\n".join(out)


def representations_markdown() -> str:
  from nst_jax import representations
  from nst_jax import guided  # noqa: F401
  rows = ["| `--style_stat` | class | suggested `--style_weight` | its flags |",
          "| --- | --- | --- | --- |"]
  for entry in representations.registered():
    if entry.name is None:
      continue
    weight = _values().get(f"style_weight.{entry.name}", entry.style_weight)
    flags = ", ".join(f"`--{flag}`" for _, flag in entry.flags) or "—"
    module = entry.cls.__module__.removeprefix("nst_jax.")
    rows.append(f"| `{entry.name}` | `{module}.{entry.cls.__name__}` | "
                f"{nst_values.format_value(float(weight))} | {flags} |")
  return "\n".join(rows) + "\n"


def command_list_markdown() -> str:
  rows = ["| command | module |", "| --- | --- |"]
  for name, module in scripts().items():
    rows.append(f"| [`{name}`]({name}.md) | `{module}` |")
  return "\n".join(rows) + "\n"


def render(markdown: str) -> str:
  def call(match):
    name, arg = match.group(1), match.group(2)
    if name == "value":
      values = _values()
      if arg not in values:
        raise KeyError(f"{{{{ value({arg!r}) }}}}: no such default; "
                       f"known: {', '.join(sorted(values))}")
      return nst_values.format_value(values[arg])
    if name == "flags":
      return flags_markdown(arg)
    if name == "representations_table":
      return representations_markdown()
    if name == "command_list":
      return command_list_markdown()
    raise KeyError(f"unknown docs macro {match.group(0)}")
  return _CALL.sub(call, markdown)


def on_page_markdown(markdown, page, config, files):  # noqa: D103
  return render(markdown)
