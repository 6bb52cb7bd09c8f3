"""The spec's MLP built from graph nodes: autodiff does the backward pass.

Same constructor and the same ``fit / predict / predict_proba / score`` as the manual MLP
(``nn.manual.MLP``); with the same seed both start from the same weights and shuffle the
same way, so their training runs can be compared step by step.
"""
from __future__ import annotations

import copy
import math
import warnings
from typing import TYPE_CHECKING, Any, Iterator, Sequence, cast

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

import activations as acts
import tinygraph as tg

from ._spec_mlp import (SOFTMAX, SpecMLP, _activation_name, _check_float_dtype,
                        _check_on_nonfinite, _copy_for_layer, _first_nonfinite, _is_sigmoid,
                        _loss_trouble, _scored_by_class, overridden_methods,
                        resolve_architecture)
from .checkpoint import Checkpointer
from .init import check_init_method, make_rng
from .layers import ActivationLayer, Linear
from .losses import BCEWithLogits, MSELoss, SoftmaxCrossEntropy
from .module import Module, Sequential
from .optim import SGD, Optimizer

if TYPE_CHECKING:
    class _LinearWithBias(Linear):
        """For type checkers: a Linear made with a bias, as an MLP's layers are, whose ``b``
        is a Tensor, never None."""
        b: tg.Tensor


class History(list):
    """Per-epoch average training loss (a list, as the manual MLP returns), plus
    with validation data, ``train_accuracy``, ``val_loss`` and ``val_accuracy`` (classifiers)."""

    def __init__(self) -> None:
        super().__init__()
        self.train_accuracy: list[float] = []
        self.val_loss: list[float] = []
        self.val_accuracy: list[float] = []
        #: Why fit stopped early (``on_nonfinite="warn"``), else None.
        self.stop_reason: str | None = None


class MLP(Module, SpecMLP):
    r"""Multilayer perceptron whose gradients come from tinygraph's reverse-mode autodiff.

    The network is a ``Sequential`` of nodes: for each layer l, a ``Linear`` node
    z^(l) = a^(l-1) W^(l)ᵀ + b^(l) and an ``ActivationLayer`` a^(l) = f^(l)(z^(l)) that calls
    the activation object's own forward and backward. The output layer and the loss node:

    * ``"softmax"`` → no activation node; ``SoftmaxCrossEntropy`` fuses softmax and the
      cross-entropy: one node from the logits z^(L), with gradient (softmax − Y)/n;
    * ``None`` → linear output and ``MSELoss`` (1/2n);
    * a ``Sigmoid`` → no activation node; ``BCEWithLogits`` fuses the sigmoid and the
      binary cross-entropy: one node from z^(L), with gradient (σ(z) − y)/n;
    * any other activation → ``MSELoss`` through that activation.

    Calling the model (``model(X)``) returns the graph's output Tensor: the logits for a
    softmax or sigmoid output (the probabilities come from ``predict_proba``), a^(L) otherwise.
    Parameters are named by their place: ``layers.0.W``, ``layers.0.b``, ``layers.2.W``, ...
    Each layer gets an activation object of its own, as in the manual MLP: an instance listed
    twice, or already used by a layer of another MLP (one list given to both), is deep-copied.
    """

    _where = "nn.MLP"
    _resolved: list[Any]    # the activation of each layer, as resolve_architecture gave it

    def __init__(self, layer_sizes: Sequence[int], activations: Sequence[Any],
                 init_method: str = "he", seed: int | None = None,
                 rng: np.random.Generator | None = None, dtype: DTypeLike = np.float64) -> None:
        super().__init__()
        sizes, resolved = resolve_architecture(layer_sizes, activations, seed, rng, "nn.MLP")
        self.init_method = check_init_method(init_method, "nn.MLP: init_method")
        self.dtype = _check_float_dtype("nn.MLP", dtype)
        object.__setattr__(self, "rng", make_rng(
            rng if rng is not None else seed, "nn.MLP: rng" if rng is not None else "nn.MLP: seed"))
        self.layer_sizes = sizes
        object.__setattr__(self, "_resolved", resolved)
        modules: list[Module] = []
        for i, act in enumerate(resolved):
            linear = Linear(sizes[i], sizes[i + 1], init=self.init_method, rng=self.rng,
                            dtype=self.dtype)
            linear.label = f"Linear {i + 1}"
            modules.append(linear)
            if _has_activation_node(i, act, len(resolved)):
                layer = ActivationLayer(act)
                layer.label = f"{type(act).__name__} {i + 1}"
                modules.append(layer)
        self.layers = Sequential(*modules)
        self.name_parameters()
        self.loss_fn = _loss_class(self.output_kind)()
        self.loss_fn.label = "Loss"

    # -- what SpecMLP needs ----------------------------------------------------------
    @property
    def output_activation(self) -> Any:
        """The output layer's activation object (None for a linear output)."""
        return self._resolved[-1]

    @property
    def linears(self) -> list[_LinearWithBias]:
        """The Linear layers, input side first (W^(1), ..., W^(L))."""
        return cast("list[_LinearWithBias]", [m for m in self.layers if isinstance(m, Linear)])

    def _inference(self, X: ArrayLike, where: str) -> np.ndarray:
        X = self._check_X(X, where)
        kind = self.output_kind
        with tg.no_grad():
            out = self(tg.Tensor(X))
            if kind == "softmax":
                out = tg.softmax(out, axis=1)
            elif kind == "sigmoid":          # (tinygraph's: e^z/(1+e^z) for z < 0, so tiny
                out = tg.sigmoid(out)        # probabilities keep their digits, as the manual's)
        return out.data

    def _output_unrecorded(self, X: np.ndarray) -> np.ndarray:
        # (under no_grad the activation adapter puts the activation's cache back)
        return self._inference(X, f"{self._where}.fit")

    # -- the graph -------------------------------------------------------------------
    def forward(self, x: Any) -> tg.Tensor:
        """The network's output node: logits z^(L) for a softmax or sigmoid output (the loss
        node applies them), else a^(L)."""
        if not isinstance(x, tg.Tensor):
            x = tg.Tensor(np.asarray(x, dtype=self.dtype))    # as the manual MLP: cast to the model dtype
        return self.layers(x)

    def loss(self, X: ArrayLike, y: ArrayLike) -> tg.Tensor:
        """The scalar loss node of a batch (cross-entropy, BCE or MSE, as the output says)."""
        return self._checked_loss(X, y, f"{self._where}.loss")

    def _checked_loss(self, X: ArrayLike, y: ArrayLike, where: str) -> tg.Tensor:
        """``loss``, its errors naming ``where``."""
        Xc = self._check_batch(X, where)
        targets = self._prepare_targets(y, where, Xc.shape[0])
        # one-hot rows made from class labels are valid by construction: the loss's second
        # check of them cost ~20 us a step
        if not self._from_class_labels(y):
            targets = self._loss_targets(targets)
        return self._loss(Xc, targets)

    def _loss_targets(self, targets: np.ndarray) -> np.ndarray:
        """Prepared targets as the loss node takes them, checked by the loss once (fit checks
        the whole training set up front, not every batch)."""
        return self.loss_fn.check_targets(targets, (targets.shape[0], self.layer_sizes[-1]),
                                          self.dtype)

    def _loss(self, X: np.ndarray, targets: np.ndarray) -> tg.Tensor:
        """The loss node of a batch whose targets went through ``_loss_targets``."""
        out = self(tg.Tensor(X))
        previous = tg.swap_scope(self.loss_fn.label)
        try:
            return self.loss_fn.node(out, targets)
        finally:
            tg.swap_scope(previous)

    def compute_gradients(self, X: ArrayLike, y: ArrayLike) -> float:
        """Forward, loss, backward on one batch: fills every parameter's ``.grad`` (after
        clearing it) and returns the loss. The autodiff twin of the manual MLP's
        ``forward(X)`` followed by ``backward(y)``."""
        self.zero_grad()
        loss = self._checked_loss(X, y, f"{self._where}.compute_gradients")
        loss.backward()
        return float(loss.item())

    def _named_weights(self) -> Iterator[tuple[str, np.ndarray]]:
        return ((name, p.data) for name, p in self.named_parameters())

    def _put_back_weights(self, arrays: list) -> None:
        for (_, p), a in zip(self.named_parameters(), arrays):
            p.data = a

    def gradients(self) -> list[tuple[np.ndarray | None, np.ndarray | None]]:
        """[(dL/dW^(l), dL/db^(l)) for each layer], as arrays (None before backward)."""
        return [(lin.W.grad, lin.b.grad) for lin in self.linears]

    # -- training --------------------------------------------------------------------
    #: The optimizer of the last ``fit`` (or restored by ``nn.load``); the next ``fit``
    #: continues it (its moments, its step count) unless asked for another kind.
    optimizer: Optimizer | None = None

    def fit(self, X: ArrayLike, y: ArrayLike, epochs: int, learning_rate: float | None = None,
            batch_size: int | None = None, verbose: bool = False,
            optimizer: Optimizer | str | None = None,
            validation_data: tuple[ArrayLike, ArrayLike] | None = None,
            on_nonfinite: str = "raise", checkpoint: Any = None,
            checkpoint_every: int | None = None) -> History:
        """Train with mini-batches; return the per-epoch losses (a ``History`` list).

        Each epoch shuffles the rows with the model's ``rng`` (when ``batch_size`` is
        given; the last batch may be smaller), and for each batch runs forward → loss →
        backward → optimizer step.

        ``optimizer`` is ``"sgd"`` (vanilla gradient descent, as the spec), ``"adam"``, or
        an Optimizer built on ``model.parameters()``. The optimizer is kept as
        ``model.optimizer`` and the next ``fit`` continues it when it asks for the same kind
        (or passes ``optimizer=None``), so two fits of 5 epochs equal one of 10.
        ``learning_rate`` defaults to the continued optimizer's rate, else 0.01.

        ``verbose=True`` shows a progress bar with the running loss.
        ``validation_data=(X_val, y_val)`` adds the validation loss and accuracy, and the
        training accuracy, of each epoch to the history (one more forward pass per epoch).

        As soon as the loss, or a gradient, becomes NaN or infinite, or the loss explodes
        (more than ``DIVERGENCE_FACTOR`` = 1e6 times the first batch loss of this fit, or
        1e6 if that loss was below 1), or an update overflows the weights (or leaves them so
        large that the outputs overflow: checked on 8 rows at each epoch's end), training stops:
        ``on_nonfinite="raise"`` (default) raises ``FloatingPointError`` naming the epoch
        and batch; ``"warn"`` emits a ``RuntimeWarning`` and returns the history of the
        epochs completed before (its ``stop_reason`` holds the reason, with the epoch and
        batch). Either way, and on Ctrl-C (a ``KeyboardInterrupt`` saying so, its
        ``.history`` the completed epochs) or any other error inside an epoch, the model is
        put back as it was after its last whole epoch (or before this fit): weights,
        optimizer and shuffling state, so the next ``fit`` continues exactly. Weights that
        cannot be trained are refused before the first batch: NaN or infinite, so large that
        the outputs overflow, or of another dtype than the model's (set by hand).

        ``checkpoint="run.npz"`` saves the model with its optimizer and random state
        (atomically) after every ``checkpoint_every``-th epoch (default 1) and after the
        last: ``nn.load("run.npz")`` then resumes exactly (see ``nn.checkpoint``).
        """
        where = f"{self._where}.fit"
        on_nonfinite = _check_on_nonfinite(where, on_nonfinite)
        saver = Checkpointer(self, checkpoint, checkpoint_every, where)
        opt_kind = self._optimizer_kind(optimizer)
        if isinstance(optimizer, Optimizer) and learning_rate is not None \
                and learning_rate != optimizer.lr:
            raise ValueError(f"{where}: learning_rate={learning_rate!r} but the optimizer given "
                             f"has lr={optimizer.lr!r}, which it would train with; leave "
                             f"learning_rate out (or set the optimizer's lr)")
        if learning_rate is None:
            current: Any = self.optimizer      # (not None where _continues says so)
            learning_rate = (optimizer.lr if isinstance(optimizer, Optimizer) else
                             current.lr if self._continues(opt_kind) else 0.01)
        X, targets, epochs, lr, batch_size = self._fit_arguments(X, y, epochs, learning_rate,
                                                                 batch_size)
        if not any(p.requires_grad for p in self.parameters()):
            raise ValueError(f"{where}: every parameter is frozen (requires_grad=False), so "
                             f"there is nothing to train; set requires_grad=True on the ones "
                             f"to train")
        targets = self._loss_targets(targets)
        val = None
        if validation_data is not None:
            if not isinstance(validation_data, (tuple, list)) or len(validation_data) != 2:
                got = (f"a {type(validation_data).__name__} of length {len(validation_data)}"
                       if isinstance(validation_data, (tuple, list))
                       else type(validation_data).__name__)
                raise TypeError(f"{where}: validation_data must be a pair (X_val, y_val), got "
                                f"{got}")
            Xv = self._check_X(validation_data[0], f"{where}: validation_data")
            if Xv.shape[0] == 0:            # (its loss and accuracy would be NaN)
                raise ValueError(f"{where}: validation_data has 0 samples; pass some, or "
                                 f"leave validation_data out")
            val = (Xv, self._loss_targets(self._prepare_targets(
                validation_data[1], f"{where}: validation_data", Xv.shape[0])))
        named = [(name, p) for name, p in self.named_parameters()]
        classify = self.output_kind in ("softmax", "sigmoid")
        history = History()
        n = X.shape[0]
        bar = None
        reference = None            # the first batch loss: see DIVERGENCE_FACTOR
        fit_start = self.epochs_trained
        # where a stop inside an epoch puts the model back: taken before this fit chooses
        # its optimizer, and after every epoch
        snapshot = self._snapshot(optimizer if isinstance(optimizer, Optimizer) else None)
        epoch = 1
        loss = None
        try:
            opt = self._make_optimizer(optimizer, opt_kind, lr)
            saver.check_optimizer(opt, where)
            if opt is self.optimizer and not isinstance(optimizer, Optimizer):
                opt.lr = lr                    # a continued optimizer takes the new rate
            object.__setattr__(self, "optimizer", opt)
            if verbose:
                from tqdm.auto import tqdm  # type: ignore[import-untyped]
                n_batches = 1 if batch_size is None else math.ceil(n / batch_size)
                bar = tqdm(total=epochs * n_batches, desc="training", unit="batch",
                           dynamic_ncols=True, leave=True, mininterval=0.5)
            # training records, even if called inside no_grad(); numpy's overflow warnings are
            # silenced because every batch is checked (and named) below
            with tg.enable_grad(), np.errstate(over="ignore", invalid="ignore", divide="ignore"):
                for epoch in range(1, epochs + 1):
                    total = 0.0
                    stopped = False
                    for b, (Xb, Tb) in enumerate(self._batches(X, targets, batch_size), start=1):
                        opt.zero_grad()
                        loss = self._loss(Xb, Tb)
                        value = float(loss.item())
                        if reference is None:
                            reference = value
                        bad = _loss_trouble(value, reference)
                        if bad is None:
                            loss.backward()
                        if bad is None:
                            found = _first_nonfinite((name, p.grad) for name, p in named)
                            if found is not None:
                                bad = (f"the gradient of {found} became NaN or infinite (the "
                                       f"loss was {value:.6g})")
                        if bad is not None:
                            loss = None
                            opt.zero_grad()
                            self._nonfinite(bad, epoch, b, lr, on_nonfinite,
                                            self._restore(snapshot, fit_start, saver))
                            history.stop_reason = f"{bad} at epoch {epoch}, batch {b}"
                            stopped = True
                            break
                        opt.step()
                        total += value * Xb.shape[0]
                        if bar is not None:
                            bar.update(1)
                            bar.set_postfix(epoch=epoch, loss=f"{value:.4f}", refresh=False)
                    if stopped:
                        break
                    broken = self._broken_weight()
                    bad = (f"the weights became NaN or infinite ({broken}) in an update"
                           if broken is not None else self._overflowing_outputs(Xb))
                    if bad is not None:                        # the last update overflowed
                        self._nonfinite(bad, epoch, None, lr, on_nonfinite,
                                        self._restore(snapshot, fit_start, saver))
                        history.stop_reason = f"{bad} at epoch {epoch}"
                        break
                    history.append(total / n)
                    object.__setattr__(self, "epochs_trained", self.epochs_trained + 1)
                    if classify and val is not None:     # an extra pass: only when asked
                        history.train_accuracy.append(self._accuracy(X, targets, y))
                    if val is not None:
                        with tg.no_grad():
                            history.val_loss.append(float(self._loss(*val).item()))
                        if classify:
                            history.val_accuracy.append(
                                self._accuracy(*val, validation_data[1]))  # type: ignore[index]
                    saver.epoch_counted()    # (first: the file now lacks this epoch)
                    snapshot = self._snapshot()
                    if bar is not None:
                        post = {"epoch": epoch, "loss": f"{history[-1]:.4f}"}
                        if history.val_accuracy:
                            post["val_acc"] = f"{history.val_accuracy[-1]:.3f}"
                        bar.set_postfix(post)
                    saver.epoch_done(epoch, last=epoch == epochs)
        except KeyboardInterrupt:
            loss = None                 # (its graph holds the weights read-only)
            raise self._interrupted(snapshot, fit_start, saver, history, epoch) from None
        except FloatingPointError:
            raise                       # fit's own stop: the model is put back already
        except Exception:               # anything else inside an epoch (out of memory, a
            loss = None                 # failing checkpoint save): put back all the same
            self._restore(snapshot, fit_start, saver, catch_up=False)
            raise
        finally:
            if bar is not None:
                bar.close()
        return history

    def _optimizer_kind(self, optimizer: Any) -> type | None:
        """The optimizer class asked for; None for "continue the model's, or SGD"."""
        if optimizer is None:
            return None
        if isinstance(optimizer, str) and optimizer.strip().lower() in ("sgd", "adam"):
            from .optim import Adam
            return SGD if optimizer.strip().lower() == "sgd" else Adam
        if isinstance(optimizer, Optimizer):
            own = self.parameters()
            if len(optimizer.params) != len(own) or any(
                    a is not b for a, b in zip(optimizer.params, own)):
                raise ValueError(f"{self._where}.fit: the optimizer does not hold this model's "
                                 f"parameters; expected one built on model.parameters(), e.g. "
                                 f"nn.Adam(model.parameters(), lr=1e-3)")
            return type(optimizer)
        raise ValueError(f"{self._where}.fit: optimizer must be 'sgd', 'adam' or an "
                         f"nn.optim.Optimizer, got {optimizer!r}")

    def _continues(self, kind: type | None) -> bool:
        """Whether a fit asking for optimizer ``kind`` (None: any) continues the last one:
        the same class, and for "sgd" (vanilla gradient descent) no momentum."""
        current = self.optimizer
        return (current is not None and kind in (None, type(current))
                and not (kind is SGD and bool(getattr(current, "momentum", 0))))

    def _make_optimizer(self, optimizer: Any, kind: type | None, lr: float) -> Optimizer:
        current: Any = self.optimizer      # an Optimizer, or None
        own = self.parameters()
        holds_own = current is not None and len(current.params) == len(own) and all(
            a is b for a, b in zip(current.params, own))
        if isinstance(optimizer, Optimizer):
            opt = optimizer                    # used as given, with its own learning rate
        elif self._continues(kind) and holds_own:
            opt = current                      # continue: keep its moments and step count
        elif kind is None and current is not None:
            # to be continued, but a parameter was replaced since (layer.W = Tensor(...)):
            # the same kind and settings on the parameters the model has now
            settings = {**current.config(), "lr": lr}
            try:
                opt = type(current)(own, **settings)
            except TypeError:
                raise ValueError(
                    f"{self._where}.fit: model.optimizer ({type(current).__name__}) holds "
                    f"parameters this model no longer has (one was replaced since), and it "
                    f"cannot be rebuilt from its config() {settings}; pass an optimizer built "
                    f"on model.parameters()") from None
            if _has_state(current):
                warnings.warn(
                    f"{self._where}.fit: model.optimizer ({type(current).__name__}"
                    f"{_state_summary(current)}) holds parameters this model no longer has (one "
                    f"was replaced since it was built); a new {type(current).__name__} with "
                    f"its settings trains the current ones, and its state is dropped",
                    RuntimeWarning, stacklevel=3)
        elif kind is None or kind is SGD:
            opt = SGD(own, lr=lr)
        else:
            opt = kind(own, lr=lr)
        if (current is not None and kind is not None and opt is not current
                and type(opt) is type(current) and _has_state(current)):
            # the same kind again, as a new object or as "sgd" after momentum SGD: a resumed
            # run would silently restart its optimizer
            warnings.warn(f"{self._where}.fit: the optimizer asked for replaces model.optimizer "
                          f"({type(current).__name__}{_state_summary(current)}, from the last "
                          f"fit or the model's file), and its state is dropped; pass "
                          f"optimizer=None to continue it", RuntimeWarning, stacklevel=3)
        return opt

    def _accuracy(self, X: np.ndarray, targets: np.ndarray, y: Any) -> float:
        """``score``'s accuracy; ``y`` as the caller gave it decides how (see score)."""
        p = self._inference(X, f"{self._where}.fit")
        if _scored_by_class(self.output_kind, self.layer_sizes[-1], y):
            return float(np.mean(np.argmax(p, axis=1) == np.argmax(targets, axis=1)))
        return float(np.mean((p > 0.5) == (targets > 0.5)))

    # -- the manual twin -------------------------------------------------------------
    @classmethod
    def from_manual(cls, manual: Any) -> "MLP":
        """A graph MLP with the manual MLP's architecture and a copy of its weights."""
        acts_ = [_copy_activation(layer.activation) for layer in manual.layers]
        model = cls(manual.layer_sizes, acts_, init_method=manual.init_method, seed=0,
                    dtype=manual.dtype)
        for lin, layer in zip(model.linears, manual.layers):
            lin.W.data = np.array(layer.W, dtype=manual.dtype, copy=True)
            lin.b.data = np.array(layer.b, dtype=manual.dtype, copy=True)
        _copy_training_state(manual, model)
        return model

    def to_manual(self) -> Any:
        """A manual MLP (``nn.manual.MLP``) with this architecture and a copy of the weights."""
        from .manual import MLP as ManualMLP
        changed = self._changed_by_hand()
        if changed is not None:         # (the twin is built from the architecture, not layers)
            raise ValueError(f"{self._where}.to_manual: {changed}; the hand-written twin is "
                             f"made from the architecture the model was built with, so it would "
                             f"compute another network than this one. Put the model back as it "
                             f"was built, or cross-check a model built with the architecture "
                             f"you want")
        acts_ = [_copy_activation(a) for a in self._resolved]
        manual = ManualMLP(self.layer_sizes, acts_, init_method=self.init_method, seed=0,
                           dtype=self.dtype)
        for i, (lin, layer) in enumerate(zip(self.linears, manual.layers), start=1):
            for name, ours, theirs in (("W", lin.W.data, layer.W), ("b", lin.b.data, layer.b)):
                if ours.shape != theirs.shape:    # (a weight replaced by hand)
                    raise ValueError(
                        f"{self._where}.to_manual: layer {i}'s {name} has shape {ours.shape}, "
                        f"but layer_sizes {self.layer_sizes} needs {theirs.shape}; assign a "
                        f"{name} of that shape")
                theirs[...] = ours
        _copy_training_state(self, manual)
        return manual

    def _changed_by_hand(self) -> str | None:
        """What makes this model another network than the one it was built as (a method
        overridden by a subclass; a layer, an activation or the loss swapped in; a parameter
        added), or None. Files and twins are made from the architecture it was built with,
        so they refuse it."""
        overrides = overridden_methods(self, MLP, "nn.MLP")
        if overrides is not None:
            return overrides
        want: list[Any] = []          # (the modules __init__ made: Linear or an activation)
        for i, act in enumerate(self._resolved):
            want.append(Linear)
            if _has_activation_node(i, act, len(self._resolved)):
                want.append(act)
        got = list(self.layers)
        for k, module in enumerate(got):
            built = want[k] if k < len(want) else None
            was = ("nothing" if built is None else "a Linear" if built is Linear
                   else f"ActivationLayer({_activation_name(built)})")
            # (exact types: a subclass of Linear or ActivationLayer computes its own way)
            if built is Linear and type(module) is Linear:
                if getattr(module, "b", None) is None:
                    return f"layers.{k} is a Linear without a bias (built with one)"
            elif (type(module) is ActivationLayer and built is not Linear
                  and built is not None):
                now = module.activation
                if now is not built and not _same_activation(now, built):
                    return (f"layers.{k}'s activation is {now!r}, but the model was built with "
                            f"{built!r}")
            else:
                return (f"layers.{k} is a {type(module).__name__} where the model was built "
                        f"with {was}")
        if len(got) < len(want):
            return f"layers has {len(got)} modules, but the model was built with {len(want)}"
        built_loss = _loss_class(self.output_kind)
        if type(self.loss_fn) is not built_loss:
            return (f"loss_fn is {type(self.loss_fn).__name__}, but the model was built with "
                    f"{built_loss.__name__}")
        layer_params = [t for lin in self.linears for t in (lin.W, lin.b)]
        for name, p in self.named_parameters():
            if not any(p is t for t in layer_params):
                return f"parameter {name} (shape {tuple(p.shape)}) is not a layer's W or b"
        return None

    def extra_repr(self) -> str:
        return (f"layer_sizes={self.layer_sizes}, activations="
                f"{[_activation_name(a) for a in self._resolved]}")


def _has_state(opt: Optimizer) -> bool:
    """Whether ``opt`` has taken steps whose state (moments, velocities) a new one lacks."""
    return bool(getattr(opt, "t", 0)) or any(v is not None for v in getattr(opt, "velocity", ()))


def _state_summary(opt: Any) -> str:
    if getattr(opt, "t", 0):
        return f" after {opt.t} steps"
    return f" with momentum {opt.momentum}" if getattr(opt, "momentum", 0) else ""


def _copy_training_state(source: Any, twin: Any) -> None:
    """The twin shuffles its next batches as the source would, and counts the same epochs."""
    object.__setattr__(twin, "rng", copy.deepcopy(source.rng))
    object.__setattr__(twin, "epochs_trained", source.epochs_trained)


def _has_activation_node(i: int, act: Any, n_layers: int) -> bool:
    """Whether layer i's activation is a node of its own in ``model.layers`` (a softmax
    output, and a sigmoid one, are fused into the loss node instead)."""
    output_fused = i == n_layers - 1 and _is_sigmoid(act)
    return act is not None and act != SOFTMAX and not output_fused


def _loss_class(output_kind: str) -> type[SoftmaxCrossEntropy | BCEWithLogits | MSELoss]:
    """The loss an output needs: the fused softmax or sigmoid nodes, else MSE."""
    return (SoftmaxCrossEntropy if output_kind == "softmax" else
            BCEWithLogits if output_kind == "sigmoid" else MSELoss)


def _same_activation(a: Any, b: Any) -> bool:
    """Two activation objects computing the same function: one class and one configuration."""
    if type(a) is not type(b) or not callable(getattr(a, "config", None)):
        return False
    try:
        return bool(a.config() == b.config())
    except (TypeError, ValueError):     # (a plug-in's configuration holding arrays)
        return False


def _copy_activation(act: Any) -> Any:
    """A fresh activation of the same kind and parameters (each model keeps its own cache).

    A built-in activation is made anew from its name and configuration (empty cache); any
    other object, a subclass of a built-in included (it may compute something else under
    the same name), is deep-copied with its cache emptied."""
    if act is None or isinstance(act, str):
        return act
    if isinstance(act, acts.Activation):
        try:
            fresh = acts.from_config(act.name, act.config())
        except (TypeError, ValueError):     # a subclass with a name or parameters of its own
            fresh = None
        if type(fresh) is type(act):
            return fresh
    twin = _copy_for_layer(act, "MLP twin", "is copied for the twin model")
    if isinstance(twin, acts.Activation):
        twin.cache = None
    return twin
