"""Minimisers whose iterations run as compiled programs.

``minimize(fun, x0, config, hooks, args)`` runs up to ``maxiter`` iterations of
the chosen method in a ``jax.lax.while_loop``. ``fun(x, *args) -> (value,
aux)`` must be jit-able. The data (weights, targets) travel in ``args`` as
traced arguments, never as constants baked into the program, and the compiled
programs are cached per ``(fun, config, batch layout)``: a second call with
new data but the same shapes does not recompile.

Without hooks the whole loop is one program. With ``Hook``s (progress lines,
loss history, snapshots), ``on_chunk`` (a progress bar) or ``should_stop``
(Ctrl-C) the host drives the same compiled iterations in chunks and acts
between them: no host callback sits inside a program, so JAX's persistent
compilation cache stores them all, and a run can stop cleanly between two
iterations. The state passes unchanged from chunk to chunk, so the iterates
are identical however the run is chunked.

Methods:

* ``"optax_lbfgs"`` (the default of ``nst_jax.transfer``) — ``optax.lbfgs``
  with an Armijo backtracking line search (``_armijo_linesearch``: optax's
  trial steps and test, without the ``cond`` that is slow under ``vmap``):
  each trial step costs one value-and-gradient, and the accepted one is
  reused by the next iteration. The quasi-Newton step 1 is accepted at its first trial almost
  always, so a run averages close to one evaluation per iteration (measured:
  101 evaluations in 100 iterations, VGG-16, 128 px). A curvature pair
  without positive curvature (``⟨s, y⟩ ≤ ε‖y‖²``, which an Armijo search
  does not rule out on a nonconvex objective) is skipped, not stored
  (``_scale_by_lbfgs``): stored, it turns the next direction uphill.
* ``"lbfgs"`` — ``jaxopt.LBFGS`` with its zoom (strong Wolfe) line search,
  starting every iteration at step 1. jaxopt's backtracking search checks
  strong Wolfe too, which shortening a step cannot satisfy on the first,
  nearly linear step, and its Armijo mode evaluates the value and then the
  gradient separately; zoom costs 2.0 evaluations per iteration (measured).

Both L-BFGS methods minimise the objective scaled by ``1/‖∇f(x₀)‖₁`` (one
extra evaluation), so the first step, taken before any curvature is known, is
``-∇f(x₀)/‖∇f(x₀)‖₁`` — the first step of ``torch.optim.LBFGS`` (used by
neural-style-pt). Style objectives are stiff: a unit-length gradient step from
the content image raises the loss 30-fold. Later steps are scale-invariant.
* ``"adam"`` — ``optax.adam`` with a fixed learning rate.

A line search that finds no sufficient decrease is not fatal (the next
iteration's curvature pair often recovers); ``max_failed_linesearches``
consecutive failures stop the run (status ``linesearch_failed``): the iterate
is then converged to float32 precision, or the objective is broken.

Pixel range: Adam projects onto the box ``[lower, upper]`` after every step.
L-BFGS runs unconstrained — a projection would break its curvature pairs — as
in jcjohnson/neural-style and neural-style-pt; the caller clips the result
(``nst_jax.transfer`` does).

Evaluations are counted exactly: one "function evaluation" is one value-and-
gradient of ``fun`` (hooks' own evaluations are not counted).
"""

import dataclasses
import enum
import functools
import time
import warnings
from typing import Any, Callable, Dict, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from nst_jax import errors
from nst_jax.errors import NSTError

METHODS = ("optax_lbfgs", "lbfgs", "adam", "rmsprop")


class Status(enum.IntEnum):
  """Why a run stopped: ``SolveResult.status`` holds these codes (int32
  arrays, per cell when batched); ``status_name`` reads one.

  ``str(Status.CONVERGED)`` and ``Status.CONVERGED.label`` are
  ``"converged"``. Inside the loop 0 means "still running"; a run that ends
  with 0 used all its iterations, so ``RUNNING`` is an alias of
  ``MAX_ITERATIONS``.
  """
  MAX_ITERATIONS = 0
  RUNNING = 0
  CONVERGED = 1
  NON_FINITE = 2
  LINESEARCH_FAILED = 3
  INTERRUPTED = 4

  @property
  def label(self) -> str:
    """``"max_iterations"``, ``"converged"``, ``"non_finite"``, ..."""
    return self.name.lower()

  def __str__(self) -> str:
    return self.label


# The earlier module constants and name table, kept for existing callers.
RUNNING, CONVERGED, NON_FINITE, LINESEARCH_FAILED, INTERRUPTED = (
    Status.RUNNING, Status.CONVERGED, Status.NON_FINITE,
    Status.LINESEARCH_FAILED, Status.INTERRUPTED)
STATUS_NAMES = {int(s): s.label for s in Status}


def status_name(code) -> str:
  """``"converged"`` for ``Status.CONVERGED``, ``1`` or a 0-d array holding
  1; raises ``NSTError`` for a code that is no ``Status``."""
  try:
    return Status(int(code)).label
  except ValueError:
    raise NSTError(f"unknown solver status {code!r}: use one of "
                   f"{', '.join(f'{int(s)} ({s})' for s in Status)}") from None


def _code(status: Status) -> jax.Array:
  """A status as the int32 scalar the compiled loops carry."""
  return jnp.int32(status)


@dataclasses.dataclass(frozen=True)
class SolverConfig:
  """Hyper-parameters of ``minimize`` (static: changing them recompiles).

  ``tol`` stops L-BFGS when ``‖∇f‖ ≤ tol·‖∇f(x₀)‖`` (0 disables it);
  ``history_size`` is the L-BFGS memory; ``max_linesearch_steps`` bounds each
  line search; ``max_failed_linesearches`` consecutive failures stop the run;
  ``learning_rate`` is the step of the first-order methods (Adam, RMSprop);
  ``lower``/``upper`` the box they project onto (±inf for a parameterisation
  other than pixels, e.g. a Laplacian pyramid's coefficients).

  ``step_key``: the objective is stochastic (STROTSS samples its feature
  positions afresh every step): the last of its ``args`` is a PRNG key, and
  step ``k`` of a first-order method evaluates it with
  ``jax.random.fold_in(key, k)`` in its place (``k`` counts the method's
  steps, kept in its state: a resumed run draws the same keys). Everything
  else that evaluates the objective — loss records, the final value — uses
  the key as given. L-BFGS needs one deterministic function and refuses it.
  """
  method: str = "optax_lbfgs"
  maxiter: int = 500
  learning_rate: float = 0.02
  history_size: int = 10
  max_linesearch_steps: int = 20
  max_failed_linesearches: int = 20
  tol: float = 0.0
  lower: float = 0.0
  upper: float = 1.0
  step_key: bool = False


class Hook(NamedTuple):
  """At iteration 0 and every ``every`` iterations, calls on the host
  ``host_fn(iteration, device_fn(x, *args))``; ``device_fn`` runs on the
  device (compiled once per function object) and its output reaches
  ``host_fn`` as numpy arrays."""
  every: int
  device_fn: Callable[..., Any]
  host_fn: Callable[[Any, Any], None]


class SolveResult(NamedTuple):
  """The last iterate ``x``, ``fun``'s value there, iterations done, function
  evaluations (value-and-gradient calls), and the stop reason ``status`` (an
  int32 ``Status`` code; ``status_name(result.status)`` reads it)."""
  x: jax.Array
  value: jax.Array
  iterations: jax.Array
  function_evaluations: jax.Array
  status: jax.Array


class _Method(NamedTuple):
  init: Callable         # x0 -> carry
  step: Callable         # carry -> carry
  x: Callable            # carry -> x
  value: Callable        # carry -> value at x (None: evaluate after the loop)
  evaluations: Callable  # carry -> int
  status: Callable       # carry -> RUNNING, CONVERGED or NON_FINITE
  failed: Callable       # carry -> whether the last line search failed
  last_value: Callable   # carry -> the latest value known without evaluating


def _finite_status(value, status, grad_norm=None):
  """``status``, or ``NON_FINITE`` where the value — or the gradient's norm,
  when given — is not finite: an infinite gradient at a finite value (a
  huge loss weight) would otherwise leave the iterate where it is, the run
  ending with its iterations done and nothing painted."""
  finite = jnp.isfinite(value)
  if grad_norm is not None:
    finite = finite & jnp.isfinite(grad_norm)
  return jnp.where(finite, status, _code(NON_FINITE))


def _first_step_scale(grad):
  """``1/‖g‖₁``, or 1 where that is not a finite positive number."""
  l1 = optax.tree_utils.tree_norm(grad, ord=1)
  return 1.0 / jnp.where(jnp.isfinite(l1) & (l1 > 0), l1, 1.0)


def _jaxopt_lbfgs(fun, cfg: SolverConfig) -> _Method:
  value_and_grad = jax.value_and_grad(fun, has_aux=True)

  def solver(scale):
    def scaled(x):
      (v, aux), g = value_and_grad(x)
      return (v * scale, aux), g * scale
    import jaxopt  # only for this method (jaxopt is in maintenance mode)
    return jaxopt.LBFGS(
        fun=scaled, value_and_grad=True, has_aux=True, maxiter=cfg.maxiter,
        tol=cfg.tol, history_size=cfg.history_size, linesearch="zoom",
        linesearch_init="max", max_stepsize=1.0, maxls=cfg.max_linesearch_steps,
        jit=True, unroll=False)

  def init(x0):
    scale = _first_step_scale(value_and_grad(x0)[1])
    return x0, solver(scale).init_state(x0), scale

  def step(carry):
    x, state, scale = carry
    x, state = solver(scale).update(x, state)
    return x, state, scale

  def status(carry):
    state = carry[1]
    s = jnp.where((cfg.tol > 0) & (state.error <= cfg.tol),
                  _code(CONVERGED), _code(RUNNING))
    # (jaxopt starts ``error``, the gradient's norm, at +inf before the
    # first step: only the optax path below checks the gradient.)
    return _finite_status(state.value, s)

  return _Method(init, step, x=lambda c: c[0],
                 value=lambda c: c[1].value / c[2],
                 evaluations=lambda c: c[1].num_fun_eval + 1, status=status,
                 failed=lambda c: c[1].failed_linesearch,
                 last_value=lambda c: c[1].value / c[2])


def _armijo_linesearch(max_backtracking_steps: int,
                       decrease_factor: float = 0.5, slope_rtol: float = 1e-4,
                       increase_factor: float = 1.5,
                       max_learning_rate: float = 1.0
                       ) -> optax.GradientTransformationExtraArgs:
  """Backtracking (Armijo) line search whose every trial is one
  value-and-gradient, for ``optax.lbfgs``.

  The trial steps, acceptance test ``f(x + ηd) ≤ f(x) + 1e-4·η·⟨d, ∇f⟩`` and
  state are those of ``optax.scale_by_backtracking_linesearch(store_grad=
  True)``; the difference is how the accepted trial's gradient is computed.
  optax linearises each trial and transposes the linearisation inside a
  ``lax.cond`` once the trial is accepted; under ``jax.vmap`` (the grids) that
  ``cond`` becomes a ``select`` whose operands — the network weights among the
  linearisation's residuals — are broadcast to every cell, and XLA:CPU runs
  the resulting grouped convolutions ~4x slower (measured 2026-11-22: a
  batched 8-cell, 128 px L-BFGS step cost 3.8 batched evaluations; 1.0 with
  this search). Here every trial, in one ``while_loop``, is a
  ``value_and_grad`` and no ``cond`` is involved; a rejected trial costs a
  gradient it did not need, which is rare (about 1 trial per iteration in a
  transfer). A search that
  finds no finite value takes no step and reports the non-finite value, as
  optax does (the run then stops as ``non_finite``).
  """
  base = optax.scale_by_backtracking_linesearch(
      max_backtracking_steps=max_backtracking_steps, store_grad=True)

  def update_fn(updates, state, params, *, value, grad, value_fn, **extra):
    if extra:
      raise TypeError(f"unexpected arguments {sorted(extra)}")
    value_and_grad = jax.value_and_grad(value_fn)
    slope = optax.tree_utils.tree_vdot(updates, grad)

    def trial(rate):
      new_value, new_grad = value_and_grad(
          optax.tree_utils.tree_add_scale(params, rate, updates))
      error = new_value - value - rate * slope_rtol * slope
      error = jnp.maximum(jnp.where(jnp.isnan(error), jnp.inf, error), 0.0)
      return new_value, new_grad, error

    def cond(search):
      _, _, _, error, steps = search
      return (error > 0) & (steps <= max_backtracking_steps)

    def body(search):
      rate, _, _, _, steps = search
      rate = jnp.where(steps > 0, rate * decrease_factor, rate)
      return (rate, *trial(rate), steps + 1)

    rate = jnp.minimum(increase_factor * state.learning_rate,
                       max_learning_rate).astype(state.learning_rate.dtype)
    start = (rate, value, jax.tree_util.tree_map(jnp.zeros_like, grad),
             jnp.asarray(jnp.inf, value.dtype), jnp.asarray(0, jnp.int32))
    rate, new_value, new_grad, error, steps = jax.lax.while_loop(
        cond, body, start)
    stuck = jnp.isinf(error)  # every trial non-finite: take no step, and
    # report the non-finite value (the run stops as non_finite)
    rate = jnp.where(stuck, 0.0, rate).astype(state.learning_rate.dtype)
    new_grad = jax.tree_util.tree_map(lambda o, n: jnp.where(stuck, o, n),
                                      grad, new_grad)
    info = type(state.info)(
        num_linesearch_steps=steps.astype(
            jnp.asarray(state.info.num_linesearch_steps).dtype),
        decrease_error=error.astype(state.info.decrease_error.dtype))
    new_state = state._replace(learning_rate=rate, value=new_value,
                               grad=new_grad, info=info)
    return optax.tree_utils.tree_scale(rate, updates), new_state

  return optax.GradientTransformationExtraArgs(base.init, update_fn)


def _scale_by_lbfgs(memory_size: int) -> optax.GradientTransformation:
  """``optax.scale_by_lbfgs`` (same state, same arithmetic) that stores a
  curvature pair ``(s, y)`` only where ``⟨s, y⟩ > ε‖y‖²`` (ε: float32's
  machine epsilon).

  BFGS keeps its inverse-Hessian estimate positive definite, and so its
  directions descending, only while every pair has ``⟨s, y⟩ > 0`` (Nocedal
  & Wright, *Numerical Optimization*, 2nd ed., §6.1 eq. 6.7 and §7.2). A
  Wolfe line search guarantees it; the Armijo search here does not, and a
  style objective is not convex: optax stores such a pair with the weight
  ``1/⟨s, y⟩ < 0`` and the scale ``γ = ⟨s, y⟩/‖y‖² < 0``, the next direction
  climbs, its line search fails and the run stalls (measured 2026-12-07: a
  warm-started video frame, 136 evaluations for 20 iterations and 2.4× the
  loss of its neighbours; issue 22). A pair that fails the test is skipped,
  as L-BFGS-B does (Byrd, Lu, Nocedal & Zhu 1995, §4 — their test is
  ``⟨s, y⟩ > ε‖y‖²``): the memory and ``γ`` stay those of the last stored
  pair (``γ`` of the first step, ``min(1, 1/‖g‖)``, while none is stored).
  With every pair stored the iterates are optax's, bit for bit.
  """
  base = optax.scale_by_lbfgs(memory_size=memory_size)
  tree = optax.tree_utils
  eps = float(jnp.finfo(jnp.float32).eps)

  def precondition(updates, diff_params, diff_updates, weights, scale, start):
    # Nocedal & Wright's two-loop recursion (Algorithm 7.4), as optax
    # computes it (``optax._src.transform._precondition_by_lbfgs``).
    indices = (start + jnp.arange(memory_size)) % memory_size
    pair = lambda i: jax.tree_util.tree_map(lambda m: m[i],
                                            (diff_params, diff_updates))
    like = lambda new, old: jax.tree_util.tree_map(
        lambda a, b: a.astype(b.dtype), new, old)

    def right(vec, i):
      ds, dy = pair(i)
      alpha = weights[i] * tree.tree_real(tree.tree_vdot(ds, vec))
      return like(tree.tree_add_scale(vec, -alpha, dy), vec), alpha

    def left(vec, i_alpha):
      i, alpha = i_alpha
      ds, dy = pair(i)
      beta = weights[i] * tree.tree_real(tree.tree_vdot(dy, vec))
      return like(tree.tree_add_scale(vec, alpha - beta, ds), vec), beta

    vec, alphas = jax.lax.scan(right, updates, indices, reverse=True)
    vec = tree.tree_scale(scale, vec)
    vec, _ = jax.lax.scan(left, vec, (indices, alphas))
    return vec

  def update_fn(updates, state, params):
    diff_params = tree.tree_sub(params, state.params)
    diff_updates = tree.tree_sub(updates, state.updates)
    sy = tree.tree_real(tree.tree_vdot(diff_updates, diff_params))
    store = (state.count > 0) & (
        sy > eps * tree.tree_norm(diff_updates, squared=True))
    slot = (state.count - 1) % memory_size
    put = lambda m, new: m.at[slot].set(jnp.where(store, new, m[slot]))
    memory = jax.tree_util.tree_map(
        put, (state.diff_params_memory, state.diff_updates_memory,
              state.weights_memory),
        (diff_params, diff_updates, jnp.where(sy == 0.0, 0.0, 1.0 / sy)))
    # ``count`` - 1 pairs are stored; the newest sits at ``count - 2``.
    count = jnp.where(store | (state.count == 0),
                      optax.safe_increment(state.count), state.count)
    newest_s, newest_y = jax.tree_util.tree_map(
        lambda m: m[(count - 2) % memory_size], memory[:2])
    numerator = tree.tree_real(tree.tree_vdot(newest_y, newest_s))
    denominator = tree.tree_norm(newest_y, squared=True)
    scale = jnp.where(denominator > 0.0, numerator / denominator, 1.0)
    first = jnp.minimum(1.0, 1.0 / tree.tree_norm(
        jax.lax.stop_gradient(updates)))
    scale = jnp.where(count > 1, scale, first)
    out = precondition(updates, *memory, scale, (count - 1) % memory_size)
    return out, optax.ScaleByLBFGSState(count, params, updates, *memory)

  return optax.GradientTransformation(base.init, update_fn)


def _optax_lbfgs(fun, cfg: SolverConfig) -> _Method:
  # optax caps its first step at unit length; with the objective scaled by
  # 1/‖g₀‖₁ the scaled gradient is shorter than that, so the first step is
  # the same as jaxopt's above.
  # ``optax.lbfgs``'s chain, with pairs of negative curvature skipped.
  opt = optax.chain(_scale_by_lbfgs(cfg.history_size), optax.scale(-1.0),
                    _armijo_linesearch(cfg.max_linesearch_steps))
  get = optax.tree_utils.tree_get

  def init(x0):
    value, grad = jax.value_and_grad(lambda x: fun(x)[0])(x0)
    scale = _first_step_scale(grad)
    # Seed the state with f(x0) so the first step does not evaluate it again.
    state = optax.tree_utils.tree_set(opt.init(x0), value=value * scale,
                                      grad=grad * scale)
    gnorm0 = optax.tree_utils.tree_norm(grad) * scale
    return x0, state, jnp.asarray(1, jnp.int32), gnorm0, scale

  def step(carry):
    x, state, nfev, gnorm0, scale = carry
    value_fn = lambda x: fun(x)[0] * scale
    value, grad = get(state, "value"), get(state, "grad")
    updates, state = opt.update(grad, state, x, value=value, grad=grad,
                                value_fn=value_fn)
    x = optax.apply_updates(x, updates)
    steps = get(state, "info").num_linesearch_steps
    return x, state, nfev + jnp.asarray(steps, jnp.int32), gnorm0, scale

  def status(carry):
    _, state, _, gnorm0, _ = carry
    gnorm = optax.tree_utils.tree_norm(get(state, "grad"))
    s = jnp.where((cfg.tol > 0) & (gnorm <= cfg.tol * gnorm0),
                  _code(CONVERGED), _code(RUNNING))
    return _finite_status(get(state, "value"), s, gnorm)

  return _Method(init, step, x=lambda c: c[0],
                 value=lambda c: get(c[1], "value") / c[4],
                 evaluations=lambda c: c[2], status=status,
                 failed=lambda c: get(c[1], "info").decrease_error > 0,
                 last_value=lambda c: get(c[1], "value") / c[4])


def _first_order(opt: optax.GradientTransformation):
  """A first-order method of optax's ``opt``: ``x ← clip(x + update(∇f),
  lower, upper)`` every step; with ``step_key`` the objective receives step
  ``k``'s key (``SolverConfig``), ``k`` being its evaluation count."""
  def make(fun, cfg: SolverConfig) -> _Method:
    def value_and_grad(x, k):
      return jax.value_and_grad(lambda y: fun(y, k)[0])(x)

    def init(x0):
      return x0, opt.init(x0), jnp.asarray(0.0, jnp.float32), jnp.int32(0)

    def step(carry):
      x, state, _, nfev = carry
      value, grad = value_and_grad(x, nfev)
      updates, state = opt.update(grad, state, x)
      x = jnp.clip(optax.apply_updates(x, updates), cfg.lower, cfg.upper)
      return x, state, value, nfev + 1

    return _Method(init, step, x=lambda c: c[0], value=None,
                   evaluations=lambda c: c[3],
                   status=lambda c: _finite_status(c[2], _code(RUNNING)),
                   failed=lambda c: jnp.asarray(False),
                   last_value=lambda c: c[2])  # the value before the last step
  return make


def _adam(fun, cfg: SolverConfig) -> _Method:
  """Adam (Kingma & Ba 2015) with optax's defaults (β₁ 0.9, β₂ 0.999)."""
  return _first_order(optax.adam(cfg.learning_rate))(fun, cfg)


def _rmsprop(fun, cfg: SolverConfig) -> _Method:
  """RMSprop (Tieleman & Hinton 2012; torch.optim.RMSprop's defaults, which
  STROTSS uses: decay α 0.99, ε 1e-8 added outside the square root)."""
  return _first_order(optax.rmsprop(cfg.learning_rate, decay=0.99,
                                    eps=1e-8, eps_in_sqrt=False))(fun, cfg)


_METHODS = {"lbfgs": _jaxopt_lbfgs, "optax_lbfgs": _optax_lbfgs, "adam": _adam,
            "rmsprop": _rmsprop}
_FIRST_ORDER = ("adam", "rmsprop")


def _cell_functions(fun, config: SolverConfig, args, args_axes):
  """The method's functions on one cell, or lifted with ``jax.vmap`` over a
  leading batch axis of cells when ``args_axes`` is given (``args`` then holds
  per-cell data on axis 0 where ``args_axes`` says 0, shared data where None).
  """
  make_method = _METHODS[config.method]
  if config.step_key:   # step k evaluates with fold_in(key, k) (SolverConfig)
    method_for = lambda a: make_method(
        lambda x, k: fun(x, *a[:-1], jax.random.fold_in(a[-1], k)), config)
  elif config.method in _FIRST_ORDER:
    method_for = lambda a: make_method(lambda x, k: fun(x, *a), config)
  else:
    method_for = lambda a: make_method(lambda x: fun(x, *a), config)
  names = ("step", "x", "evaluations", "status", "failed")

  def progress_of(c, a):
    method = method_for(a)
    return method.last_value(c), method.evaluations(c)

  def value_of(c, a):
    method = method_for(a)
    if method.value is None:  # Adam knows f only before its last step
      return fun(method.x(c), *a)[0], method.evaluations(c) + 1
    return method.value(c), method.evaluations(c)

  fns = {"init": lambda x0, a: method_for(a).init(x0), "result": value_of,
         "progress": progress_of}
  for name in names:
    fns[name] = functools.partial(
        lambda c, a, name: getattr(method_for(a), name)(c), name=name)
  if args_axes is None:
    return {k: functools.partial(lambda f, c: f(c, args), f)
            for k, f in fns.items()}
  return {k: functools.partial(
      lambda f, c: f(c, args), jax.vmap(f, in_axes=(0, args_axes)))
          for k, f in fns.items()}


class _LoopState(NamedTuple):
  """The solver loop's state between chunks: the (scalar) iteration counter,
  the method's carry, consecutive failed line searches and iterations done
  (per cell when batched)."""
  i: jax.Array
  carry: Any
  fails: jax.Array
  iters: jax.Array


class Restart(NamedTuple):
  """Every ``every`` iterations, ``args(iteration, args)`` may return new
  data for the objective (or ``None``: keep it); the solver then restarts
  from the current iterate (``minimize(restart=...)``)."""
  every: int
  args: Callable[[int, tuple], tuple | None]


class Progress(NamedTuple):
  """Where a run is, after each chunk of iterations: the one progress type
  of the library (``on_chunk`` here, ``on_progress`` of
  ``transfer.stylize`` and ``grid.style_grid``).

  Iterations done, ``fun``'s value at the current iterate (per cell when
  batched; for Adam the value before its last step), function evaluations so
  far, whether any cell is still running, and ``x()``, which returns (a copy
  of) the current iterate — valid during the callback only. A transfer adds
  the iterations asked for (``iterations``), seconds since its start
  (compilation included) and its latest loss record (``record``:
  ``loss_history``'s format, or ``None`` before the first).
  """
  iteration: int
  value: Any
  evaluations: Any
  running: bool
  x: Callable[[], jax.Array] | None = None
  iterations: int = 0
  seconds: float = 0.0
  record: Dict[str, Any] | None = None


class SolverState(NamedTuple):
  """A run's whole solver state between two chunks, as numpy arrays: what
  ``minimize`` hands to ``Checkpoint.save`` and continues from with
  ``resume=``.

  ``loop`` is the loop state (``_LoopState``: iteration counter, the method's
  carry — the iterate, L-BFGS memory or Adam moments, value, gradient and
  evaluation count —, consecutive failed line searches, iterations done);
  ``done_iterations`` and ``done_evaluations`` count the solver segments
  before the last restart (``Restart``), and ``restarts_through`` is the last
  iteration whose restart point was processed (its new data are made again
  on resuming, by calling ``Restart.args`` at every earlier point). Store it
  with ``checkpoint.flatten`` and read it against ``state_template``.
  """
  loop: Any
  done_iterations: Any
  done_evaluations: Any
  restarts_through: Any


class Checkpoint(NamedTuple):
  """``save(SolverState)`` is called every ``every`` iterations (0: never)
  once that iteration's hooks and restart have run, and once more when
  ``should_stop`` stops the run. A ``save`` that raises ends the run with its
  exception (write atomically: the previous checkpoint stays intact)."""
  every: int
  save: Callable[[SolverState], None]


def state_template(fun: Callable, x0: jax.Array,
                   config: SolverConfig = SolverConfig(),
                   args: tuple = ()) -> SolverState:
  """The shapes and dtypes (``jax.ShapeDtypeStruct`` leaves) of
  ``minimize(fun, x0, config, args=args)``'s ``SolverState``, computed
  without evaluating ``fun`` (``jax.eval_shape``): the template a stored
  state is restored against (``checkpoint.unflatten``)."""
  loop = jax.eval_shape(functools.partial(_start, fun, config, None), x0,
                        tuple(args))
  count = jax.ShapeDtypeStruct((), jnp.int32)
  return SolverState(loop, count, count, count)


def _any_process(flag: bool) -> bool:
  """Whether ``flag`` holds on any process (one collective when JAX runs
  over several processes): a stop asked on one host stops every host at the
  same iteration, so their collectives stay matched."""
  if jax.process_count() == 1:
    return bool(flag)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return bool(np.any(multihost_utils.process_allgather(np.bool_(flag))))


def _agreed(value: int) -> int:
  """Process 0's ``value`` on every process (identity in one process): the
  chunk lengths that each host would adapt to its own clock must agree, or
  the hosts would run programs of different trip counts and deadlock."""
  if jax.process_count() == 1:
    return int(value)
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  return int(multihost_utils.broadcast_one_to_all(np.int32(value)))


def _strong(state: _LoopState) -> _LoopState:
  """The state with no weakly typed leaves. A solver's init may give a
  Python-scalar-born (weak) leaf that its update makes strong (optax's
  ``num_linesearch_steps``), so the state that ``_advance`` returns would
  differ in type from the one ``_start`` made, and the second chunk would
  recompile ``_advance`` (measured: 2 s at 512 px on the CPU). Both programs
  return states made strong here, so one compiled ``_advance`` serves every
  chunk."""
  return jax.tree_util.tree_map(
      lambda a: jax.lax.convert_element_type(a, jnp.result_type(a)), state)


def _start(fun, config: SolverConfig, args_axes, x0, args) -> _LoopState:
  cell = _cell_functions(fun, config, args, args_axes)
  carry = cell["init"](x0)
  zeros = jnp.zeros(jnp.shape(cell["status"](carry)), jnp.int32)
  return _strong(_LoopState(jnp.int32(0), carry, zeros, zeros))


def _advance(fun, config: SolverConfig, args_axes, state: _LoopState, stop,
             args):
  """Iterates until the counter reaches ``stop`` (a traced scalar, so one
  program serves every chunk length) or every cell has stopped.

  The counter is a scalar shared by all cells; a batch steps every cell with
  ``vmap`` and freezes those that have stopped. Returns the new state and the
  ``Progress`` arrays (value, evaluations, any running).
  """
  cell = _cell_functions(fun, config, args, args_axes)

  def running(carry, fails):
    return ((cell["status"](carry) == RUNNING) &
            (fails < config.max_failed_linesearches))

  def cond(state):
    return (state.i < jnp.minimum(stop, config.maxiter)) & jnp.any(
        running(state.carry, state.fails))

  def body(state):
    i, carry, fails, iters = state
    active = running(carry, fails)
    stepped = cell["step"](carry)
    carry = jax.tree_util.tree_map(
        lambda new, old: jnp.where(
            active.reshape(active.shape + (1,) * (new.ndim - active.ndim)),
            new, old), stepped, carry)
    fails = jnp.where(active, jnp.where(cell["failed"](carry), fails + 1, 0),
                      fails)
    return _LoopState(i + 1, carry, fails, iters + active.astype(jnp.int32))

  state = jax.lax.while_loop(cond, body, state)
  value, evaluations = cell["progress"](state.carry)
  any_running = (state.i < config.maxiter) & jnp.any(
      running(state.carry, state.fails))
  return _strong(state), (value, evaluations, any_running)


def _finish(fun, config: SolverConfig, args_axes, state: _LoopState,
            args) -> SolveResult:
  cell = _cell_functions(fun, config, args, args_axes)
  value, evaluations = cell["result"](state.carry)
  status = cell["status"](state.carry)
  status = jnp.where((status == RUNNING) &
                     (state.fails >= config.max_failed_linesearches),
                     _code(LINESEARCH_FAILED), status)
  return SolveResult(cell["x"](state.carry), value, state.iters,
                     jnp.asarray(evaluations, jnp.int32), status)


def _run(fun, config: SolverConfig, args_axes, x0, args) -> SolveResult:
  """The whole loop as one traceable function (no host round trips)."""
  state = _start(fun, config, args_axes, x0, args)
  state, _ = _advance(fun, config, args_axes, state, config.maxiter, args)
  return _finish(fun, config, args_axes, state, args)


class _Programs(NamedTuple):
  run: Callable      # (x0, args) -> SolveResult: the whole loop at once
  start: Callable    # (x0, args) -> state
  advance: Callable  # (state, stop, args) -> (state, progress arrays)
  finish: Callable   # (state, args) -> SolveResult
  x: Callable        # state -> the current iterate


@functools.lru_cache(maxsize=32)
def _compiled(fun: Callable, config: SolverConfig, args_axes,
              donate: bool = False) -> _Programs:
  """The jit-compiled programs for one (objective, configuration, batch
  layout); cached so that new data of the same shapes reuse them. With
  ``donate`` the buffer of ``x0`` is donated (XLA may reuse it for ``x``);
  the loop state is always donated from chunk to chunk. None of them holds a
  host callback, so JAX's persistent compilation cache can store them."""
  part = lambda f: functools.partial(f, fun, config, args_axes)
  x_of = lambda state: state.carry[0]  # every method's carry starts with x
  return _Programs(
      run=jax.jit(part(_run), donate_argnums=(0,) if donate else ()),
      start=jax.jit(part(_start), donate_argnums=(0,) if donate else ()),
      advance=jax.jit(part(_advance), donate_argnums=(0,)),
      finish=jax.jit(part(_finish)),
      x=jax.jit(x_of))


@functools.lru_cache(maxsize=64)
def _hook_program(device_fn: Callable, x_of: Callable):
  return jax.jit(lambda state, args: device_fn(x_of(state), *args))


def _host_scalar(a):
  """A replicated scalar's value, also when it spans several hosts."""
  if getattr(a, "is_fully_addressable", True):
    return a.item() if hasattr(a, "item") else a
  return a.addressable_shards[0].data.item()


def _to_host(tree):
  """Numpy copies of a hook's output (the state buffers are donated to the
  next chunk); arrays spread over several hosts stay as they are."""
  return jax.tree_util.tree_map(
      lambda a: jax.device_get(a)
      if getattr(a, "is_fully_addressable", True) else a, tree)


def _host_copy(tree):
  """Numpy copies of every leaf; an array spread over several processes is
  gathered (a collective: every process calls this at the same point)."""
  def copy(a):
    if isinstance(a, jax.Array) and not a.is_fully_addressable:
      from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
      return np.asarray(multihost_utils.process_allgather(a, tiled=True))
    return np.asarray(jax.device_get(a))
  return jax.tree_util.tree_map(copy, tree)


def _drive(programs: _Programs, config: SolverConfig, hooks: tuple, x0, args,
           should_stop, on_chunk, chunk_seconds,
           restart: "Restart | None" = None,
           checkpoint: "Checkpoint | None" = None,
           resume: "SolverState | None" = None) -> SolveResult:
  """Runs the loop from the host in chunks of iterations.

  A chunk ends at the next multiple of a hook's ``every`` (hooks fire there
  with the iterate), after about ``chunk_seconds`` of work (chunk lengths
  adapt to the measured speed; ``None``: no time limit) or when every cell
  stops. Between chunks ``on_chunk(Progress)`` is called and
  ``should_stop()`` asked; a run told to stop keeps its iterate and reports
  status ``interrupted``. The iterations themselves are the same whatever the
  chunking: the state passes unchanged from chunk to chunk.

  With ``restart``, chunks also end at multiples of ``restart.every``; there
  ``restart.args(i, args)`` may return new data (e.g. re-drawn targets), and
  the solver then starts afresh from the current iterate (its memory
  belongs to the old objective) while the iteration count, hooks, progress
  and the reported iterations and evaluations go on over the whole run.

  With ``checkpoint``, chunks also end at multiples of ``checkpoint.every``,
  where (after the hooks and the restart) ``checkpoint.save`` receives the
  whole ``SolverState``; with ``resume`` (such a state) the run continues
  from it instead of starting at ``x0``: the same iterates as a run never
  stopped. Over several processes the chunk lengths (process 0's) and the
  stop (any process's) are agreed by collectives.
  """
  saves = checkpoint is not None and checkpoint.every > 0
  if resume is None:
    state = programs.start(x0, args)
    done_iters, done_evals = 0, 0   # of the segments before the last restart
    processed = 0                   # the last restart point handled
  else:
    state = jax.tree_util.tree_map(jnp.asarray, resume.loop)
    done_iters = jnp.asarray(resume.done_iterations)
    done_evals = jnp.asarray(resume.done_evaluations)
    processed = int(resume.restarts_through)
    if restart:   # the data of every restart point passed, made again
      for k in range(restart.every, processed + 1, restart.every):
        new_args = restart.args(k, args)
        if new_args is not None:
          args = tuple(new_args)

  def fire(i):
    for hook in hooks:
      if i % hook.every == 0:
        out = _hook_program(hook.device_fn, programs.x)(state, args)
        hook.host_fn(i, _to_host(out))

  def save():
    checkpoint.save(SolverState(
        _host_copy(state), np.asarray(done_iters, np.int32),
        np.asarray(done_evals, np.int32), np.int32(processed)))

  i = int(_host_scalar(state.i))
  if resume is None:
    fire(0)
  length, interrupted = 1, False
  while i < config.maxiter:
    stop = min([config.maxiter, i + length if chunk_seconds else
                config.maxiter] +
               [(i // h.every + 1) * h.every for h in hooks] +
               ([(i // restart.every + 1) * restart.every] if restart else [])
               + ([(i // checkpoint.every + 1) * checkpoint.every]
                  if saves else []))
    began = time.perf_counter()
    with warnings.catch_warnings():
      # Leaves the loop never changes are forwarded, not written: XLA then
      # reports their donated buffers as unused, which is harmless.
      warnings.filterwarnings("ignore", "Some donated buffers were not usable")
      state, (value, evaluations, running) = programs.advance(
          state, jnp.int32(stop), args)
    running = bool(_host_scalar(running))
    elapsed = time.perf_counter() - began
    done, i = i, int(_host_scalar(state.i))
    if i > done:
      fire(i)
    if on_chunk is not None:
      on_chunk(Progress(i, value, evaluations + done_evals, running,
                        functools.partial(programs.x, state)))
    if not running:
      break
    if should_stop is not None and _any_process(should_stop()):
      interrupted = True
      if checkpoint is not None:
        save()
      break
    if restart and i % restart.every == 0 and i < config.maxiter:
      new_args = restart.args(i, args)
      if new_args is not None:
        done_iters = state.iters + done_iters
        done_evals = evaluations + done_evals
        args = tuple(new_args)
        state = programs.start(programs.x(state), args)._replace(i=state.i)
      processed = i
    if saves and i % checkpoint.every == 0:
      save()
    if chunk_seconds:   # aim the next chunk at chunk_seconds, growing slowly
      rate = max(i - done, 1) / max(elapsed, 1e-6)
      length = _agreed(int(min(max(1, rate * chunk_seconds), 2 * length)))
  result = programs.finish(state, args)
  if restart:
    result = result._replace(
        iterations=result.iterations + done_iters,
        function_evaluations=result.function_evaluations + done_evals)
  if interrupted:
    result = result._replace(status=jnp.where(
        result.status == RUNNING, _code(INTERRUPTED), result.status))
  return result


def _check(config: SolverConfig, hooks):
  errors.check_choice("method", config.method, METHODS)
  if config.step_key and config.method not in _FIRST_ORDER:
    raise NSTError(f"a stochastic objective ({errors.param('step_key')}) "
                   f"needs a first-order method ({', '.join(_FIRST_ORDER)}), "
                   f"got {config.method}")
  if config.maxiter < 0:
    raise NSTError(f"{errors.param('maxiter')} must be >= 0, got "
                   f"{config.maxiter}")
  return tuple(h for h in hooks if h.every > 0)


def _solve(fun, x0, config, hooks, args, args_axes, donate, should_stop,
           on_chunk, chunk_seconds, restart=None, checkpoint=None,
           resume=None) -> SolveResult:
  hooks = _check(config, hooks)
  if restart is not None and int(restart.every) < 1:
    raise NSTError(f"{errors.param('restart')}.every must be >= 1, got "
                   f"{restart.every}")
  if checkpoint is not None and int(checkpoint.every) < 0:
    raise NSTError(f"{errors.param('checkpoint')}.every must be >= 0, got "
                   f"{checkpoint.every}")
  host_driven = (bool(hooks) or should_stop is not None or on_chunk is not None
                 or restart is not None or checkpoint is not None
                 or resume is not None)
  if isinstance(x0, jax.core.Tracer) or any(
      isinstance(leaf, jax.core.Tracer)
      for leaf in jax.tree_util.tree_leaves(args)):
    if host_driven:
      raise NSTError(f"{errors.param('hooks')}, {errors.param('should_stop')}"
                     f" and {errors.param('on_chunk')} run on the host: call "
                     "minimize outside jax.jit to use them")
    return _run(fun, config, args_axes, x0, tuple(args))
  programs = _compiled(fun, config, args_axes, donate)
  if not host_driven:
    return programs.run(x0, tuple(args))
  return _drive(programs, config, hooks, x0, tuple(args), should_stop,
                on_chunk, chunk_seconds, restart, checkpoint, resume)


def minimize(fun: Callable, x0: jax.Array,
             config: SolverConfig = SolverConfig(),
             hooks: Sequence[Hook] = (), args: tuple = (), *,
             donate: bool = False,
             should_stop: Callable[[], bool] | None = None,
             on_chunk: Callable[[Progress], None] | None = None,
             chunk_seconds: float | None = None,
             restart: Restart | None = None,
             checkpoint: Checkpoint | None = None,
             resume: SolverState | None = None) -> SolveResult:
  """Minimises ``fun(x, *args) -> (value, aux)`` from ``x0``.

  Stops after ``config.maxiter`` iterations, or earlier when the value is not
  finite, ``config.max_failed_linesearches`` line searches in a row find no
  decrease, or ``config.tol`` is met. ``status`` holds a ``Status`` code
  (``status_name`` reads it).
  For Adam, ``value`` costs one more evaluation of ``fun`` at the result
  (counted in ``function_evaluations``).

  Without hooks, ``should_stop`` and ``on_chunk`` the whole loop is one
  compiled program (also when ``minimize`` is called inside ``jax.jit``).
  With them the same compiled iterations run in chunks driven from the host
  (``_drive``): hooks fire every ``every`` iterations, ``on_chunk`` receives a
  ``Progress`` after each chunk, ``should_stop()`` (e.g. set by Ctrl-C) ends
  the run between chunks with status ``interrupted``, and ``chunk_seconds``
  bounds a chunk's length in time. The result is identical either way.

  With ``donate`` the device buffer of ``x0`` is donated to the compiled loop
  and ``x0`` must not be used afterwards: pass it for an ``x0`` the caller
  owns (``nst_jax.transfer`` does).

  ``restart`` (a ``Restart``) changes the objective's data every
  ``restart.every`` iterations and restarts the solver there (``_drive``):
  what a representation that re-draws its target needs.

  ``checkpoint`` (a ``Checkpoint``) receives the whole ``SolverState`` every
  ``checkpoint.every`` iterations and when ``should_stop`` stops the run;
  ``resume`` (such a state, e.g. read back with ``checkpoint.unflatten``
  against ``state_template``) continues that run: its iterates, counts and
  result are those of the run never stopped (bit-identical on the CPU), and
  hooks do not fire again at the iteration it resumes from. ``x0`` then only
  gives shapes.
  """
  return _solve(fun, x0, config, hooks, args, None, donate, should_stop,
                on_chunk, chunk_seconds, restart, checkpoint, resume)


def minimize_batched(fun: Callable, x0: jax.Array,
                     config: SolverConfig = SolverConfig(),
                     hooks: Sequence[Hook] = (), args: tuple = (),
                     args_axes: tuple = (), *,
                     should_stop: Callable[[], bool] | None = None,
                     on_chunk: Callable[[Progress], None] | None = None,
                     chunk_seconds: float | None = None) -> SolveResult:
  """Minimises a batch of independent problems in ONE compiled loop.

  ``x0`` has a leading axis of ``B`` cells; ``args_axes`` mirrors ``args``
  like ``jax.vmap``'s ``in_axes`` (0: per-cell data on axis 0, None:
  shared). Each cell has its own solver state, line searches, counts and stop
  reason; a stopped cell is frozen while the others go on, and the loop ends
  when every cell has stopped. Every field of the result has the leading
  axis ``B``. Hooks receive the whole batch: ``device_fn(x (B, ...), *args)``;
  ``should_stop``, ``on_chunk`` and ``chunk_seconds`` work as in
  ``minimize``. Shard ``x0`` and the per-cell ``args`` over a device mesh and
  the loop runs sharded (``nst_jax.grid``).
  """
  args_axes = tuple(args_axes)
  if len(args_axes) != len(args):
    raise NSTError(f"{errors.param('args_axes')} has {len(args_axes)} "
                   f"entries for {len(args)} {errors.param('args')}")
  return _solve(fun, x0, config, hooks, args, args_axes, False, should_stop,
                on_chunk, chunk_seconds)
