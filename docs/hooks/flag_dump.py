"""Prints, as JSON, every flag each command defines, grouped as its
``--help`` groups them: ``python docs/hooks/flag_dump.py
nst_jax.commands.stylize nst_jax.commands.grid …`` prints ``{module: …}``.

absl's flags are process-global and each command module defines its flags
when imported, so after each command its flags are removed and the modules
that define flags (``nst_jax.cli``, ``nst_jax.commands``,
``nst_jax.serve``) are imported afresh for the next one; the library itself
is imported once. The grouping is the one
``nst_jax.cli._flags.help_text`` prints: the shared groups, the topics of
the commands' own flags, then "Other flags"; deprecated names are listed
apart, absl's own flags (logging, debugging) are left out.
"""

import importlib
import json
import sys

from absl import flags


def dump(module_name: str) -> dict:
  module = importlib.import_module(module_name)
  from nst_jax.cli import _flags as F
  ours = [f for module_of, listed in flags.FLAGS.flags_by_module_dict().items()
          if not module_of.startswith("absl") for f in listed]
  aliases, entries, deprecated = {}, {}, {}
  for flag in ours:
    if flag.name in entries or flag.name in deprecated:
      continue
    if flag.name in F.DEPRECATED_FLAGS:
      deprecated[flag.name] = F.DEPRECATED_FLAGS[flag.name]
      continue
    target = F._ALIAS_HELP.match(str(flag.help or ""))
    if target and target.group(1) in flags.FLAGS:
      aliases.setdefault(target.group(1), []).append(flag.name)
    else:
      entries[flag.name] = flag
  sections = {}
  for name, flag in entries.items():
    topic = F._OWN_TOPICS.get(name) or F._DEFINED_IN.get(name, "other")
    syntax = getattr(flag.parser, "syntactic_help", "")
    sections.setdefault(topic, []).append({
        "name": name, "boolean": bool(flag.boolean),
        "aliases": aliases.get(name, []),
        "help": " ".join(str(flag.help or "").split()),
        "default": None if flag.default is None else flag.default_as_str,
        "syntax": "" if flag.boolean else syntax})
  order = [*F._SECTIONS, *sorted(set(sections) - set(F._SECTIONS) - {"other"}),
           "other"]
  groups = [{"title": F._SECTIONS.get(t) or (
                 "Other flags" if t == "other" else t.capitalize()),
             "flags": sections[t]} for t in order if t in sections]
  return {"about": module.__doc__ or "", "groups": groups,
          "deprecated": deprecated}


def _forget_flags() -> None:
  """Removes every flag but absl's, and the modules that define them."""
  for module_of, listed in list(flags.FLAGS.flags_by_module_dict().items()):
    if not module_of.startswith("absl"):
      for flag in list(listed):   # deleting a flag changes the list
        for name in {flag.name, flag.short_name} - {None}:
          if name in flags.FLAGS:
            delattr(flags.FLAGS, name)
  for name in list(sys.modules):
    if name.startswith(("nst_jax.cli", "nst_jax.commands", "nst_jax.serve")):
      parent, _, child = name.rpartition(".")
      if parent in sys.modules and hasattr(sys.modules[parent], child):
        delattr(sys.modules[parent], child)   # else `from … import` finds it
      del sys.modules[name]


if __name__ == "__main__":
  out = {}
  for name in sys.argv[1:]:
    out[name] = dump(name)
    _forget_flags()
  json.dump(out, sys.stdout)
