"""Shared helpers for the tinygraph tests: hypothesis settings/strategies and checks.

Not a test module (no ``test_`` prefix); the test modules import it by name (conftest.py puts
this directory on sys.path: pytest runs with --import-mode=importlib, see setup.cfg).
"""
from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import tinygraph as tg

# Deterministic (derandomize) and database-free, small enough that the whole directory
# runs in well under a minute.
SETTINGS = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow,
                                           HealthCheck.data_too_large])

GC_TOL = 1e-4      # relative-error tolerance for gradcheck in float64 (see gradcheck docs)
GC_EPS = 1e-6

seeds = st.integers(min_value=0, max_value=2**32 - 1)
shapes = hnp.array_shapes(min_dims=0, max_dims=3, min_side=1, max_side=4)
nonscalar_shapes = hnp.array_shapes(min_dims=1, max_dims=3, min_side=1, max_side=4)
broadcast2 = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                min_side=1, max_side=4)
broadcast3 = hnp.mutually_broadcastable_shapes(num_shapes=3, min_dims=0, max_dims=3,
                                                min_side=1, max_side=4)


# Shapes with empty dimensions (a batch of 0 rows): gradients must come back empty, of the
# input's shape, without errors.
broadcast2_with_empty = hnp.mutually_broadcastable_shapes(num_shapes=2, min_dims=0, max_dims=3,
                                                          min_side=0, max_side=3)
shapes_with_empty = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=3)


@st.composite
def stretched2(draw):
    """Two shapes that broadcast with a real stretch, which ``broadcast2`` draws rarely
    (half its pairs have a single element): both operands hold more than one element, one
    has a size-1 dimension the other stretches to 2..4, and either may also lack leading
    dimensions. The gradient of the stretched operand must be summed over that axis."""
    ndim = draw(st.integers(2, 3))
    result = draw(st.lists(st.integers(2, 4), min_size=ndim, max_size=ndim))
    order = draw(st.permutations(range(ndim)))
    stretched, kept = order[0], order[1]
    a = [d if draw(st.booleans()) else 1 for d in result]
    b = [d if draw(st.booleans()) else 1 for d in result]
    a[stretched], a[kept], b[stretched] = 1, result[kept], result[stretched]
    if a[0] == 1 and draw(st.booleans()):
        a = a[1:]
    if b[0] == 1 and draw(st.booleans()):
        b = b[1:]
    return (tuple(b), tuple(a)) if draw(st.booleans()) else (tuple(a), tuple(b))


def rng_of(seed: int) -> np.random.Generator:
    return np.random.default_rng(seed)


def normal(rng, shape, scale=1.0):
    return np.asarray(rng.standard_normal(shape) * scale, dtype=np.float64)


def positive(rng, shape, lo=0.5, hi=2.0):
    """Values in [lo, hi]: safe for log, sqrt, div, pow (away from the poles)."""
    return np.asarray(rng.uniform(lo, hi, shape), dtype=np.float64)


def away_from_zero(rng, shape, lo=0.2, hi=2.0):
    """|values| in [lo, hi] with random signs: safe for relu/abs (away from the kink)."""
    mag = rng.uniform(lo, hi, shape)
    sign = np.where(rng.random(shape) < 0.5, -1.0, 1.0)
    return np.asarray(mag * sign, dtype=np.float64)


def distinct(rng, shape, gap=0.1):
    """Values without ties (pairwise gaps >= gap): safe for max/min/maximum/minimum."""
    n = int(np.prod(shape, dtype=np.int64))
    vals = (rng.permutation(n) - n / 2) * gap + rng.uniform(0, gap / 10)
    return np.asarray(vals.reshape(shape), dtype=np.float64)


def assert_gradcheck(fn, inputs, tol=GC_TOL, eps=GC_EPS):
    """tinygraph.gradcheck in float64, element by element, must pass."""
    inputs = [np.asarray(x, dtype=np.float64) for x in inputs]
    res = tg.gradcheck(fn, inputs, eps=eps, tol=tol, mode="elements")
    assert res, str(res)
    assert res.checked == sum(x.size for x in inputs), str(res)
    return res


def numerical_grad(f, arrays, eps=1e-6):
    """Central differences of the scalar numpy function f(*arrays) (independent of tinygraph)."""
    arrays = [np.array(a, dtype=np.float64) for a in arrays]
    grads = []
    for k, a in enumerate(arrays):
        g = np.zeros_like(a)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        for j in range(flat.size):
            orig = flat[j]
            flat[j] = orig + eps
            plus = float(f(*arrays))
            flat[j] = orig - eps
            minus = float(f(*arrays))
            flat[j] = orig
            gflat[j] = (plus - minus) / (2 * eps)
        grads.append(g)
    return grads


def leaf(a, dtype=None, name=None):
    return tg.Tensor(np.array(a, dtype=dtype if dtype is not None else np.asarray(a).dtype),
                     requires_grad=True, name=name)


def assert_float32_everywhere(build, arrays):
    """Run ``build(*tensors)`` on float32 leaves routed through a non-leaf identity node.

    Checks the output dtype, the gradient that reaches each non-leaf input (tinygraph.grad
    with a non-leaf input returns exactly what the op's backward produced, with no cast),
    and the leaves' .grad after backward: all float32.
    """
    leaves = [tg.Tensor(np.asarray(a, dtype=np.float32), requires_grad=True) for a in arrays]
    mids = [t * 1.0 for t in leaves]                 # non-leaf, float32 (weak Python scalar)
    for m in mids:
        assert m.dtype == np.float32
    out = build(*mids)
    assert out.dtype == np.float32, f"output dtype {out.dtype}"
    loss = (out * 0.5).sum()
    assert loss.dtype == np.float32
    grads = tg.grad(loss, mids, retain_graph=True)
    for i, g in enumerate(grads):
        assert g is not None, f"no gradient for input {i}"
        g = np.asarray(g)
        assert g.dtype == np.float32, f"gradient of input {i} reached it as {g.dtype}"
        assert g.shape == mids[i].shape
    loss.backward()
    for i, t in enumerate(leaves):
        assert t.grad is not None
        assert t.grad.dtype == np.float32, f"leaf {i} .grad dtype {t.grad.dtype}"
        assert t.grad.shape == t.shape


def run_in_threads(target, n: int = 4) -> None:
    """Run ``target`` in ``n`` threads at once, switching between threads as often as Python
    allows (races show up within a few hundred iterations)."""
    import sys
    import threading
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=target) for _ in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        sys.setswitchinterval(old)
