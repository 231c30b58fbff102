"""Tests of nst_jax.solvers on problems with known minima.

Results are compared with ``numpy.linalg.solve`` and
``scipy.optimize.minimize``; function evaluations are counted on the host by a
``jax.debug.callback`` inside the objective, which fires once per value-and-
gradient actually executed by the compiled loop.

A run cut into host-driven chunks, or stopped early, ends on XLA:CPU exactly
where one compiled program does (bit for bit: the same operations in the same
order). On a GPU the chunk and the whole loop are different programs, which
XLA:GPU may fuse and reduce in other orders: there the promise is the same
iterate to float32 rounding (``conftest.tol``), with the same iteration and
evaluation counts.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import scipy.optimize

from conftest import tol
from nst_jax import solvers
from nst_jax.errors import NSTError


# --- problems -------------------------------------------------------------------


def _quadratic_data(n=64, seed=0):
  rng = np.random.default_rng(seed)
  a = rng.normal(size=(n, n))
  q = a @ a.T / n + np.eye(n)  # SPD, condition number about 5
  b = rng.normal(size=n)
  return q, b


Q, B = _quadratic_data()
X_STAR = np.linalg.solve(Q, B).reshape(8, 8)


def quadratic(x):
  """0.5 xᵀQx − bᵀx on an (8, 8) "image"; aux carries the value too."""
  v = x.reshape(-1)
  q, b = jnp.asarray(Q, x.dtype), jnp.asarray(B, x.dtype)
  value = 0.5 * jnp.dot(v, jnp.dot(q, v, precision="highest"),
                        precision="highest") - jnp.dot(b, v, precision="highest")
  return value, {"value": value}


def rosenbrock(x):
  value = jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2)
  return value, ()


class Counter:
  """Counts evaluations of ``fun`` at run time through a host callback."""

  def __init__(self, fun):
    self.n = 0
    self._fun = fun

  def _tick(self):
    self.n += 1

  def __call__(self, x):
    jax.debug.callback(self._tick)
    return self._fun(x)


def _solve(fun, x0, hooks=(), **config):
  result = solvers.minimize(fun, jnp.asarray(x0, jnp.float32),
                            solvers.SolverConfig(**config), hooks)
  jax.block_until_ready(result)
  jax.effects_barrier()  # every debug.callback has run
  return result


ADAM_BOX = dict(lower=-10.0, upper=10.0)


# --- quadratic: against a direct solve and scipy --------------------------------


@pytest.mark.parametrize("method,config", [
    ("optax_lbfgs", dict(maxiter=25)),  # quasi-Newton: few iterations suffice
    ("lbfgs", dict(maxiter=25)),
    ("adam", dict(maxiter=1500, learning_rate=0.02, **ADAM_BOX)),
])
def test_quadratic_reaches_solution(method, config):
  result = _solve(quadratic, np.zeros((8, 8)), method=method, **config)
  ref = scipy.optimize.minimize(
      lambda v: (0.5 * v @ Q @ v - B @ v, Q @ v - B), np.zeros(64), jac=True,
      method="L-BFGS-B", options=dict(gtol=1e-12, ftol=1e-15))
  np.testing.assert_allclose(ref.x.reshape(8, 8), X_STAR, atol=1e-6)
  assert isinstance(result, solvers.SolveResult)
  assert result.x.shape == (8, 8) and result.x.dtype == jnp.float32
  np.testing.assert_allclose(np.asarray(result.x), ref.x.reshape(8, 8),
                             atol=1e-3)
  np.testing.assert_allclose(float(result.value), ref.fun, rtol=1e-5)
  if method != "adam":  # value is f(x) (Adam: see test_adam_value_is_value_at_x)
    np.testing.assert_allclose(float(result.value),
                               float(quadratic(result.x)[0]), rtol=1e-6)
  assert 0 < int(result.iterations) <= config["maxiter"]
  assert result.iterations.dtype == jnp.int32
  assert result.function_evaluations.dtype == jnp.int32
  assert result.value.shape == () and result.status.shape == ()
  assert solvers.STATUS_NAMES[int(result.status)] in (
      "max_iterations", "linesearch_failed", "converged")


def test_lbfgs_tol_converges_early():
  result = _solve(quadratic, np.zeros((8, 8)), method="lbfgs", maxiter=200,
                  tol=1e-3)
  assert solvers.STATUS_NAMES[int(result.status)] == "converged"
  assert int(result.iterations) < 200
  g = np.asarray(jax.grad(lambda x: quadratic(x)[0])(result.x))
  g0 = np.asarray(jax.grad(lambda x: quadratic(x)[0])(jnp.zeros((8, 8))))
  assert np.linalg.norm(g) <= 2e-3 * np.linalg.norm(g0)


# --- Rosenbrock -----------------------------------------------------------------

@pytest.mark.parametrize("method,x0", [
    ("optax_lbfgs", (-1.2, 1.0)),
    ("optax_lbfgs", (-1.0, -1.0)),
    ("lbfgs", (-1.2, 1.0)),
    ("lbfgs", (-1.0, -1.0)),
])
def test_rosenbrock_lbfgs(method, x0):
  ref = scipy.optimize.minimize(scipy.optimize.rosen, np.array(x0),
                                jac=scipy.optimize.rosen_der, method="L-BFGS-B")
  np.testing.assert_allclose(ref.x, [1.0, 1.0], atol=1e-3)
  result = _solve(rosenbrock, x0, method=method, maxiter=300)
  np.testing.assert_allclose(np.asarray(result.x), ref.x, atol=1e-3)
  assert float(result.value) < 1e-6


def test_rosenbrock_adam():
  result = _solve(rosenbrock, (-1.2, 1.0), method="adam", maxiter=3000,
                  learning_rate=0.05, lower=-5.0, upper=5.0)
  np.testing.assert_allclose(np.asarray(result.x), [1.0, 1.0], atol=1e-3)
  assert int(result.iterations) == 3000
  assert solvers.STATUS_NAMES[int(result.status)] == "max_iterations"


# --- exact evaluation counts ----------------------------------------------------

@pytest.mark.parametrize("method", [
    "adam", "lbfgs", "optax_lbfgs",
])
def test_function_evaluations_are_exact(method):
  """``function_evaluations`` is the number of value-and-gradient calls run.

  jaxopt's 'lbfgs' (zoom line search, value_and_grad=True) only ever calls
  value-and-gradient, so the counter equals its count exactly: 1 for the
  1/‖g₀‖₁ scale + 1 for init_state + the line-search calls (two per iteration
  on this quadratic). Adam: one per iteration. (maxiter=0 is checked in
  test_maxiter_zero_returns_x0.)
  """
  counter = Counter(quadratic)
  result = _solve(counter, np.zeros((8, 8)), method=method, maxiter=7,
                  **ADAM_BOX)
  assert int(result.iterations) == 7  # no early stop on this budget
  assert counter.n == int(result.function_evaluations)
  if method == "lbfgs":
    assert counter.n == 2 + 2 * 7
  if method == "adam":
    assert counter.n == 7 + 1  # one per step, and the value at the result


def test_hooks_do_not_count_as_evaluations():
  counter = Counter(quadratic)
  calls = []
  hook = solvers.Hook(1, lambda x: quadratic(x)[0],
                      lambda i, v: calls.append(int(i)))
  result = _solve(counter, np.zeros((8, 8)), hooks=[hook], method="adam",
                  maxiter=5, **ADAM_BOX)
  assert calls == [0, 1, 2, 3, 4, 5]
  assert counter.n == int(result.function_evaluations) == 5 + 1


# --- status ---------------------------------------------------------------------


def _nan_beyond(x):
  """Finite on max(x) <= 1.5, NaN beyond; the minimum (3, ...) is beyond."""
  value = jnp.sum((x - 3.0) ** 2)
  return jnp.where(jnp.max(x) > 1.5, jnp.nan, value), ()


def _neginf_beyond(x):
  value = jnp.sum((x - 3.0) ** 2)
  return jnp.where(jnp.max(x) > 1.5, -jnp.inf, value), ()


def _nan_everywhere(x):
  return jnp.sum(x) * jnp.nan, ()


@pytest.mark.parametrize("method", solvers.METHODS)
def test_status_non_finite_after_some_iterations(method):
  fun = _nan_beyond if method == "adam" else _neginf_beyond
  result = _solve(fun, np.zeros((4, 4)), method=method, maxiter=200,
                  learning_rate=0.1, lower=-10.0, upper=10.0)
  assert solvers.STATUS_NAMES[int(result.status)] == "non_finite"
  assert 0 < int(result.iterations) < 200
  assert not np.isfinite(float(result.value))


@pytest.mark.parametrize("method", solvers.METHODS)
def test_status_non_finite_from_the_start(method):
  result = _solve(_nan_everywhere, np.zeros((4, 4)), method=method,
                  maxiter=50, **ADAM_BOX)
  assert solvers.STATUS_NAMES[int(result.status)] == "non_finite"
  assert int(result.iterations) <= 1


@pytest.mark.parametrize("method", ["optax_lbfgs", "lbfgs"])
def test_lbfgs_line_search_rejects_nan_trial_points(method):
  """A NaN trial value fails the sufficient-decrease test (comparisons with
  NaN are false), so L-BFGS stays in the finite region — it either backtracks
  into it or stops on failed line searches — and never returns a NaN iterate."""
  result = _solve(_nan_beyond, np.zeros((4, 4)), method=method, maxiter=200)
  assert solvers.STATUS_NAMES[int(result.status)] in ("linesearch_failed",
                                                     "max_iterations")
  assert np.all(np.isfinite(np.asarray(result.x)))
  assert float(np.asarray(result.x).max()) <= 1.5
  assert np.isfinite(float(result.value))


# --- hooks ----------------------------------------------------------------------


@pytest.mark.parametrize("method", solvers.METHODS)
def test_hooks_fire_at_multiples_of_every(method):
  every, maxiter = 3, 10
  seen, values, each = [], [], []
  hooks = [
      solvers.Hook(every, lambda x: x, lambda i, x: seen.append(
          (int(i), np.asarray(x)))),
      solvers.Hook(4, lambda x: quadratic(x)[1],
                   lambda i, aux: values.append((int(i), float(aux["value"])))),
      solvers.Hook(0, lambda x: x, lambda i, x: pytest.fail("every=0 fired")),
      solvers.Hook(1, lambda x: x, lambda i, x: each.append(np.asarray(x))),
  ]
  result = _solve(quadratic, np.zeros((8, 8)), hooks=hooks, method=method,
                  maxiter=maxiter, **ADAM_BOX)
  assert int(result.iterations) == maxiter
  assert [i for i, _ in seen] == [0, 3, 6, 9]
  assert [i for i, _ in values] == [0, 4, 8]
  assert len(each) == maxiter + 1
  # Payloads: the iterate after i iterations.
  np.testing.assert_array_equal(each[0], np.zeros((8, 8)))
  np.testing.assert_array_equal(each[-1], np.asarray(result.x))
  assert not np.allclose(each[3], each[6])
  for i, x in seen:
    assert x.shape == (8, 8)
    np.testing.assert_array_equal(x, each[i])
  for i, v in values:
    np.testing.assert_allclose(v, float(quadratic(jnp.asarray(each[i]))[0]),
                               rtol=1e-5, atol=1e-6)
  assert values[0][1] == 0.0  # f(0) = 0
  # ... and a run stopped at iteration 6 ends where this one was then.
  stopped = _solve(quadratic, np.zeros((8, 8)), method=method, maxiter=6,
                   **ADAM_BOX)
  np.testing.assert_allclose(each[6], np.asarray(stopped.x), rtol=1e-5,
                             atol=1e-6)


def test_hooks_stop_with_the_loop():
  seen = []
  hook = solvers.Hook(1, lambda x: x, lambda i, x: seen.append(int(i)))
  result = _solve(_nan_beyond, np.zeros((4, 4)), hooks=[hook], method="adam",
                  maxiter=200, learning_rate=0.1)
  assert seen == list(range(int(result.iterations) + 1))


# --- Adam's box, maxiter=0, value, errors ---------------------------------------


@pytest.mark.parametrize("lower,upper", [(0.0, 1.0), (-0.5, 0.25)])
def test_adam_respects_box(lower, upper):
  """Minimum at 2 (outside the box): every iterate stays inside and the
  result is the upper face."""
  lows, highs = [], []
  hook = solvers.Hook(1, lambda x: (x.min(), x.max()),
                      lambda i, mm: (lows.append(float(mm[0])),
                                     highs.append(float(mm[1]))))
  fun = lambda x: (jnp.sum((x - 2.0) ** 2), ())
  x0 = np.linspace(lower, upper, 16).reshape(4, 4)
  result = _solve(fun, x0, hooks=[hook], method="adam", maxiter=300,
                  learning_rate=0.05, lower=lower, upper=upper)
  assert min(lows) >= lower and max(highs) <= upper
  assert len(lows) == 301
  np.testing.assert_allclose(np.asarray(result.x), upper, atol=1e-6)


@pytest.mark.parametrize("method", solvers.METHODS)
def test_maxiter_zero_returns_x0(method):
  x0 = np.random.default_rng(0).normal(size=(8, 8)).astype(np.float32)
  counter = Counter(quadratic)
  result = _solve(counter, x0, method=method, maxiter=0, **ADAM_BOX)
  np.testing.assert_array_equal(np.asarray(result.x), x0)
  assert int(result.iterations) == 0
  assert solvers.STATUS_NAMES[int(result.status)] == "max_iterations"
  assert counter.n == int(result.function_evaluations)
  np.testing.assert_allclose(float(result.value), float(quadratic(x0)[0]),
                             rtol=1e-6)


def test_adam_value_is_value_at_x():
  x0 = np.random.default_rng(1).normal(size=(8, 8)).astype(np.float32)
  result = _solve(quadratic, x0, method="adam", maxiter=5, **ADAM_BOX)
  np.testing.assert_allclose(float(result.value),
                             float(quadratic(result.x)[0]), rtol=1e-5)


def test_bad_method_and_maxiter_raise():
  with pytest.raises(ValueError, match="newton"):
    solvers.minimize(quadratic, jnp.zeros((8, 8)),
                     solvers.SolverConfig(method="newton"))
  with pytest.raises(ValueError, match="maxiter"):
    solvers.minimize(quadratic, jnp.zeros((8, 8)),
                     solvers.SolverConfig(maxiter=-1))


def test_methods_constant_matches_implementations():
  assert set(solvers.METHODS) == {"optax_lbfgs", "lbfgs", "adam", "rmsprop"}
  assert solvers.SolverConfig().method in solvers.METHODS


def _rmsprop_reference(grad_fn, x, steps, lr, alpha=0.99, eps=1e-8):
  """torch.optim.RMSprop's update (default: no momentum, not centred),
  written out in float64: v ← αv + (1-α)g², x ← x - lr·g/(√v + ε)."""
  v = np.zeros_like(x)
  for _ in range(steps):
    g = grad_fn(x)
    v = alpha * v + (1 - alpha) * g * g
    x = x - lr * g / (np.sqrt(v) + eps)
  return x


@pytest.mark.parametrize("size", [1.0, 1e-9])
def test_rmsprop_steps_are_torchs_rmsprop(size):
  """Also where the gradients are as small as ε: torch adds ε outside the
  square root (optax's default puts it inside)."""
  x0 = np.linspace(-1.0, 1.0, 12).reshape(3, 4)
  target = np.cos(np.arange(12.0)).reshape(3, 4)
  scale = size * np.tile(1.0 + np.arange(4.0), (3, 1))
  fun = lambda x: (jnp.sum((x - target) ** 2 * scale), ())
  result = _solve(fun, x0, method="rmsprop", maxiter=7, learning_rate=0.05,
                  lower=-10.0, upper=10.0)
  ref = _rmsprop_reference(lambda x: 2 * (x - target) * scale,
                           x0, 7, 0.05)
  np.testing.assert_allclose(np.asarray(result.x), ref, rtol=1e-5, atol=1e-6)
  assert int(result.iterations) == 7


@pytest.mark.parametrize("method", ["adam", "rmsprop"])
def test_a_stochastic_objective_gets_step_ks_key(method):
  """With ``step_key`` the last argument is a key and step k evaluates with
  fold_in(key, k): the iterates equal a hand-written loop that draws so,
  and differ from one that reuses the key (so the key is really varied)."""
  key = jax.random.key(3)
  fun = lambda x, key: (jnp.sum((x - jax.random.normal(key, x.shape)) ** 2),
                        ())
  config = solvers.SolverConfig(method=method, maxiter=5, learning_rate=0.1,
                                lower=-10.0, upper=10.0, step_key=True)
  x0 = jnp.zeros((2, 3))
  result = solvers.minimize(fun, x0, config, args=(key,))
  opt = (optax.adam(0.1) if method == "adam"
         else optax.rmsprop(0.1, decay=0.99, eps=1e-8, eps_in_sqrt=False))
  def loop(keys):
    x, state = x0, opt.init(x0)
    for k in keys:
      g = jax.grad(lambda y: fun(y, k)[0])(x)
      updates, state = opt.update(g, state, x)
      x = jnp.clip(optax.apply_updates(x, updates), -10.0, 10.0)
    return np.asarray(x)
  np.testing.assert_allclose(
      np.asarray(result.x),
      loop([jax.random.fold_in(key, k) for k in range(5)]), rtol=1e-6)
  assert not np.allclose(np.asarray(result.x), loop([key] * 5), atol=1e-3)
  with pytest.raises(NSTError, match="first-order"):
    solvers.minimize(fun, x0, config.__class__(step_key=True), args=(key,))


def test_second_call_does_not_recompile():
  traces = []

  def fun(x):
    traces.append(1)  # runs only while tracing
    return quadratic(x)

  config = solvers.SolverConfig(method="adam", maxiter=3, **ADAM_BOX)
  solvers.minimize(fun, jnp.zeros((8, 8)), config)
  first = len(traces)
  assert first > 0
  solvers.minimize(fun, jnp.ones((8, 8)), config)
  assert len(traces) == first


# --- host-driven chunks: progress, interruption ----------------------------------


def _always_chunked(fun, x0, method, maxiter, **kw):
  """The same run cut into chunks of one iteration (chunk_seconds tiny)."""
  seen = []
  result = solvers.minimize(
      fun, jnp.asarray(x0, jnp.float32),
      solvers.SolverConfig(method=method, maxiter=maxiter, **ADAM_BOX),
      on_chunk=seen.append, chunk_seconds=1e-9, **kw)
  return result, seen


@pytest.mark.parametrize("method", solvers.METHODS)
def test_chunked_run_is_identical_to_one_program(method):
  x0 = np.random.default_rng(2).normal(size=(8, 8)).astype(np.float32)
  whole = _solve(quadratic, x0, method=method, maxiter=12, **ADAM_BOX)
  chunked, seen = _always_chunked(quadratic, x0, method, 12)
  same = dict(rtol=tol(0, 1e-5), atol=tol(0, 1e-6))  # exact on the CPU
  np.testing.assert_allclose(np.asarray(chunked.x), np.asarray(whole.x),
                             **same)
  for field in ("iterations", "function_evaluations", "status"):
    assert int(getattr(chunked, field)) == int(getattr(whole, field))
  np.testing.assert_allclose(float(chunked.value), float(whole.value), **same)
  # One chunk per iteration: Progress after each, values decreasing.
  assert [p.iteration for p in seen] == list(range(1, 13))
  assert [bool(p.running) for p in seen] == [True] * 11 + [False]
  values = [float(p.value) for p in seen]
  assert values[-1] < values[0]
  evaluations = [int(p.evaluations) for p in seen]
  assert evaluations == sorted(evaluations)
  assert evaluations[-1] <= int(whole.function_evaluations)
  np.testing.assert_allclose(np.asarray(seen[-1].x()), np.asarray(whole.x),
                             **same)


@pytest.mark.parametrize("batched", [False, True])
@pytest.mark.parametrize("method", solvers.METHODS)
def test_chunks_compile_the_advance_program_once(method, batched):
  """Regression test: optax_lbfgs's initial state had a weakly typed leaf
  that its update made strong, so the state after the first chunk had
  another type and every run compiled the chunk program twice (2 s at
  512 px)."""
  fun = lambda x, s: quadratic(x * s)
  config = solvers.SolverConfig(method=method, maxiter=5, **ADAM_BOX)
  x0, args, axes = jnp.ones((8, 8)), (jnp.float32(1.5),), None
  if batched:
    x0, args, axes = jnp.stack([x0, 2 * x0]), (jnp.asarray([1.5, 2.0]),), (0,)
  run = solvers.minimize_batched if batched else solvers.minimize
  kw = {"args_axes": axes} if batched else {}
  run(fun, x0, config, args=args, on_chunk=lambda p: None,
      chunk_seconds=1e-9, **kw)
  advance = solvers._compiled(fun, config, axes, False).advance  # pylint: disable=protected-access
  assert advance._cache_size() == 1  # pylint: disable=protected-access


@pytest.mark.parametrize("method", solvers.METHODS)
def test_should_stop_ends_the_run_as_interrupted(method):
  x0 = np.random.default_rng(3).normal(size=(8, 8)).astype(np.float32)
  asked = []

  def should_stop():
    asked.append(1)
    return len(asked) >= 4   # after the fourth chunk

  result, seen = _always_chunked(quadratic, x0, method, 50,
                                 should_stop=should_stop)
  assert solvers.STATUS_NAMES[int(result.status)] == "interrupted"
  assert int(result.iterations) == 4 == seen[-1].iteration
  # The iterate reached is the one of a run that stops there by itself.
  short = _solve(quadratic, x0, method=method, maxiter=4, **ADAM_BOX)
  np.testing.assert_allclose(np.asarray(result.x), np.asarray(short.x),
                             rtol=tol(0, 1e-5), atol=tol(0, 1e-6))


def test_chunks_adapt_to_time_and_respect_hooks():
  """With a generous time budget the chunks grow (doubling), yet every hook
  still fires exactly at its multiples."""
  fired, seen = [], []
  hook = solvers.Hook(7, lambda x: x.sum(), lambda i, v: fired.append(int(i)))
  solvers.minimize(quadratic, jnp.zeros((8, 8)),
                   solvers.SolverConfig(method="adam", maxiter=40, **ADAM_BOX),
                   [hook], on_chunk=seen.append, chunk_seconds=60.0)
  assert fired == [0, 7, 14, 21, 28, 35]
  stops = [p.iteration for p in seen]
  assert stops == [1, 3, 7, 14, 21, 28, 35, 40]  # lengths 1, 2, 4, 8 (hook)


def test_host_features_inside_jit_raise():
  hook = solvers.Hook(1, lambda x: x, lambda i, x: None)
  run = jax.jit(lambda x: solvers.minimize(
      quadratic, x, solvers.SolverConfig(maxiter=2), [hook]).x)
  with pytest.raises(ValueError, match="outside jax.jit"):
    run(jnp.zeros((8, 8)))
  # Without them the whole loop traces inside a caller's jit.
  inner = jax.jit(lambda x: solvers.minimize(
      quadratic, x, solvers.SolverConfig(maxiter=3)).x)
  whole = _solve(quadratic, np.zeros((8, 8)), maxiter=3)
  np.testing.assert_allclose(np.asarray(inner(jnp.zeros((8, 8)))),
                             np.asarray(whole.x), rtol=1e-6, atol=1e-7)


def test_batched_progress_and_interruption():
  x0 = jnp.stack([jnp.zeros((8, 8)), jnp.ones((8, 8))])
  seen = []
  result = solvers.minimize_batched(
      lambda x, s: quadratic(x * s), x0,
      solvers.SolverConfig(method="adam", maxiter=30, **ADAM_BOX),
      args=(jnp.asarray([1.0, 2.0]),), args_axes=(0,), on_chunk=seen.append,
      should_stop=lambda: len(seen) >= 3, chunk_seconds=1e-9)
  assert [p.iteration for p in seen] == [1, 2, 3]
  assert np.shape(seen[-1].value) == (2,)
  assert [solvers.STATUS_NAMES[int(s)] for s in result.status] == [
      "interrupted"] * 2
  np.testing.assert_array_equal(np.asarray(result.iterations), [3, 3])


def test_batched_lbfgs_keeps_shared_weights_unbatched():
  """Regression test: optax's store_grad line search transposes inside a
  ``lax.cond``; under vmap that cond became a select that broadcast the
  shared convolution kernel to every cell (grouped convolutions, ~4x slower
  on XLA:CPU). The compiled batched loop must not contain any."""
  kernel = jnp.asarray(np.random.default_rng(0).normal(size=(3, 3, 2, 4)),
                       jnp.float32)

  def fun(x, k):
    # float32 (HIGHEST): a GPU's default would be TF32, whose rounding
    # differs between the batched and the single convolution.
    y = jax.lax.conv_general_dilated(x[None], k, (1, 1), "SAME",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"),
                                     precision=jax.lax.Precision.HIGHEST)
    return jnp.sum(y ** 2) + jnp.sum((x - 0.5) ** 2), ()

  x0 = jnp.zeros((3, 8, 8, 2))
  config = solvers.SolverConfig(maxiter=3)
  program = solvers._compiled(fun, config, (None,)).run
  text = program.lower(x0, (kernel,)).compile().as_text()
  assert "convolution(" in text
  assert "feature_group_count" not in text
  result = solvers.minimize_batched(fun, x0, config, args=(kernel,),
                                    args_axes=(None,))
  single = solvers.minimize(fun, x0[0], config, args=(kernel,))
  np.testing.assert_allclose(np.asarray(result.x[1]), np.asarray(single.x),
                             rtol=1e-5, atol=1e-6)


# --- L-BFGS memory and line search ---------------------------------------------


@functools.lru_cache(maxsize=None)
def _iterates(method, maxiter, history):
  """Every iterate ``[x_0, …, x_maxiter]`` of one run on the quadratic
  (cached: two tests share the runs)."""
  xs = []
  hook = solvers.Hook(1, lambda x: x, lambda i, x: xs.append(np.asarray(x)))
  _solve(quadratic, np.zeros((8, 8)), hooks=[hook], method=method,
         maxiter=maxiter, history_size=history)
  return np.stack(xs)


@pytest.mark.parametrize("method", ["optax_lbfgs", "lbfgs"])
def test_history_size_is_the_lbfgs_memory(method):
  """``history_size`` m is the number of curvature pairs L-BFGS keeps.
  Iteration k uses min(k − 1, m) pairs, so on the 64-dimensional quadratic
  (where every pair matters) a memory of 2 gives the iterates of a memory
  of 10 through iteration 3 and other ones from iteration 4 on; and both
  L-BFGS methods, whose steps coincide on this problem (to ~2e-7), agree
  for the same m."""
  short, long = _iterates(method, 6, 2), _iterates(method, 6, 10)
  np.testing.assert_array_equal(short[:4], long[:4])
  differ = np.abs(short - long).max(axis=(1, 2))
  assert np.all(differ[4:] > 1e-4), f"history_size ignored: {differ}"
  other = "lbfgs" if method == "optax_lbfgs" else "optax_lbfgs"
  np.testing.assert_allclose(short, _iterates(other, 6, 2), atol=1e-5)


SLOPE_RTOL = 1e-4   # the Armijo constant of _armijo_linesearch


@pytest.mark.parametrize("stretch", [0.0, 2e-5, 1e-3, 0.5, -0.5, -0.9])
def test_armijo_linesearch_accepts_only_sufficient_decrease(stretch):
  """From x = (1, 1) on f = ‖x‖² along d = −(1 + stretch)∇f: the accepted
  step η·d satisfies f(x + ηd) ≤ f(x) + 1e-4·η·⟨d, ∇f⟩ (Armijo), so it
  decreases f. ``stretch`` 2e-5 makes the full step a small increase
  (f: 2 → 2.00016) that lies within 1e-4·|⟨d, ∇f⟩| = 8e-4 of f(x): an
  Armijo test with the wrong sign accepts it; 0 lands on the other side at
  the same value, which the test rejects too."""
  search = solvers._armijo_linesearch(20)  # pylint: disable=protected-access
  f = lambda x: jnp.sum(x ** 2)
  x = jnp.ones((2,), jnp.float32)
  value, grad = jax.value_and_grad(f)(x)
  direction = -(1.0 + stretch) * grad
  step, state = jax.jit(lambda d: search.update(
      d, search.init(x), x, value=value, grad=grad, value_fn=f))(direction)
  rate = float(state.learning_rate)
  np.testing.assert_allclose(np.asarray(step), rate * np.asarray(direction))
  new = float(f(x + step))
  assert new == pytest.approx(float(state.value), rel=1e-6)
  slope = float(jnp.vdot(direction, grad))
  assert new <= float(value) + SLOPE_RTOL * rate * slope, (
      f"accepted step {rate} takes f from {float(value)} to {new}")
  assert float(state.info.decrease_error) == 0.0
  if stretch == 2e-5:
    assert rate == 0.5 and new < 1e-6   # one halving reaches the minimum


def _rosenbrock_nd(x):
  x = x.reshape(-1)
  return jnp.sum(100.0 * (x[1:] - x[:-1] ** 2) ** 2 + (1.0 - x[:-1]) ** 2), ()


def test_optax_lbfgs_values_never_increase():
  """Every iteration of optax_lbfgs takes a step its Armijo search accepted,
  so the value never rises, also on a nonconvex function (Rosenbrock's in
  16 dimensions) where the quasi-Newton step often overshoots. (jaxopt's
  "lbfgs" gives no such promise: after a failed zoom search it steps anyway,
  and from test_rosenbrock_lbfgs's (-1.2, 1) its value rises for a dozen
  iterations.)"""
  fun, x0 = _rosenbrock_nd, np.linspace(-1.5, 1.5, 16).reshape(4, 4)
  values = []
  hook = solvers.Hook(1, lambda x: fun(x)[0],
                      lambda i, v: values.append(float(v)))
  _solve(fun, x0, hooks=[hook], method="optax_lbfgs", maxiter=100)
  assert len(values) == 101
  rises = np.nonzero(np.diff(values) > 0)[0]
  assert not rises.size, [(i, values[i], values[i + 1]) for i in rises]
  assert values[-1] < 0.1 * values[0]
