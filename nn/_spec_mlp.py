"""What the manual MLP and the graph MLP share: the spec's constructor, its argument checks,
target handling (labels, one-hot, regression targets) and prediction.

Both classes inherit ``SpecMLP``; each supplies ``output_activation`` (the last layer's
activation: an Activation, ``"softmax"`` or ``None``) and ``_inference(X, where)`` (the
output ``a^(L)`` as a numpy array). Everything else here is written once.
"""
from __future__ import annotations

import copy
import math
import numbers
import sys
import warnings
import weakref
from typing import Any, Iterator, Sequence

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

import activations as _activations
from nn.data.preprocessing import onehot_rows
from nn.data._validation import check_class_labels, check_float_dtype

#: The string that selects a softmax output layer (the only non-``Activation`` choice).
SOFTMAX = "softmax"

# Output kinds (see SpecMLP.output_kind) and the loss each one trains with.
_LOSS_OF_OUTPUT = {
    "softmax": "cross_entropy",
    "sigmoid": "binary_cross_entropy",
    "linear": "mse",
    "activation": "mse",
}


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an integer >= {minimum}, got {value!r} "
            f"of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value}")
    return int(value)


def _check_learning_rate(where: str, learning_rate: Any) -> float:
    name = f"{where}: learning_rate"
    if isinstance(learning_rate, (bool, np.bool_)) or not isinstance(
        learning_rate, numbers.Real
    ):
        raise TypeError(
            f"{name} must be a finite number > 0, got {learning_rate!r} "
            f"of type {type(learning_rate).__name__}"
        )
    lr = float(learning_rate)
    if not math.isfinite(lr) or lr <= 0.0:
        raise ValueError(f"{name} must be a finite number > 0, got {learning_rate!r}")
    return lr


#: Values of fit's ``on_nonfinite``.
ON_NONFINITE = ("raise", "warn")


def _check_on_nonfinite(where: str, value: Any) -> str:
    if not isinstance(value, str) or value not in ON_NONFINITE:
        raise ValueError(f"{where}: on_nonfinite must be 'raise' or 'warn', got {value!r}")
    return value


#: fit stops when a batch loss exceeds this many times the first batch loss of the fit
#: (or 1, if that was smaller): such a loss has exploded even while still finite (the
#: stable softmax cross-entropy of a diverged network can grow to 1e200 and then sit at
#: a large finite value, with every ReLU dead).
DIVERGENCE_FACTOR = 1e6


def _loss_trouble(value: float, reference: float | None) -> str | None:
    """Why the batch loss ``value`` must stop training, or None."""
    if not math.isfinite(value):
        return f"the loss became {value}"
    if reference is not None and value > DIVERGENCE_FACTOR * max(reference, 1.0):
        return (f"the loss exploded to {value:.4g}, more than {DIVERGENCE_FACTOR:g} times its "
                f"value on the first batch of this fit ({reference:.4g})")
    return None


def _first_nonfinite(named: Iterator[tuple[str, Any]]) -> str | None:
    """The name of the first array holding NaN or Inf (None entries skipped), else None.

    Exact, and faster than a sum (``_all_finite``; 19 against 33 us for the spec's first
    weight gradient in float32: fit runs this for every batch)."""
    for name, arr in named:
        if arr is None:
            continue
        arr = np.asarray(arr)           # (a list set by hand: its layer names it later)
        if arr.dtype.kind == "f" and not _all_finite(arr):
            return name
    return None


def _check_float_dtype(where: str, dtype: DTypeLike) -> np.dtype:
    return check_float_dtype(f"{where}: dtype", dtype)


_KIND_NAMES = {"U": "strings", "S": "bytes", "O": "Python objects", "c": "complex numbers",
               "M": "datetimes", "m": "timedeltas", "V": "raw records"}


# (what a subclass may define without computing anything else than its base)
_NOT_CODE = frozenset({"__init__", "__doc__", "__module__", "__qualname__", "__dict__",
                       "__weakref__", "__annotations__", "__firstlineno__",
                       "__static_attributes__", "__orig_bases__", "__parameters__"})


def overridden_methods(model: Any, base: type, base_name: str) -> str | None:
    """Which attributes of ``base`` the class of ``model`` (a subclass) defines again,
    ``__init__`` aside, in words, or None: a model file holds no code, so such a model would
    load back computing as ``base``."""
    names: set[str] = set()
    for klass in type(model).__mro__:
        if klass is base:
            break
        names.update(n for n in vars(klass) if n not in _NOT_CODE and hasattr(base, n))
    if not names:
        return None
    return f"{type(model).__name__} overrides {base_name}'s {', '.join(sorted(names))}"


def _as_numeric(where: str, name: str, value: ArrayLike) -> np.ndarray:
    """``value`` as a numeric (bool, integer or float) array, or a TypeError saying why not."""
    if isinstance(value, np.ma.MaskedArray):
        raise TypeError(f"{where}: {name} is a masked array; its mask would be ignored. Fill "
                        f"or drop the masked entries first ({name}.filled(value), or "
                        f"{name}.compressed() rows)")
    if isinstance(value, np.ndarray):
        arr = value
    else:
        tg = sys.modules.get("tinygraph")
        if tg is not None and isinstance(value, tg.Tensor):
            arr = value.data
        else:
            try:
                arr = np.asarray(value)
            except (TypeError, ValueError) as exc:
                detail = ("its rows have different lengths"
                          if "inhomogeneous" in str(exc) or "sequence" in str(exc)
                          else str(exc).split(". ")[0])
                raise TypeError(
                    f"{where}: {name} must be a numeric array, got a {type(value).__name__} "
                    f"that numpy cannot turn into one ({detail}); expected a rectangular "
                    f"list of numbers or a numpy array, every row of the same length"
                ) from None
    if arr.dtype.kind not in "biuf":
        what = _KIND_NAMES.get(arr.dtype.kind, "non-numeric values")
        raise TypeError(
            f"{where}: {name} must be a numeric array, got dtype {arr.dtype} ({what}); "
            f"expected integers or floats, e.g. np.asarray({name}, dtype=np.float64)"
        )
    return arr


def _scored_by_class(kind: str, n_outputs: int, y: Any) -> bool:
    """Whether accuracy asks for the most probable class: always for softmax; for a sigmoid
    per class when ``y`` came as class labels (1-D). A 0/1 matrix ``y`` for several sigmoid
    units is multi-label: each unit is scored. (Decided by how ``y`` is given, never by its
    values, so one model's scores stay comparable across batches.)"""
    return kind == "softmax" or (kind == "sigmoid" and n_outputs > 1 and np.ndim(y) == 1)


_FINITE_CHUNK = 1 << 20      # numbers per slice in _all_finite: a 1 MB temporary


def _all_finite(arr: np.ndarray) -> bool:
    """No NaN or Inf in ``arr``. ``np.isfinite(a).all()`` is exact and faster than a sum
    (float32, 50,176 numbers: 5 against 10 us; numpy's float32 sum is slow); a large array
    (a whole training set) is taken in slices (of its flat view when it is contiguous, else
    of its first axis), so that the temporary array of flags stays small."""
    if arr.size <= _FINITE_CHUNK or arr.ndim == 0:
        return bool(np.isfinite(arr).all())
    if arr.flags.c_contiguous:              # (a flat view, whatever the shape: no copy)
        flat = arr.reshape(-1)
        return all(np.isfinite(flat[s:s + _FINITE_CHUNK]).all()
                   for s in range(0, flat.size, _FINITE_CHUNK))
    step = max(1, _FINITE_CHUNK * arr.shape[0] // arr.size)
    return all(np.isfinite(arr[s:s + step]).all() for s in range(0, arr.shape[0], step))


def _check_finite(where: str, name: str, arr: np.ndarray, given: np.ndarray | None = None) -> None:
    """Raise ValueError naming the count and first position of NaN/Inf values in ``arr``;
    ``given``, the array before its cast to the model's dtype, tells an overflow apart."""
    if arr.dtype.kind != "f" or arr.size == 0 or _all_finite(arr):
        return
    finite = np.isfinite(arr)
    if given is not None and given.dtype != arr.dtype and given.dtype.kind in "fiu":
        with np.errstate(invalid="ignore"):
            overflowed = ~finite & np.isfinite(given)
        if overflowed.any():
            first = tuple(int(i) for i in np.argwhere(overflowed)[0])
            raise ValueError(
                f"{where}: {name} holds {int(overflowed.sum())} value(s) too large for the "
                f"model's {arr.dtype} (the first, {given[first]:g}, at index "
                f"{first[0] if len(first) == 1 else list(first)}); they become infinite when "
                f"converted: scale the data down (nn.data.standardize), or build the model "
                f"with dtype=np.float64"
            )
    n_nan = int(np.isnan(arr).sum())
    n_inf = int(arr.size - finite.sum()) - n_nan
    first = tuple(int(i) for i in np.argwhere(~finite)[0])
    where_first = first[0] if len(first) == 1 else list(first)
    raise ValueError(
        f"{where}: {name} contains NaN or infinite values ({n_nan} NaN, {n_inf} inf; the "
        f"first at index {where_first}, shape {arr.shape}); expected finite numbers: drop or "
        f"impute those entries before training or predicting"
    )


def _activation_name(act: Any) -> str:
    if act is None:
        return "linear"
    if isinstance(act, str):
        return act
    return str(getattr(act, "name", type(act).__name__))


def _resolve_activation(act: Any, where: str) -> Any:
    """Return an Activation instance, ``"softmax"`` or ``None`` for ``act``.

    Names are looked up with ``activations.get``; ``"softmax"`` (any case) is
    kept as the string ``"softmax"`` because softmax is not an element-wise
    activation: it is handled by the MLP together with cross-entropy.
    """
    if act is None:
        return None
    if isinstance(act, str):
        key = act.strip().lower()
        if key == SOFTMAX:
            return SOFTMAX
        try:
            return _activations.get(key)
        except (KeyError, ValueError, TypeError) as exc:
            raise ValueError(
                f"{where}={act!r} is not a known activation; expected 'softmax', None "
                f"(linear) or a name known to activations.get ({exc})"
            ) from exc
    if isinstance(act, type):
        raise TypeError(
            f"{where} is the class {act.__name__}, expected an instance such as "
            f"{act.__name__}() (each layer needs its own instance: it caches its input)"
        )
    if callable(getattr(act, "forward", None)) and callable(getattr(act, "backward", None)):
        return act
    raise TypeError(
        f"{where} must be an Activation instance (with forward/backward), an activation "
        f"name such as 'relu', 'softmax' or None (linear), got {act!r} "
        f"of type {type(act).__name__}"
    )


def _is_sigmoid(act: Any) -> bool:
    sigmoid_cls = getattr(_activations, "Sigmoid", None)
    if sigmoid_cls is not None and isinstance(act, sigmoid_cls):
        return True
    return getattr(act, "name", None) == "sigmoid" and not isinstance(act, str)


# Activation objects already serving a layer of some MLP, manual or graph, by id (weakly:
# an entry goes with its object; by id, so that an object without __hash__ is tracked too).
# An object keeps one cache from its forward to its backward, so a layer given an object that
# another layer or model already uses (one list reused for two models) gets a deep copy.
_IN_USE: "weakref.WeakValueDictionary[int, Any]" = weakref.WeakValueDictionary()


def _own(act: Any, where: str) -> Any:
    """``act`` for a new layer, or a deep copy if a layer of any MLP already uses it. An
    object that cannot be weakly referenced cannot be tracked: it is always copied."""
    if _IN_USE.get(id(act)) is act:
        act = _copy_for_layer(act, where, "is already used by a layer of another MLP")
    try:
        _IN_USE[id(act)] = act
    except TypeError:                  # no weak references: copy it, as nobody can know
        act = _copy_for_layer(act, where, "cannot be tracked (no weak references)")
    return act


def _copy_for_layer(act: Any, where: str, why: str) -> Any:
    try:
        return copy.deepcopy(act)
    except Exception as exc:
        raise TypeError(f"{where}: the activation object {act!r:.60} {why}, and a layer needs "
                        f"one of its own (it caches what backward reads), but it cannot be "
                        f"copied ({type(exc).__name__}: {exc}); give each layer and each "
                        f"model a new instance") from None


def resolve_architecture(layer_sizes: Any, activations: Any, seed: Any, rng: Any,
                         where: str) -> tuple[list[int], list[Any]]:
    """Check the spec's constructor arguments; return the sizes and resolved activations.

    Each layer gets an activation object of its own, because the object caches its input
    (or output) for backward: an instance listed twice, or already used by a layer of
    another MLP (manual or graph), is deep-copied.
    """
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(
        layer_sizes, (Sequence, np.ndarray)
    ):
        raise TypeError(
            f"{where}: layer_sizes must be a list of positive ints such as [784, 256, 10], "
            f"got {layer_sizes!r}"
        )
    sizes = [
        _check_int(f"{where}: layer_sizes[{i}]", s, 1) for i, s in enumerate(layer_sizes)
    ]
    if len(sizes) < 2:
        raise ValueError(
            f"{where}: layer_sizes must have at least 2 entries (input width and output "
            f"width), got {sizes}"
        )
    n_layers = len(sizes) - 1
    if isinstance(activations, (str, bytes)) or not isinstance(activations, Sequence):
        raise TypeError(
            f"{where}: activations must be a list with one entry per layer "
            f"({n_layers} for layer_sizes {sizes}), got {activations!r}"
        )
    if len(activations) != n_layers:
        raise ValueError(
            f"{where}: activations has {len(activations)} entries but layer_sizes {sizes} "
            f"defines {n_layers} layers (len(layer_sizes) - 1); give one activation "
            f"per layer"
        )
    resolved = []
    for i, act in enumerate(activations):
        r = _resolve_activation(act, f"{where}: activations[{i}]")
        if isinstance(r, str) and i != n_layers - 1:
            raise ValueError(
                f"{where}: activations[{i}]='softmax' but softmax is only supported at the "
                f"output layer (activations[{n_layers - 1}]); use an element-wise "
                f"activation such as 'relu' for hidden layers"
            )
        if isinstance(r, str) and sizes[-1] < 2:
            raise ValueError(
                f"{where}: a softmax output needs at least 2 units, but layer_sizes {sizes} "
                f"gives the output layer {sizes[-1]} (a softmax over one class is always 1, "
                f"so the loss would be 0 and nothing would train); for two classes use "
                f"'sigmoid' with 1 output unit (0/1 labels) or 'softmax' with 2"
            )
        if r is not None and not isinstance(r, str):
            r = _own(r, f"{where}: activations[{i}]")
        resolved.append(r)
    if seed is not None and rng is not None:
        raise ValueError(f"{where}: pass either seed or rng, not both; got seed={seed!r} and "
                         f"rng={type(rng).__name__}")
    return sizes, resolved


class SpecMLP:
    """The spec's MLP interface, minus forward/backward (see the module docstring)."""

    _where = "MLP"
    #: Epochs completed by ``fit`` over the model's life (saved in its files and checkpoints).
    epochs_trained = 0
    # set by the subclasses' __init__ (declared here for type checkers)
    layer_sizes: list[int]
    dtype: np.dtype
    #: the generator that shuffles the rows of each epoch (and drew the initial weights)
    rng: np.random.Generator

    @property
    def output_activation(self) -> Any:  # pragma: no cover - supplied by subclasses
        raise NotImplementedError

    def _inference(self, X: ArrayLike, where: str) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    @property
    def output_kind(self) -> str:
        """``"softmax"``, ``"sigmoid"``, ``"linear"`` or ``"activation"`` (other f)."""
        act = self.output_activation
        if act is None:
            return "linear"
        if isinstance(act, str):
            return "softmax"
        if _is_sigmoid(act):
            return "sigmoid"
        return "activation"

    @property
    def loss_name(self) -> str:
        """``"cross_entropy"``, ``"binary_cross_entropy"`` or ``"mse"``."""
        return _LOSS_OF_OUTPUT[self.output_kind]

    @property
    def n_outputs(self) -> int:
        return self.layer_sizes[-1]

    # -- input checks ---------------------------------------------------------

    def _check_X(self, X: ArrayLike, where: str) -> np.ndarray:
        arr = _as_numeric(where, "X", X)
        if arr.ndim != 2:
            hint = "; for a single sample use X.reshape(1, -1)" if arr.ndim == 1 else ""
            raise ValueError(
                f"{where}: X must be 2-D (n_samples, n_features), got shape {arr.shape}{hint}"
            )
        if arr.shape[1] != self.layer_sizes[0]:
            raise ValueError(
                f"{where}: X has {arr.shape[1]} features but layer 1 expects "
                f"{self.layer_sizes[0]} (layer_sizes[0]); expected X of shape "
                f"(n, {self.layer_sizes[0]}), got {arr.shape}"
            )
        with np.errstate(over="ignore", invalid="ignore"):   # checked right below
            cast = arr.astype(self.dtype, copy=False)
        _check_finite(where, "X", cast, arr)    # after the cast: 1e39 is inf in float32
        return cast

    def _check_batch(self, X: ArrayLike, where: str) -> np.ndarray:
        """``_check_X`` for a batch a loss is computed on: a mean over 0 rows is 0/0."""
        arr = self._check_X(X, where)
        if arr.shape[0] == 0:
            raise ValueError(f"{where}: X has 0 samples (shape {arr.shape}); expected at least "
                             f"one row (the loss is a mean over the batch)")
        return arr

    def _class_labels_to_onehot(self, arr: np.ndarray, where: str) -> np.ndarray:
        """1-D class labels ``y`` to one-hot rows ``(n, K)`` in the model dtype, checked."""
        K = self.n_outputs
        # allow_bool: the MLPs have always read a bool y as the classes 0 and 1, as they
        # do for a sigmoid output (binary targets often come as a bool mask).
        labels = check_class_labels(arr, K, where, classes_from=f"the output layer has {K} units",
                                    allow_bool=True)
        return onehot_rows(labels, K, self.dtype)

    def _prepare_targets(self, y: ArrayLike, where: str, n: int) -> np.ndarray:
        """Return the targets as a 2-D array of shape ``(n, K)`` in the model dtype."""
        arr = _as_numeric(where, "y", y)
        K = self.n_outputs
        kind = self.output_kind
        if self._from_class_labels(arr):
            targets = self._class_labels_to_onehot(arr, where)
        elif kind == "softmax":
            if arr.ndim == 2 and arr.shape[1] == K:
                targets = arr.astype(self.dtype, copy=False)
                self._check_unit_interval(targets, where, "one-hot targets")
                self._check_rows_sum_to_one(targets, where)
            else:
                column = (" (a column of class labels? pass y.ravel())"
                          if arr.ndim == 2 and arr.shape[1] == 1 and K > 1 else "")
                raise ValueError(
                    f"{where}: y has shape {arr.shape}; for a {kind} output with {K} units "
                    f"expected integer labels of shape (n,) or one-hot targets of shape "
                    f"(n, {K}){column}"
                )
        elif kind == "sigmoid":
            if arr.ndim == 1 and K == 1:
                arr = arr.reshape(-1, 1)
            if arr.ndim != 2 or arr.shape[1] != K:
                shapes = "(n,) or (n, 1)" if K == 1 else f"(n, {K})"
                raise ValueError(
                    f"{where}: y has shape {np.shape(y)}; for a sigmoid output with {K} "
                    f"unit(s) expected 0/1 labels of shape {shapes}"
                )
            targets = arr.astype(self.dtype, copy=False)
            self._check_unit_interval(targets, where, "0/1 labels for a sigmoid output")
        else:
            with np.errstate(over="ignore", invalid="ignore"):
                cast = arr.astype(self.dtype, copy=False)
            _check_finite(where, "y", cast, arr)  # after the cast: 1e39 is inf in float32
            arr = cast
            if arr.ndim == 1 and K == 1:
                arr = arr.reshape(-1, 1)
            if arr.ndim != 2 or arr.shape[1] != K:
                shapes = "(n, 1) or (n,)" if K == 1 else f"(n, {K})"
                raise ValueError(
                    f"{where}: y has shape {np.shape(y)} but the output layer has {K} "
                    f"unit(s); expected regression targets of shape {shapes}"
                )
            targets = arr
        if targets.shape[0] != n:
            raise ValueError(
                f"{where}: X has {n} samples but y has {targets.shape[0]}; they must match "
                f"(one target per row of X)"
            )
        return targets

    def _from_class_labels(self, y: Any) -> bool:
        """Whether ``_prepare_targets`` makes one-hot rows of class labels from this ``y``
        (1-D, for a softmax output or a sigmoid one of several units): rows valid by
        construction."""
        return np.ndim(y) == 1 and _scored_by_class(self.output_kind, self.n_outputs, y)

    @staticmethod
    def _check_rows_sum_to_one(targets: np.ndarray, where: str) -> None:
        """Softmax targets are distributions: δ^(L) = (a - y)/n holds only then."""
        sums = targets.sum(axis=1, dtype=np.float64)
        off = np.abs(sums - 1.0) > 1e-6 * max(targets.shape[1], 10)
        if off.any():
            i = int(np.argmax(off))
            raise ValueError(
                f"{where}: target row {i} sums to {sums[i]:.6g}; expected every row of one-hot "
                f"(or soft) targets to sum to 1 (the gradient (a - y)/n of softmax "
                f"cross-entropy is only right then); give integer labels, or normalise the rows"
            )

    @staticmethod
    def _check_unit_interval(targets: np.ndarray, where: str, what: str) -> None:
        bad = ~((targets >= 0) & (targets <= 1))
        if bad.any():
            idx = tuple(int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{where}: y must hold {what} with values in [0, 1], got "
                f"{targets[idx].item()!r} at index {idx}"
            )

    # -- saving ------------------------------------------------------------------------

    def save(self, path: Any, **kwargs: Any) -> Any:
        """Save to one ``.npz`` (arrays + JSON header, no pickle, atomic): see ``nn.serialize``."""
        from nn.serialize import save
        return save(self, path, **kwargs)

    # -- training helpers --------------------------------------------------------------

    def _fit_arguments(self, X: ArrayLike, y: ArrayLike, epochs: Any, learning_rate: Any,
                       batch_size: Any) -> tuple[np.ndarray, np.ndarray, int, float, int | None]:
        """Check fit's arguments; return X, targets (n, K), epochs, lr, batch_size."""
        where = f"{self._where}.fit"
        raw_pixels = isinstance(X, np.ndarray) and X.dtype == np.uint8
        X = self._check_batch(X, where)
        if raw_pixels and X.max() > 1:
            # (inputs up to 255 make the first batch's loss huge and the net can settle at
            # chance level, ln K, without diverging: no check of fit's would say a word)
            warnings.warn(f"{where}: X is uint8 with values up to {X.max():g}, raw pixel values? "
                          f"A network trains badly on unscaled inputs (the loss can stay at "
                          f"chance level); scale them first: X / 255.0, or "
                          f"nn.data.standardize", UserWarning, stacklevel=3)
        n = X.shape[0]
        targets = self._prepare_targets(y, where, n)
        _check_finite(where, "y", targets)
        epochs = _check_int(f"{where}: epochs", epochs, 1)
        lr = _check_learning_rate(where, learning_rate)
        if batch_size is not None:
            batch_size = _check_int(f"{where}: batch_size", batch_size, 1)
            if batch_size > n:
                raise ValueError(
                    f"{where}: batch_size={batch_size} is larger than the {n} training "
                    f"samples; expected 1..{n}, or batch_size=None for full-batch gradient "
                    f"descent")
        for name, arr in self._named_weights():
            if isinstance(arr, np.ndarray) and arr.dtype != self.dtype:
                # (the graph MLP would train it as it is: part of every step in another
                # dtype, and only save() would say so, after the training)
                raise TypeError(f"{where}: {name} has dtype {arr.dtype}, but this is a "
                                f"{self.dtype.name} model (a weight set by hand?); convert it "
                                f"with .astype(np.{self.dtype.name})")
        broken = self._broken_weight()
        if broken is not None:       # (fit would blame its own first update for it)
            raise ValueError(f"{where}: {broken} is NaN or infinite before training (set by "
                             f"hand, or left by a diverged run); re-create the model, or load a "
                             f"checkpoint saved before")
        overflow = self._overflowing_outputs(X)
        if overflow is not None:     # (the same, for weights finite but far too large)
            raise ValueError(f"{where}: {overflow} before training (weights set by hand, or "
                             f"left by an earlier run); re-create the model, or load a "
                             f"checkpoint saved before")
        return X, targets, epochs, lr, batch_size

    def _overflowing_outputs(self, X: np.ndarray) -> str | None:
        """What is wrong when the model's outputs on (the first 8 rows of) ``X`` are NaN or
        infinite although its weights are finite: weights so large that the forward pass
        overflows (left by an absurd learning rate's last update of an epoch, which no
        batch loss checks), else None."""
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            out = self._output_unrecorded(X[:8])
        if _all_finite(out):
            return None
        largest = max(float(np.max(np.abs(a), initial=0.0)) for _, a in self._named_weights())
        return (f"the model's outputs overflow to NaN or infinity (its largest weight is "
                f"{largest:.3g} in magnitude)")

    # -- stopping: fit's model always holds a whole number of epochs --------------------

    def _snapshot(self, given: Any = None) -> tuple:
        """What ``fit`` puts back when it stops inside an epoch (a NaN, an overflowing update,
        Ctrl-C, any error): copies of the weights, the optimizer (which one, its state and
        learning rate), the shuffling generator's state, the epochs trained. Taken when fit
        starts, before it chooses its optimizer, and after each epoch. An optimizer's state
        goes through its ``state_dict``/``load_state_dict``. ``given``: an optimizer object
        passed to this fit, not yet the model's, whose state is put back too (the caller
        holds it, and would otherwise retry with the aborted epoch's steps in it)."""
        opt = getattr(self, "optimizer", None)
        others = ([] if given is None or given is opt else
                  [(given, given.state_dict(), given.lr)])
        return ([a.copy() for _, a in self._named_weights()],
                None if opt is None else (opt, opt.state_dict(), opt.lr),
                self.rng.bit_generator.state, self.epochs_trained, others)

    def _put_back_weights(self, arrays: list) -> None:  # pragma: no cover
        raise NotImplementedError

    def _output_unrecorded(self, X: np.ndarray) -> np.ndarray:  # pragma: no cover
        """The output on ``X``, leaving no trace: no graph, and every cache as it was."""
        raise NotImplementedError

    def _restore(self, snapshot: tuple, fit_start: int, saver: Any,
                 catch_up: bool = True) -> str:
        """Put ``snapshot`` back and, with ``catch_up``, bring the checkpoint up to it
        (``checkpoint_every`` may have left it behind). A second Ctrl-C meanwhile does not
        stop it half way (it starts again: every step of it can be repeated). Returns the
        words saying where the model is now."""
        arrays, opt_state, rng_state, epochs, others = snapshot
        while True:
            try:
                # (arrays replaced, not written into: a graph may hold the ones in use
                # read-only; nothing changes the snapshot's after, so a retry reuses them)
                self._put_back_weights(arrays)
                for opt, state, lr in ([] if opt_state is None else [opt_state]) + others:
                    opt.load_state_dict(state)
                    opt.lr = lr
                if hasattr(self, "optimizer"):
                    object.__setattr__(self, "optimizer", None if opt_state is None
                                       else opt_state[0])
                self.rng.bit_generator.state = rng_state
                object.__setattr__(self, "epochs_trained", epochs)
                note = saver.catch_up() if catch_up else ""
                break
            except KeyboardInterrupt:
                continue
        done = epochs - fit_start
        state = "weights, optimizer and shuffling state" if hasattr(self, "optimizer") else \
            "weights and shuffling state"
        words = (f"the model was put back as it was before this fit (epochs_trained={epochs})"
                 if done == 0 else
                 f"the model was put back as it was after epoch {done} of this fit "
                 f"(epochs_trained={epochs})")
        return words + f": {state}, so fit continues from there exactly" + note

    def _nonfinite(self, what: str, epoch: int, batch: int | None, lr: float,
                   on_nonfinite: str, put_back: str) -> None:
        """Stop training: raise FloatingPointError, or warn (``on_nonfinite="warn"``).
        ``batch`` None: found at the end of the epoch (the weights' check). ``put_back``:
        what ``_restore`` said."""
        where = f"{self._where}.fit"
        overall = self.epochs_trained + 1          # epochs_trained counts completed epochs
        at = f"epoch {epoch}" + (" (found at its end)" if batch is None else f", batch {batch}")
        if overall != epoch:
            at += f" (epoch {overall} of the model's training)"
        message = (f"{where}: {what} at {at}; learning_rate={lr} is probably too large (or the "
                   f"inputs are not scaled). Training stopped, and {put_back}")
        if on_nonfinite == "raise":
            raise FloatingPointError(message)
        warnings.warn(message + "; fit returns the losses of the epochs completed before",
                      RuntimeWarning, stacklevel=3)

    def _interrupted(self, snapshot: tuple, fit_start: int, saver: Any, history: list,
                     epoch: int) -> KeyboardInterrupt:
        """Ctrl-C inside ``fit``: the model put back after its last whole epoch, the history
        cut to match; the KeyboardInterrupt to raise says so and carries the history."""
        put_back = self._restore(snapshot, fit_start, saver)
        done = self.epochs_trained - fit_start
        for values in (history, *(getattr(history, k, []) for k in
                                  ("train_accuracy", "val_loss", "val_accuracy"))):
            del values[done:]
        exc = KeyboardInterrupt(f"{self._where}.fit: interrupted in epoch {epoch} of this fit; "
                                f"{put_back}. The losses of the epochs completed are the "
                                f"exception's .history")
        exc.history = history         # type: ignore[attr-defined]  # (documented)
        return exc

    def _named_weights(self) -> Iterator[tuple[str, np.ndarray]]:  # pragma: no cover
        raise NotImplementedError

    def _broken_weight(self) -> str | None:
        """The name of the first weight or bias array holding NaN or Inf, else None. ``fit``
        checks its loss and gradients every batch, but an update can itself overflow (an
        absurd learning rate): the weights are checked at the end of each epoch and when
        training stops."""
        return _first_nonfinite(self._named_weights())

    def _batches(self, X: np.ndarray, targets: np.ndarray,
                 batch_size: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """One epoch of batches: all rows when ``batch_size`` is None, else shuffled with
        the model's ``rng`` and cut into batches (the last one may be smaller)."""
        if batch_size is None:
            yield X, targets
            return
        n = X.shape[0]
        order = self.rng.permutation(n)
        for s in range(0, n, batch_size):
            idx = order[s:s + batch_size]
            yield X[idx], targets[idx]

    # -- prediction --------------------------------------------------------------------

    def predict_proba(self, X: ArrayLike) -> np.ndarray:
        """Class probabilities: the softmax output ``(n, K)``, or the sigmoid output ``(n, d)``.

        Raises:
            ValueError: the output is neither softmax nor sigmoid (regression).
        """
        if self.output_kind not in ("softmax", "sigmoid"):
            raise ValueError(
                f"{self._where}.predict_proba needs a softmax or sigmoid output layer; this model's "
                f"output is {_activation_name(self.output_activation)!r} (regression), "
                f"use predict(X)"
            )
        return self._inference(X, f"{self._where}.predict_proba").copy()

    def predict(self, X: ArrayLike) -> np.ndarray:
        """Predictions.

        * softmax output: ``argmax`` class indices, shape ``(n,)``, int64;
        * one sigmoid unit: ``(p > 0.5)`` as int64, shape ``(n,)``
          (several sigmoid units: shape ``(n, d)``);
        * otherwise (regression): the raw output ``a^(L)``, shape ``(n, d)``.

        Raises ``FloatingPointError`` when a class output is NaN or infinite for finite X
        (weights that are not finite), instead of calling those rows class 0.
        """
        return self._predict(X, f"{self._where}.predict")

    def _predict(self, X: ArrayLike, where: str) -> np.ndarray:
        out = self._inference(X, where)
        kind = self.output_kind
        if kind in ("softmax", "sigmoid"):
            self._refuse_nonfinite(out, where)
        if kind == "softmax":
            return np.argmax(out, axis=1)
        if kind == "sigmoid":
            labels = (out > 0.5).astype(np.int64)
            return labels[:, 0] if self.n_outputs == 1 else labels
        return out.copy()

    def _refuse_nonfinite(self, out: np.ndarray, where: str) -> None:
        """Probabilities with NaN or inf from finite inputs (X is checked) come from weights
        that are not finite, or so large that the forward pass overflows; argmax or a 0.5
        threshold would turn them into class 0."""
        bad = ~np.all(np.isfinite(out.reshape(out.shape[0], -1)), axis=1)
        if bad.any():
            weights = ("not finite" if self._broken_weight() is not None else
                       "so large that the forward pass overflows")
            raise FloatingPointError(
                f"{where}: the model's output is NaN or infinite for {int(bad.sum())} of "
                f"{out.shape[0]} rows although X is finite: its weights are {weights} (a fit "
                f"that diverged in its last update, or weights set by hand); a class read from "
                f"them would be class 0. Retrain with a smaller learning_rate, or reload a "
                f"checkpoint")

    def score(self, X: ArrayLike, y: ArrayLike) -> float:
        """Classification accuracy in ``[0, 1]`` (fraction of correct predictions).

        ``y`` is given as for :meth:`fit` (integer labels or one-hot for
        softmax; 0/1 labels for sigmoid). For several sigmoid units, class labels
        (1-D ``y``) score the most probable class per sample; a 0/1 matrix scores every
        unit (multi-label accuracy).

        Raises:
            ValueError: the model is a regressor (linear or other non-probability output).
        """
        kind = self.output_kind
        if kind not in ("softmax", "sigmoid"):
            raise ValueError(
                f"{self._where}.score returns classification accuracy and needs a softmax or sigmoid "
                f"output; this model's output is "
                f"{_activation_name(self.output_activation)!r} (regression), compare "
                f"predict(X) with y instead (e.g. with mse_loss)"
            )
        Xc = self._check_X(X, f"{self._where}.score")
        targets = self._prepare_targets(y, f"{self._where}.score", Xc.shape[0])
        if Xc.shape[0] == 0:
            raise ValueError(f"{self._where}.score: X has 0 samples")
        if kind == "sigmoid" and _scored_by_class(kind, self.n_outputs, y):
            # class labels for a sigmoid per class: a sample is right when its most probable
            # class is its label (not when most of its units are right)
            proba = self.predict_proba(Xc)
            self._refuse_nonfinite(proba, f"{self._where}.score")
            return float(np.mean(np.argmax(proba, axis=1) == np.argmax(targets, axis=1)))
        pred = self._predict(Xc, f"{self._where}.score")
        if kind == "softmax":
            return float(np.mean(pred == np.argmax(targets, axis=1)))
        truth = (targets > 0.5).astype(np.int64)
        if self.n_outputs == 1:
            truth = truth[:, 0]
        return float(np.mean(pred == truth))
