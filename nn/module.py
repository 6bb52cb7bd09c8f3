"""``Module``: parameters and sub-modules in a tree, as in PyTorch; ``Sequential``."""
from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Callable, Iterator, NamedTuple

import numpy as np

import tinygraph as tg

_swap_scope = tg.swap_scope     # (bound once: Module.__call__ runs for every layer)


class Module:
    """Base class of layers and networks.

    Attributes that are leaf Tensors requiring grad become parameters (a tensor made by an
    op, such as an activation kept for later, is a plain attribute), attributes that are
    Modules become children; ``named_parameters()`` walks the tree, each module's own
    parameters (in assignment order) before its children's, and names each parameter by its
    place (``layers.0.W``).

    Calling a module runs ``forward`` under its label (``tinygraph.swap_scope``, the
    low-level form of ``tinygraph.scope``), so the graph nodes
    it records carry the module's ``label`` (``Linear 1``, ``ReLU 1``) and pictures can group
    them (the innermost module wins; two modules with one label are two groups).
    """

    # (set with object.__setattr__, past the checks of __setattr__: declared for checkers)
    _parameters: OrderedDict[str, tg.Tensor]
    _modules: OrderedDict[str, Module]
    #: the name nodes recorded inside carry (pictures group by it); the class name by default
    label: str

    def __init__(self) -> None:
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "label", tg.ScopeLabel(type(self).__name__))

    def __setattr__(self, name: str, value: Any) -> None:
        if "_parameters" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}: call super().__init__() before "
                               f"assigning attributes")
        if name == "label" and type(value) is str:     # a box of its own in pictures
            object.__setattr__(self, name, tg.ScopeLabel(value))
            return
        if _is_parameter(value):
            self._modules.pop(name, None)
            self._parameters[name] = value        # (a parameter replaced keeps its place)
        elif isinstance(value, Module):
            self._parameters.pop(name, None)
            self._modules[name] = value
        elif value is not None and value is self._parameters.get(name):
            pass                                  # a frozen parameter given back: kept
        elif isinstance(value, _CONTAINERS) and _holds_trainables(value):
            kind = type(value).__name__
            raise TypeError(
                f"{type(self).__name__}.{name}: a {kind} of modules or parameters is not "
                f"registered: parameters(), the optimizers, state_dict and save would never "
                f"see them, so they would not train. Use nn.Sequential(*layers) (it can be "
                f"indexed and iterated: self.{name}[0], for layer in self.{name}), or one "
                f"attribute per module")
        else:
            child = self._modules.get(name)
            if value is not None and child is not None:
                _refuse_replacing_child(self, name, child, value)
            old = self._parameters.get(name)
            if value is not None and old is not None:
                what = ("a tensor made by an op (not a leaf)" if isinstance(value, tg.Tensor)
                        and value.requires_grad else
                        "a tensor that does not require grad" if isinstance(value, tg.Tensor)
                        else "a numpy array" if isinstance(value, np.ndarray)
                        else f"a {type(value).__name__}")
                if not old.requires_grad:          # frozen: `W -= x` made a new tensor
                    raise TypeError(
                        f"{type(self).__name__}.{name} is a frozen parameter (requires_grad="
                        f"False): assigning {what} would replace it without a word (save and "
                        f"state_dict would no longer see it). Change its values in place with "
                        f"`.{name}.data -= ...` (or `.data = array`), or `del` it first")
                raise TypeError(
                    f"{type(self).__name__}.{name} is a parameter: assigning {what} would take "
                    f"it out of training without a word (the optimizer, state_dict and save "
                    f"would no longer see it). Set its values with `.{name}.data = array`, "
                    f"assign a tg.Tensor(..., requires_grad=True), freeze it with "
                    f"`.{name}.requires_grad = False`, or `del` it first")
            self._parameters.pop(name, None)
            self._modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __delattr__(self, name: str) -> None:
        self._parameters.pop(name, None)      # (or it would still be saved and optimized)
        self._modules.pop(name, None)
        object.__delattr__(self, name)

    # -- the tree --------------------------------------------------------------------
    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, tg.Tensor]]:
        """(name, parameter) for every parameter of the tree, each tensor once: a layer
        used twice, or a weight tied to another, comes under its first name only (an
        optimizer would otherwise step it twice)."""
        seen: set = set()
        for name, p in self._named_parameters(prefix):
            if id(p) not in seen:
                seen.add(id(p))
                yield name, p

    def _named_parameters(self, prefix: str) -> Iterator[tuple[str, tg.Tensor]]:
        for name, p in self._parameters.items():
            yield prefix + name, p
        for name, m in self._modules.items():
            yield from m._named_parameters(prefix + name + ".")

    def parameters(self) -> list[tg.Tensor]:
        """Every parameter of this module and its children, each once, in the order they
        were set."""
        return [p for _, p in self.named_parameters()]

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        """(path, module) for this module ("" or ``prefix``) and every module below it, depth
        first in assignment order; a module used in two places comes once, under its first
        path (as in PyTorch)."""
        seen: set = set()
        for path, m in self._named_modules(prefix):
            if id(m) not in seen:
                seen.add(id(m))
                yield path, m

    def _named_modules(self, prefix: str) -> Iterator[tuple[str, "Module"]]:
        yield prefix.rstrip("."), self
        for name, m in self._modules.items():
            yield from m._named_modules(prefix + name + ".")

    def name_parameters(self) -> None:
        """Set every parameter's ``name`` to its place in the tree (e.g. ``layers.0.W``)."""
        for name, p in self.named_parameters():
            p.name = name

    def zero_grad(self) -> None:
        """Forget every parameter's accumulated gradient."""
        for p in self.parameters():
            p.grad = None

    # -- calling ---------------------------------------------------------------------
    if TYPE_CHECKING:
        # a subclass names its own inputs (forward(self, x: Tensor) -> Tensor), which a
        # type checker would call an incompatible override of a method taking *args
        forward: Callable[..., Any]
    else:
        def forward(self, *args: Any) -> Any:  # pragma: no cover - abstract
            """The module's computation; ``module(x)`` calls it, labelling its nodes with the
            module's label."""
            raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        # nodes recorded inside carry this label (swap_scope: ~0.4 us less per call than a
        # with-block, measured inside a training step)
        previous = _swap_scope(self.label)
        try:
            return self.forward(*args, **kwargs)
        finally:
            _swap_scope(previous)

    # -- diagnostics -----------------------------------------------------------------
    def grad_report(self, loss: Any, y: Any = None) -> Any:
        """Which parameters get no gradient, or an all-zero one, and why.

        ``model.grad_report(X, y)`` for a model with a ``loss(X, y)`` method (``nn.MLP``);
        ``module.grad_report(fn)`` with a function computing the loss; or
        ``module.grad_report(loss)`` with a loss tensor after ``loss.backward()``.
        Reasons: not connected to the loss, cut off by detach()/no_grad(), all units of a
        ReLU dead on this batch, or a zero gradient (see ``tinygraph.diagnostics``).
        Returns a ``GradReport`` (print it); raises ``BackwardError`` if the loss depends
        on no parameter.
        """
        from tinygraph.diagnostics import grad_report
        where = f"{type(self).__name__}.grad_report"
        target = loss
        if y is not None:
            model_loss = getattr(self, "loss", None)
            if not callable(model_loss):
                raise TypeError(f"{where}: (X, y) needs a model with a loss(X, y) method; "
                                f"got y for a {type(self).__name__}: pass a loss tensor or a "
                                f"function computing it instead")
            X = loss

            def target() -> tg.Tensor:
                return model_loss(X, y)
        elif not isinstance(loss, tg.Tensor) and not callable(loss):
            raise TypeError(f"{where}: expected (X, y), a loss function or a loss tensor, got "
                            f"a single {type(loss).__name__}; pass y as well, e.g. "
                            f"model.grad_report(X, y)")
        return grad_report(target, OrderedDict(self.named_parameters()))

    # -- saving ----------------------------------------------------------------------
    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter's array, by name: under every name, as in PyTorch (a
        shared layer's or tied weight's values appear once per place it is used)."""
        return OrderedDict((name, p.data.copy()) for name, p in self._named_parameters(""))

    def load_state_dict(self, state: dict, strict: bool = True) -> "LoadedKeys":
        """Give the parameters copies of ``state``'s arrays (or Tensors), checking names,
        shapes, dtypes and values; all are checked before any is changed. Each loaded
        parameter's ``.data`` becomes a new array in the parameter's dtype (an array you hold
        of the old weights keeps them), and its ``.grad`` is reset to None. Returns the names
        missing from ``state`` and the ones it has that the model lacks (both empty when
        ``strict``, which refuses them)."""
        where = f"{type(self).__name__}.load_state_dict"
        if not isinstance(state, Mapping):
            hint = (" (pass its state: other.state_dict())" if isinstance(state, Module) else
                    " (call it: other.state_dict())" if callable(state) else
                    " (dict(pairs) makes one)" if isinstance(state, (list, tuple)) else "")
            raise TypeError(f"{where}: state must be a dict of arrays by parameter name, as "
                            f"state_dict() returns, got a {type(state).__name__}{hint}")
        own = dict(self._named_parameters(""))
        missing = [k for k in own if k not in state]
        unexpected = [k for k in state if k not in own]
        if strict and (missing or unexpected):
            raise KeyError(f"{where}: missing keys {missing}, unexpected keys {unexpected}")
        if state and len(unexpected) == len(state):
            raise KeyError(f"{where}: none of the state's keys {list(state)[:5]} names a "
                           f"parameter of this model ({list(own)[:5]}...); is it another "
                           f"model's state?")
        checked: dict = {}              # all checked first: a refusal changes no parameter
        for name, p in own.items():
            if name not in state:
                continue
            value = state[name]
            if isinstance(value, tg.Tensor):    # dict(other.named_parameters()): its values
                value = value.data
            if value is None or isinstance(value, (str, bytes)):
                raise ValueError(f"{where}: {name} is {value!r:.40} in the state; "
                                 f"expected an array of shape {p.shape}")
            try:
                arr = np.asarray(value)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {name} is not an array of numbers "
                                 f"({str(exc).split('. ')[0]})") from None
            if arr.shape != p.shape:
                raise ValueError(f"{where}: {name} has shape {arr.shape} in the state "
                                 f"but {p.shape} in the model")
            if arr.dtype.kind != "f":
                raise TypeError(f"{where}: {name} has dtype {arr.dtype}; expected a "
                                f"floating-point array")
            with np.errstate(over="ignore"):
                value = arr.astype(p.dtype, copy=True)
            if not np.isfinite(value).all():
                what = ("NaN or infinite values" if not np.isfinite(arr).all() else
                        f"values too large for {p.dtype} (up to {np.abs(arr).max():.3g})")
                raise ValueError(f"{where}: {name} holds {what}; expected finite weights")
            if tg.held_by_graph(p.data):
                raise RuntimeError(f"{where}: parameter {name} is held read-only by a graph that "
                                   f"has not been backpropagated (or kept with "
                                   f"retain_graph=True); its gradients would belong to the old "
                                   f"weights. Run backward() first, or drop the graph (del loss)."
                                   f" Nothing was loaded")
            first = checked.get(id(p))
            if first is not None and not np.array_equal(first[2], value):
                raise ValueError(f"{where}: {first[0]} and {name} are one shared parameter, but "
                                 f"the state holds different values for them; expected equal "
                                 f"ones")
            checked[id(p)] = (name, p, value)
        for _, p, value in checked.values():
            p.data = value
            p.grad = None
        return LoadedKeys(missing, unexpected)

    def __repr__(self) -> str:
        if not self._modules:
            return f"{type(self).__name__}({self.extra_repr()})"
        lines = [f"{type(self).__name__}("]
        for name, m in self._modules.items():
            child = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child}")
        lines.append(")")
        return "\n".join(lines)

    def extra_repr(self) -> str:
        """What ``repr(module)`` shows inside its parentheses (sizes, options); empty by
        default."""
        return ""


_CONTAINERS = (list, tuple, dict, set, frozenset)


def _refuse_replacing_child(owner: Module, name: str, child: Module, value: Any) -> None:
    """Assigning something that is not a Module to a child's name would unregister the
    child without a word: its parameters would stop training, and a Sequential would skip it
    (``setattr(seq, "1", np.tanh)``). None, or ``del``, removes it on purpose."""
    if isinstance(value, type) and issubclass(value, Module):
        what = f"the class {value.__name__} (not an instance of it)"
        hint = f"; {value.__name__}(...) makes one"
    else:
        what = f"{value!r:.40} (of type {type(value).__name__}, not a Module)"
        hint = ("; wrap an activation object as nn.ActivationLayer(...)"
                if hasattr(value, "forward") and hasattr(value, "backward") else "")
    raise TypeError(f"{type(owner).__name__}.{name} is a child module ({child.label}): "
                    f"assigning {what} would drop it from the model without a word (the "
                    f"optimizers, state_dict and save would no longer see it"
                    f"{', and forward would skip it' if isinstance(owner, Sequential) else ''})."
                    f" Assign a Module{hint}, or `del` the child (or set it to None) first")


def _holds_trainables(items: Any, seen: set | None = None) -> bool:
    """Whether a container (list, tuple, dict, set), or one nested in it, holds a Module or
    a parameter (a leaf tensor that requires grad; a tensor made by an op, an activation
    kept for later, is none)."""
    seen = set() if seen is None else seen
    seen.add(id(items))                 # (a list that holds itself is looked at once)
    values = items.values() if isinstance(items, dict) else items
    return any(_is_parameter(v) or isinstance(v, Module)
               or (isinstance(v, _CONTAINERS) and id(v) not in seen
                   and _holds_trainables(v, seen)) for v in values)


def _is_parameter(value: Any) -> bool:
    """A leaf tensor that requires grad: what a module attribute registers."""
    return isinstance(value, tg.Tensor) and value.requires_grad and value.is_leaf


class LoadedKeys(NamedTuple):
    """What ``load_state_dict(strict=False)`` left out (PyTorch returns the same pair)."""
    missing_keys: list
    unexpected_keys: list


class Sequential(Module):
    """Modules applied one after the other; children are named "0", "1", ..."""

    def __init__(self, *modules: Module) -> None:
        super().__init__()
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                is_class = isinstance(m, type)
                name = m.__name__ if is_class else type(m).__name__
                hint = (f"; wrap it as nn.ActivationLayer({name}())"
                        if hasattr(m, "forward") and hasattr(m, "backward") else "")
                what = f"the class {name}" if is_class else f"a {name}"
                raise TypeError(f"Sequential: item {i} is {what}, not a Module{hint}")
            setattr(self, str(i), m)
        # Children that share a label ("Linear", "ReLU") get numbers, as nn.MLP's layers do,
        # so that pictures and gradient reports tell the layers apart ("Linear 1", "Linear 2").
        labels = [m.label for m in modules]
        seen: dict = {}
        for m, label in zip(modules, labels):
            if labels.count(label) > 1:
                seen[label] = seen.get(label, 0) + 1
                m.label = f"{label} {seen[label]}"
        # Parameters named by their layer alone ("W", or "0.W" inside a nested Sequential)
        # take their path, so that pictures and reports tell them apart; a name of the
        # user's own (not the end of the path) is kept.
        for path, p in self.named_parameters():
            if p.name is None or path.endswith("." + p.name):
                p.name = path

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, i: int) -> Module:
        return list(self._modules.values())[i]

    def forward(self, x: Any) -> Any:
        # Each child runs under its own label, as m(x) would do, but with one try block for
        # all of them instead of two swap_scope calls per child (~0.7 us less per layer
        # inside a training step). A child with its own __call__ is called as it is.
        outer = _swap_scope(None)
        try:
            for m in self._modules.values():
                if type(m).__call__ is _module_call:
                    _swap_scope(m.label)
                    x = m.forward(x)
                else:
                    _swap_scope(outer)
                    x = m(x)
        finally:
            _swap_scope(outer)
        return x


_module_call = Module.__call__
