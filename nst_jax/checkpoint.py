"""Pytrees as flat, named arrays and back, checked against a template: the
format of a run's resumable state (``nst_jax.io.save_arrays`` writes it).

``flatten(tree)`` names every leaf by its key path
(``jax.tree_util.keystr``: ``".carry[1][0].mu"``); ``unflatten(arrays,
template)`` rebuilds the tree with the structure of ``template`` — a freshly
initialised state, or its ``jax.eval_shape`` — and refuses, naming the path,
a missing or unexpected leaf or one whose shape or dtype differs. This is how
flax restores a checkpoint (``flax.serialization.from_state_dict`` against a
target); nothing here can run code, unlike a pickle.
"""

from typing import Any, Dict, Mapping

import jax
import numpy as np

from nst_jax.errors import NSTError


def leaf_names(tree) -> list[str]:
  """The key path of every leaf of ``tree``, in ``tree_flatten`` order."""
  return [jax.tree_util.keystr(path)
          for path, _ in jax.tree_util.tree_flatten_with_path(tree)[0]]


def flatten(tree) -> Dict[str, np.ndarray]:
  """``{key path: numpy copy of the leaf}`` in ``tree_flatten`` order.

  Leaves are arrays or scalars (device arrays are fetched); the result holds
  only numeric or boolean arrays, so ``io.save_arrays`` can store it.
  """
  leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
  return {jax.tree_util.keystr(path): np.asarray(jax.device_get(leaf))
          for path, leaf in leaves}


def unflatten(arrays: Mapping[str, np.ndarray], template, *,
              what: str = "state") -> Any:
  """The tree of ``template``'s structure whose leaves are ``arrays``.

  ``template``'s leaves need only ``shape`` and ``dtype`` (arrays or
  ``jax.ShapeDtypeStruct``). Every key path of ``template`` must be in
  ``arrays`` with the same shape and dtype, and ``arrays`` must hold no other
  name; otherwise ``NSTError`` names the first path that differs (``what``
  names the thing in the message: a record written by another version or
  for another configuration).
  """
  leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
  names = [jax.tree_util.keystr(path) for path, _ in leaves]
  extra = [n for n in arrays if n not in set(names)]
  if extra:
    raise NSTError(f"the {what} holds {extra[0]!r}, which this configuration "
                   "does not have (written by another version or for another "
                   "optimizer?)")
  out = []
  for name, (_, like) in zip(names, leaves):
    if name not in arrays:
      raise NSTError(f"the {what} lacks {name!r} (written by another version "
                     "or for another optimizer?)")
    value = np.asarray(arrays[name])
    want = (tuple(np.shape(like)), np.dtype(like.dtype))
    if (value.shape, value.dtype) != want:
      raise NSTError(f"the {what}'s {name} is {value.dtype}{list(value.shape)}"
                     f", this run needs {want[1]}{list(want[0])} (another "
                     "image size or configuration?)")
    out.append(value)
  return jax.tree_util.tree_unflatten(treedef, out)
