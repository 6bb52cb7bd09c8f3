"""``gradcheck``: compare backward against central finite differences, in float64.

For every element x_i of every input, the numerical derivative is

    n_i = (L(x + ε e_i) - L(x - ε e_i)) / (2ε)

and it must agree with the analytic a_i = dL/dx_i from backward by the spec's criterion

    |a_i - n_i| / (|a_i| + |n_i| + 1e-8) < tol.

A non-scalar output is reduced to L = Σ out ⊙ r with a fixed random r, which checks
the full vector-Jacobian product. For large inputs a cheaper variant checks directional
derivatives along a few random directions v: (L(x + εv) - L(x - εv)) / 2ε against a·v.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np

from .autograd import grad as _grad
from .errors import BackwardError
from .grad_mode import enable_grad, set_grad_enabled
from .tensor import Tensor


@dataclass
class Mismatch:
    """One element (or direction) where analytic and numerical gradients disagree."""
    input_index: int
    element: tuple | str
    analytic: float
    numerical: float
    rel_error: float

    def __str__(self) -> str:
        return (f"input {self.input_index}, element {self.element}: analytic {self.analytic:.10g}, "
                f"numerical {self.numerical:.10g}, relative error {self.rel_error:.3g}")


@dataclass
class GradcheckResult:
    """What gradcheck found. True when every checked element passed."""
    ok: bool
    checked: int
    max_rel_error: float
    tol: float
    eps: float
    mode: str
    mismatches: list = field(default_factory=list)
    kinks: list = field(default_factory=list)
    #: what limits the check: gradients too small for the criterion to judge (also warned
    #: about), mismatches within the finite differences' own error, nothing to check
    notes: list = field(default_factory=list)

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = "PASSED" if self.ok else "FAILED"
        lines = [f"gradcheck {head}: {self.checked} {'elements' if self.mode == 'elements' else 'directions'} "
                 f"checked, max relative error {self.max_rel_error:.3g} (tol {self.tol:g}, eps {self.eps:g})"]
        for m in self.mismatches[:10]:
            lines.append(f"  mismatch: {m}")
        if len(self.mismatches) > 10:
            lines.append(f"  ... and {len(self.mismatches) - 10} more mismatches")
        for k in self.kinks[:5]:
            lines.append(f"  note: {k}")
        for note in self.notes[:5]:
            lines.append(f"  note: {note}")
        return "\n".join(lines)

    __repr__ = __str__


class CentralDifference(tuple[float, float, float]):
    """``(L(x + ε e_j), L(x - ε e_j), their central difference)``, as ``central_difference``
    returns it, also holding the steps the element really took (``step_up``,
    ``step_down``: x ± ε as stored in the array's dtype), from which ``slopes`` gives the
    one-sided slopes."""
    step_up: float
    step_down: float

    def __new__(cls, plus: float, minus: float, step_up: float,
                step_down: float) -> "CentralDifference":
        self = super().__new__(cls, (plus, minus, (plus - minus) / (step_up + step_down)))
        self.step_up, self.step_down = step_up, step_down
        return self

    def slopes(self, base: float) -> tuple[float, float]:
        """(left, right): the one-sided slopes from ``base`` = L(x), over the real steps."""
        plus, minus, _ = self
        return (base - minus) / self.step_down, (plus - base) / self.step_up


def central_difference(loss: Callable[[], float], array: np.ndarray, j: int,
                       eps: float) -> CentralDifference:
    """(L(x + ε e_j), L(x - ε e_j), their central difference) for element ``j`` (in C order)
    of ``array``, the very numpy array that ``loss()`` reads, of any shape; the element is
    restored afterwards, also when ``loss()`` raises.

    The one-element probe ``gradcheck`` is built on, for checking a hand-written gradient
    element by element::

        numeric = tg.central_difference(lambda: float(loss(W)), W, 3, 1e-6)[2]

    (Pass the array itself: a reshaped copy, such as ``W.T.reshape(-1)``, would be
    perturbed while ``loss()`` reads W, and every difference would be 0.)

    The difference is divided by the step the element really took: x ± ε as stored in the
    array's dtype, which is not 2ε in float32, nor for large elements (x = 1e7 in float64
    is stored to ~2e-9: a step of 2e-5 is 1e-4 off). A step that does not move the element
    (1000 ± 1e-5 in float32), a NaN or infinite element and integer arrays are refused.
    The result, a ``CentralDifference``, also holds those steps and gives the one-sided
    slopes: ``central_difference(...).slopes(loss())``.
    """
    if not isinstance(array, np.ndarray):
        raise TypeError(f"central_difference: array must be the numpy array that loss() "
                        f"reads (for a Tensor, its .data), got {type(array).__name__}")
    if array.dtype.kind != "f":
        raise TypeError(f"central_difference: array has dtype {array.dtype}, which cannot "
                        f"hold x ± eps; expected a floating-point array (float64 for an "
                        f"accurate difference)")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) \
            or not (math.isfinite(eps) and eps > 0):
        raise ValueError(f"central_difference: eps must be a positive finite number, got "
                         f"{eps!r}; expected e.g. 1e-6")
    if not array.flags.writeable:
        raise ValueError("central_difference: array is read-only (a node of a live graph "
                         "may hold it for backward: drop the graph first); expected the "
                         "writable array that loss() reads")
    size = array.size
    if not -size <= j < size:
        raise IndexError(f"central_difference: element {j} is out of range for an array of "
                         f"{size} elements")
    index = np.unravel_index(j % size, array.shape) if array.ndim != 1 else j
    orig = array[index]
    if not np.isfinite(orig):
        raise ValueError(f"central_difference: element {j} is {orig}; a finite difference "
                         f"needs a finite value there")
    try:
        array[index] = orig + eps
        up = float(array[index] - orig)     # in the array's dtype, where it is exact
        plus = loss()
        array[index] = orig - eps
        down = float(orig - array[index])
        minus = loss()
    finally:
        array[index] = orig
    if not (up > 0 and down > 0):
        raise ValueError(f"central_difference: a step of ±{eps:g} does not move element {j} "
                         f"({orig}) of this {array.dtype} array both ways (neighbouring "
                         f"values there are {float(np.spacing(orig)):.3g} apart); expected "
                         f"a larger eps, or the values in float64")
    return CentralDifference(plus, minus, up, down)


def _is_kink(loss: Callable[[], float], array: np.ndarray, j: int, eps: float, base: float,
             gap: float) -> bool:
    """Whether one-sided slopes that differ by ``gap`` at step eps come from a kink: there
    the gap stays as the step shrinks, while for a smooth but curved function (1000 x² at 0)
    it is curvature × step and shrinks with it. Looked at again with a step of eps/4."""
    left, right = central_difference(loss, array, j, eps / 4).slopes(base)
    return abs(right - left) > 0.5 * abs(gap)


def _larger(largest: float, size: float) -> float:
    """The running largest |analytic| + |numerical|; a NaN sticks (and is not tiny)."""
    return largest if largest != largest or size <= largest else size


#: Below this largest |analytic| + |numerical| over a check, the criterion's 1e-8 dominates
#: the relative error, which then judges little: gradcheck warns.
TINY_GRADIENT = 1e-6


def central_difference_error(loss: Callable[[], float], array: np.ndarray, j: int, eps: float,
                             base: float | None = None) -> float:
    """An estimate of the error of ``central_difference(loss, array, j, eps)[2]`` itself: the
    rounding of the loss values divided by 2ε, plus the change of the difference when the
    step is halved (its truncation error is ~ε²: halving removes three quarters of it).
    ``base`` is ``loss()`` at the unperturbed point, if already known.

    A mismatch between a gradient and the central difference that is below about twice this
    is no evidence of a wrong gradient (a loss near 1e16, curvature of saturated units, a
    kink crossed within ±ε); ``gradcheck`` notes such mismatches, ``nn.crosscheck`` replaces
    such elements by others."""
    plus, minus, num = central_difference(loss, array, j, eps)
    if base is None:
        base = loss()
    rounding = 8 * np.finfo(np.float64).eps * max(abs(plus), abs(minus), abs(base)) / (2 * eps)
    half = central_difference(loss, array, j, eps / 2)[2]
    return float(rounding + abs(num - half) * 4 / 3)


def _rel_error(a: np.ndarray | np.floating, n: np.ndarray | np.floating) -> np.ndarray:
    """The spec's criterion; NaN or Inf anywhere counts as an infinite error, never a pass."""
    with np.errstate(invalid="ignore", over="ignore"):
        err = np.abs(a - n) / (np.abs(a) + np.abs(n) + 1e-8)
    return np.where(np.isfinite(err), err, np.inf)


def gradcheck(fn: Callable[..., Any], inputs: Sequence[Any], eps: float = 1e-5,
              tol: float = 1e-5, mode: str = "auto", max_elements: int = 2000,
              n_directions: int = 8, seed: int = 0) -> GradcheckResult:
    """Check ``fn``'s gradients with respect to every input by central differences.

    ``fn(*tensors)`` must return a Tensor. ``inputs`` are Tensors or arrays; they are
    copied to float64 leaves, so the check runs in float64 whatever their dtype.
    ``mode``: "elements" checks every element, "directions" checks ``n_directions``
    random directions, "auto" picks elements unless the inputs hold more than
    ``max_elements`` numbers. Warns (and lists in ``kinks``) when an element lies within
    eps of a kink (relu, abs, max): one-sided slopes differ there and a mismatch is expected.
    Warns instead when ``fn`` returns float32 or float16 (it computes in lower precision
    somewhere, e.g. a float32 layer, whose finite differences are mostly rounding noise).
    ``fn`` must be deterministic: it is evaluated twice at the inputs first, and a
    ``ValueError`` says so when the two values differ (random numbers drawn inside it).
    The finite differences use the steps the inputs really took (x ± ε as stored); ±inf
    elements (masked logits) are not perturbed, and a note says so; a ``ValueError`` names
    NaN inputs, inputs that steps of eps/4 cannot move
    (elements mode; it names the eps needed) and a random direction whose step leaves an
    element that matters unmoved.
    ``notes`` (printed; the first kind also warned about) say what limits the verdict: every
    gradient below ``TINY_GRADIENT`` (the criterion's 1e-8 then dominates), a mismatch within
    the finite differences' own error at this ``eps``, inputs with no element. ``fn`` may
    call ``tinygraph.grad(..., create_graph=True)`` (a check of second derivatives), and
    gradcheck works under ``no_grad()``.
    """
    if not callable(fn):
        raise TypeError(f"gradcheck: fn must be a function of the inputs returning a Tensor, "
                        f"got {type(fn).__name__}; expected e.g. "
                        f"gradcheck(lambda x: (x * x).sum(), [x])")
    if isinstance(inputs, (Tensor, np.ndarray)) or not isinstance(inputs, Sequence):
        raise TypeError(f"gradcheck: inputs must be a list of Tensors or arrays, got "
                        f"{type(inputs).__name__}; expected e.g. [x] for a single input")
    if mode not in ("auto", "elements", "directions"):
        raise ValueError(f"gradcheck: mode must be 'auto', 'elements' or 'directions', got {mode!r}")
    if isinstance(eps, bool) or not isinstance(eps, (int, float, np.floating)) or not eps > 0 \
            or not math.isfinite(eps):
        raise ValueError(f"gradcheck: eps must be a positive finite number, got {eps!r}; "
                         f"expected e.g. 1e-5")
    if isinstance(tol, bool) or not isinstance(tol, (int, float, np.floating)) or not tol > 0 \
            or not tol < 1:
        raise ValueError(f"gradcheck: tol must be a number in (0, 1), got {tol!r} (a relative "
                         f"error is below 1 whatever the gradient: tol >= 1 would pass "
                         f"anything); expected e.g. 1e-5")
    if isinstance(n_directions, bool) or not isinstance(n_directions, (int, np.integer)):
        raise TypeError(f"gradcheck: n_directions must be an integer >= 1, got {n_directions!r}")
    if n_directions < 1:
        raise ValueError(f"gradcheck: n_directions must be an integer >= 1, got {n_directions!r}; "
                         f"a check of 0 directions would pass anything")
    if isinstance(max_elements, bool) or not isinstance(max_elements, (int, float, np.number)) \
            or not max_elements >= 0:
        raise ValueError(f"gradcheck: max_elements must be a number >= 0, got {max_elements!r}")
    try:
        rng = np.random.default_rng(seed)      # (an int, None, a Generator, a SeedSequence)
    except (TypeError, ValueError) as exc:
        raise type(exc)(f"gradcheck: seed {seed!r} is not a seed numpy takes ({exc}); "
                        f"expected e.g. seed=0") from None
    leaves = []
    for i, x in enumerate(inputs):
        arr = np.asarray(x.data if isinstance(x, Tensor) else x)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"gradcheck: inputs[{i}] has dtype {arr.dtype}; expected numbers "
                            f"(they are checked in float64)")
        leaves.append(Tensor(np.array(arr, dtype=np.float64), requires_grad=True))
    if not leaves:
        raise ValueError("gradcheck: inputs is empty; expected at least one input")

    with enable_grad():              # (also when called under no_grad: backward is needed)
        out = fn(*leaves)
    if not isinstance(out, Tensor):
        raise TypeError(f"gradcheck: fn must return a Tensor, got {type(out).__name__}")
    coarse = out.data.dtype.kind == "f" and out.data.dtype.itemsize < 8
    if coarse:
        warnings.warn(f"gradcheck: fn returned {out.data.dtype} from float64 inputs, so it "
                      f"computes in lower precision somewhere (a float32 layer or parameter, "
                      f"a cast): central differences with eps={eps:g} are then mostly rounding "
                      f"noise, and a mismatch says little about the gradient. Check a float64 "
                      f"version (a layer built with dtype=np.float64, or its parameters passed "
                      f"as inputs)", RuntimeWarning, stacklevel=2)
    projection = None if out.data.size == 1 else rng.standard_normal(out.shape)

    def scalar(o: Tensor):
        return o.sum() if projection is None else (o * projection).sum()

    with enable_grad():
        checked_out = scalar(out)
    first = float(checked_out.data)
    # An output cut off from every input (detach(), .data, a recorded backward that reads
    # .data) has the gradient 0 as far as backward can tell: compared as such below, so a
    # wrong cut shows as mismatches against the numerical derivative, not as an error.
    found = (_grad(checked_out, leaves) if checked_out.requires_grad
             else [None] * len(leaves))
    del checked_out
    # drop the graph: grad() leaves the nodes it did not need alone, and one that saved an
    # input (x.detach() * W) would keep that array read-only while it is perturbed below
    del out
    analytic = [np.zeros_like(t.data) if a is None else np.asarray(a, dtype=np.float64)
                for t, a in zip(leaves, found)]

    # The loss at perturbed points is computed without recording (faster), unless fn needs
    # recording itself (it calls tinygraph.grad: a check of second derivatives).
    recording = [False]

    def loss_value() -> float:
        with set_grad_enabled(recording[0]):
            return float(scalar(fn(*leaves)).data)

    try:
        base = loss_value()
    except BackwardError:
        recording[0] = True
        base = loss_value()
    if not (base == first or math.isclose(base, first, rel_tol=1e-12)
            or (math.isnan(base) and math.isnan(first))):
        raise ValueError(f"gradcheck: fn gave two different values for the same inputs "
                         f"({first!r} and then {base!r}): it is not deterministic (random "
                         f"numbers drawn inside it, or state it changes), and finite "
                         f"differences need the same function at every point; draw the "
                         f"random numbers once outside fn, or seed a generator inside it")
    total = sum(t.data.size for t in leaves)
    if mode == "auto":
        mode = "elements" if total <= max_elements else "directions"

    infinite = []                    # per input: where it is ±inf (a mask: not perturbed)
    for k, t in enumerate(leaves):
        x = t.data
        if np.isnan(x).any():
            at = tuple(int(i) for i in np.argwhere(np.isnan(x))[0])
            raise ValueError(f"gradcheck: inputs[{k}] holds NaN (element {at}); finite "
                             f"differences need numbers")
        infinite.append(np.isinf(x))
        if mode == "elements":       # steps of eps, eps/2 and eps/4 must all move them
            stuck = ~infinite[k] & ((x + eps / 4 == x) | (x - eps / 4 == x))
            if stuck.any():
                at = tuple(int(i) for i in np.argwhere(stuck)[0])
                spacing = float(np.spacing(x[at]))
                raise ValueError(
                    f"gradcheck: eps={eps:g} is too small for inputs[{k}]: element {at} = "
                    f"{x[at]:.6g} does not move by ±eps/4 in float64 (neighbouring values "
                    f"there are {spacing:.2g} apart; gradcheck also steps by eps/2 and eps/4 "
                    f"to judge kinks and its own error); expected eps >= {4 * spacing:.2g}, "
                    f"or inputs of smaller magnitude")

    mismatches, kinks, notes, worst, checked, largest = [], [], [], 0.0, 0, 0.0
    if mode == "elements":
        for k, t in enumerate(leaves):
            for j in range(t.data.size):
                if infinite[k].flat[j]:
                    continue             # (a masked logit: no finite step, not checked)
                difference = central_difference(loss_value, t.data, j, eps)
                num = difference[2]
                ana = float(analytic[k].reshape(-1)[j])
                err = float(_rel_error(np.float64(ana), np.float64(num)))
                worst = max(worst, err)
                largest = _larger(largest, abs(ana) + abs(num))
                checked += 1
                index = tuple(int(i) for i in np.unravel_index(j, t.shape)) if t.ndim else ()
                left, right = difference.slopes(base)
                # (in float32 one-sided slopes differ by rounding noise: no kink to name)
                if not coarse and abs(right - left) > 1e-3 * (abs(right) + abs(left)) + 1e-4 \
                        and _is_kink(loss_value, t.data, j, eps, base, right - left):
                    kinks.append(f"input {k} element {index} lies within eps of a kink "
                                 f"(one-sided slopes {left:.6g} and {right:.6g})")
                if not err < tol:
                    mismatches.append(Mismatch(k, index, ana, num, err))
                    if len(mismatches) <= 20:
                        noise = central_difference_error(loss_value, t.data, j, eps, base)
                        if abs(ana - num) <= 2 * noise:
                            notes.append(
                                f"input {k} element {index}: |analytic - numerical| = "
                                f"{abs(ana - num):.3g} is within the finite differences' own "
                                f"error at eps={eps:g} (~{noise:.2g}: rounding of a loss of "
                                f"size {abs(base):.3g}, or curvature), so this may be no error "
                                f"of the gradient; check again with another eps")
    else:
        for d in range(n_directions):
            dirs = [np.where(inf, 0.0, rng.standard_normal(t.shape))
                    for t, inf in zip(leaves, infinite)]
            norm = np.sqrt(sum(float(np.sum(v * v)) for v in dirs)) or 1.0
            dirs = [v / norm for v in dirs]
            originals = [t.data.copy() for t in leaves]
            for t, v in zip(leaves, dirs):
                t.data[...] += eps * v
            ups = [t.data.copy() for t in leaves]
            plus = loss_value()
            for t, o, v in zip(leaves, originals, dirs):
                t.data[...] = o - eps * v
            minus = loss_value()
            # the analytic side along the step the inputs really took (x ± ε v rounded, as
            # in central_difference)
            steps = [np.where(inf, 0.0, (u - t.data) / (2 * eps))
                     for t, u, inf in zip(leaves, ups, infinite)]
            for t, o in zip(leaves, originals):
                t.data[...] = o
            num = (plus - minus) / (2 * eps)
            ana = float(sum(np.sum(a * v) for a, v in zip(analytic, steps)))
            # An element the step did not move drops out of both sides. Harmless for a
            # component of v far below the others (1e-8 among 2e5 elements) whose part of
            # the directional derivative the criterion cannot see; refused where it could
            # change the verdict (a 1e12 element: its wrong gradient passed unseen).
            largest_v = max(float(np.abs(v).max(initial=0.0)) for v in dirs)
            for k, (step, v) in enumerate(zip(steps, dirs)):
                stuck = (step == 0) & (v != 0)
                if not stuck.any():
                    continue
                lost = float(np.sum(np.abs(np.asarray(analytic[k])[stuck] * v[stuck])))
                if (lost > tol * (abs(ana) + abs(num) + 1e-8)
                        or float(np.abs(v[stuck]).max()) > 1e-2 * largest_v):
                    at = tuple(int(i) for i in np.argwhere(stuck)[0])
                    raise ValueError(
                        f"gradcheck: in random direction {d} the step eps·v does not move "
                        f"inputs[{k}] element {at} = {originals[k][at]:.6g} (float64 values "
                        f"there are {float(np.spacing(originals[k][at])):.2g} apart), whose "
                        f"gradient the check would then not see; expected a larger eps, or "
                        f"mode='elements'")
            err = float(_rel_error(np.float64(ana), np.float64(num)))
            worst = max(worst, err)
            largest = _larger(largest, abs(ana) + abs(num))
            checked += 1
            if not err < tol:
                mismatches.append(Mismatch(-1, f"random direction {d}", ana, num, err))

    n_infinite = sum(int(inf.sum()) for inf in infinite)
    if n_infinite:
        notes.append(f"{n_infinite} element(s) of the inputs are ±inf (masked values?): they "
                     f"were not perturbed, so their gradients were not checked")
    if checked == 0:                # (empty inputs: only the gradients' shapes were made)
        notes.append(f"nothing was checked: the inputs hold no numbers (shapes "
                     f"{[t.shape for t in leaves]})")
    elif 0 < largest < TINY_GRADIENT:      # (all exactly 0 on both sides: agreement)
        notes.append(f"every gradient checked is tiny (largest |analytic| + |numerical| "
                     f"{largest:.3g}): next to the criterion's 1e-8 the relative error says "
                     f"little there (a backward off by a factor 2 passes below ~{tol * 1e-8:.0e}"
                     f"); multiply fn's output by a large factor (e.g. 1e6) to check it")

    for note in notes:
        if note.startswith("every gradient"):
            warnings.warn(f"gradcheck: {note}", RuntimeWarning, stacklevel=2)
    if kinks:
        warnings.warn(f"gradcheck: {len(kinks)} element(s) lie within eps of a kink, where "
                      f"the finite difference is not a derivative and a mismatch is expected; "
                      f"first: {kinks[0]}", RuntimeWarning, stacklevel=2)
    return GradcheckResult(ok=not mismatches, checked=checked, max_rel_error=worst, tol=tol,
                           eps=eps, mode=mode, mismatches=mismatches, kinks=kinks, notes=notes)
