"""Saving and loading both MLPs: one ``.npz`` with the arrays and a JSON header.

Nothing is pickled and nothing is executed: the file is read as a zip of plain ``.npy``
arrays whose headers are parsed here (an object array is refused before a byte of it is
read), and the JSON header is checked field by field. Anything missing, mis-shaped,
truncated or corrupted raises ``ModelFileError`` naming what is wrong.

Writes are atomic: the file is written to a temporary file in the same directory,
flushed and fsynced, then moved over the target with ``os.replace`` (and the directory
is fsynced). A save interrupted at any point (crash, SIGKILL, full disk) leaves the
previous file intact; at worst a stray ``<name>.npz.<random>.tmp`` file stays behind.

File layout (format version 2, or 3 when a parameter is frozen: the header's ``frozen``;
version 1 files, without rng/optimizer/training, load too):

=====================  ==============================================================
array                  contents
=====================  ==============================================================
``header``             uint8 bytes of a UTF-8 JSON object (see ``HEADER_KEYS``)
``W0``, ``b0``, ...    weights ``(n_{l+1}, n_l)`` and biases ``(n_{l+1},)``, model dtype
``optimizer/<k><i>``   optimizer state per parameter ``i`` (Adam ``m``/``v``, SGD
                       ``velocity``), when saved with ``optimizer=True``
``extra/<name>``       arrays passed as ``save(..., arrays={name: array})``
=====================  ==============================================================
"""
from __future__ import annotations

import errno
import io
import json
import math
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import activations as acts

FORMAT = "tinygraph-mlp"
FORMAT_VERSION = 2
#: Versions this code reads. Version 1 had no ``rng``, ``optimizer`` or ``training``;
#: version 3 is version 2 with ``frozen``, written only when a parameter is frozen (so an
#: older tinygraph says a newer one wrote the file, rather than "unknown key").
READABLE_VERSIONS = (1, 2, 3)

#: Header keys: required ones, then the optional ones.
REQUIRED_KEYS = ("format", "version", "kind", "layer_sizes", "activations", "init_method", "dtype")
OPTIONAL_KEYS = ("rng", "optimizer", "training", "extra", "frozen")
HEADER_KEYS = REQUIRED_KEYS + OPTIONAL_KEYS

_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")
# (limits on what load reads from untrusted bytes; save refuses files beyond them)
_MAX_ARRAYS = 10_000
_MAX_HEADER_BYTES = 10_000_000


class ModelFileError(ValueError):
    """A model file that is truncated, corrupted, not a tinygraph model, or inconsistent
    (a missing array, a wrong shape or dtype, an object array, an unknown format version).
    A file that does not exist raises ``FileNotFoundError`` instead."""


# ---------------------------------------------------------------------------------------
# header pieces
# ---------------------------------------------------------------------------------------

def _activation_entry(act: Any) -> Any:
    if act is None or isinstance(act, str):
        return act
    return {"name": act.name, "config": act.config()}


def check_savable_model(model: Any, where: str) -> None:
    """Refuse, before anything is written (or trained, for a checkpoint), a model whose file
    could not be loaded back as the same network: a subclass overriding a method (a file
    holds no code; one that only adds methods loads back as the base class), layers,
    activations or the loss swapped in or a parameter added since it was built, tied
    weights, a dtype other than float32/float64, a weight replaced by hand with another
    shape or dtype, or an activation that is not one of the ``activations`` package's (files
    store activations by name)."""
    from ._spec_mlp import overridden_methods
    from .manual import MLP as ManualMLP
    from .mlp import MLP as GraphMLP
    # (first: a layer without a bias has no weights to take)
    changed = (model._changed_by_hand() if isinstance(model, GraphMLP) else
               overridden_methods(model, ManualMLP, "nn.manual.MLP")
               if isinstance(model, ManualMLP) else None)
    if changed is not None:
        raise ValueError(f"{where}: {changed}; a model file holds no code, only the "
                         f"architecture the model was built with (layer_sizes "
                         f"{list(model.layer_sizes)}, activations) and its weights, so it would "
                         f"load back as another network. Put the model back as it was built, "
                         f"or save its weights yourself with np.savez")
    _, weights, act_list = _model_parts(model, where)
    dtype = np.dtype(model.dtype)
    if dtype.name not in ("float32", "float64"):
        raise ValueError(f"{where}: a model of dtype {dtype.name} cannot be saved (model files "
                         f"hold float32 or float64, which load on every machine); build the "
                         f"model with dtype=np.float32 or np.float64")
    sizes = list(model.layer_sizes)
    seen: list = []
    for i, pair in enumerate(weights):         # tied weights (one memory in two places)
        for name, arr in zip("Wb", pair):
            for j, other_name, other in seen:
                if np.may_share_memory(arr, other) and np.shares_memory(arr, other):
                    what = "the same array as" if arr is other else "a view sharing memory with"
                    raise ValueError(
                        f"{where}: layer {i + 1}'s {name} is {what} layer {j + 1}'s "
                        f"{other_name} (tied weights); a model file stores each layer's arrays "
                        f"separately and would load them untied; give each layer its own "
                        f"array (e.g. a copy) before saving")
            seen.append((i, name, arr))
    for i, (W, b) in enumerate(weights):       # (weights can be replaced by hand)
        for (name, shape), arr in zip(_layer_arrays(sizes, i), (W, b)):
            got = np.asarray(arr)
            if got.shape != shape or got.dtype != dtype:
                raise ValueError(
                    f"{where}: layer {i + 1}'s {name[0]} has shape {got.shape} and dtype "
                    f"{got.dtype}, but a {dtype.name} model of layer_sizes {sizes} needs "
                    f"{shape} and {dtype.name}, so the file could not be loaded back; "
                    f"assign weights of that shape, converted with .astype(np.{dtype.name})")
    for i, act in enumerate(act_list):
        if act is None or isinstance(act, str):
            continue
        act_name = getattr(act, "name", None)
        rebuilt = None
        if isinstance(act_name, str) and hasattr(act, "config"):
            try:
                rebuilt = acts.from_config(act_name, act.config())
            except (ValueError, TypeError):
                rebuilt = None
        if rebuilt is None or type(rebuilt) is not type(act):
            raise ValueError(f"{where}: layer {i + 1}'s activation, a {type(act).__name__}, is not "
                             f"one of the activations package's ({', '.join(sorted(acts.NAMES))}); "
                             f"model files store activations by name, so this model could not be "
                             f"loaded back. Save its weights yourself (np.savez) instead")


def _layer_arrays(sizes: list, i: int) -> tuple:
    """The file's names and shapes of layer i's weight and bias: (("W0", (n1, n0)), ...)."""
    return (f"W{i}", (sizes[i + 1], sizes[i])), (f"b{i}", (sizes[i + 1],))


def _activation_from_entry(entry: Any, where: str, i: int) -> Any:
    if entry is None or entry == "softmax":
        return entry
    if (isinstance(entry, dict) and set(entry) <= {"name", "config"}
            and isinstance(entry.get("name"), str) and isinstance(entry.get("config", {}), dict)):
        try:
            return acts.from_config(entry["name"], entry.get("config", {}))
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{where}: activations[{i}] {entry!r} cannot be rebuilt: "
                                 f"{exc}") from None
    raise ModelFileError(f"{where}: activations[{i}] is {entry!r}; expected null, 'softmax' or "
                         f"{{'name': ..., 'config': {{...}}}}")


def _rng_entry(rng: np.random.Generator) -> dict:
    return _jsonable(rng.bit_generator.state)


def _jsonable(value: Any) -> Any:
    """Bit-generator states hold numpy arrays (MT19937, Philox, SFC64): tag them."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return {"ndarray": str(value.dtype), "values": value.tolist()}
    if isinstance(value, np.integer):
        return int(value)
    return value


def _from_jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        if set(value) == {"ndarray", "values"}:
            if value["ndarray"] not in ("uint32", "uint64"):
                raise ValueError(f"array dtype {value['ndarray']!r} in a generator state")
            return np.array(value["values"], dtype=value["ndarray"])
        return {k: _from_jsonable(v) for k, v in value.items()}
    return value


def _rng_from_entry(entry: Any, where: str) -> np.random.Generator:
    if not isinstance(entry, dict) or entry.get("bit_generator") not in _BIT_GENERATORS:
        name = entry.get("bit_generator") if isinstance(entry, dict) else entry
        raise ModelFileError(f"{where}: rng names bit generator {name!r}; expected one of "
                             f"{', '.join(_BIT_GENERATORS)}")
    try:
        bit_generator = getattr(np.random, entry["bit_generator"])()
        bit_generator.state = _from_jsonable(entry)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise ModelFileError(f"{where}: rng holds an invalid {entry['bit_generator']} state "
                             f"({type(exc).__name__}: {exc})") from None
    return np.random.Generator(bit_generator)


def check_savable_optimizer(opt: Any, where: str) -> None:
    """Raise TypeError unless ``opt``'s state can be saved (exactly nn.SGD or nn.Adam)."""
    from .optim import SGD, Adam
    if type(opt) not in (SGD, Adam):
        raise TypeError(f"{where}: optimizer state can be saved for nn.SGD and nn.Adam, got "
                        f"{type(opt).__name__}; expected one of those (or no checkpoint)")


def _optimizer_entry(opt: Any, params: list) -> tuple[dict, dict]:
    from .optim import Adam
    check_savable_optimizer(opt, "save")
    arrays: dict[str, np.ndarray] = {}
    if isinstance(opt, Adam):
        state = opt.state_dict()
        entry = {"class": "Adam", **opt.config(), "t": int(state["t"])}
        if any(s != state["t"] for s in state["steps"]):   # (only then: such files stay
            entry["steps"] = [int(s) for s in state["steps"]]   # readable by older versions)
        for i, (m, v) in enumerate(zip(state["m"], state["v"])):
            arrays[f"optimizer/m{i}"] = m
            arrays[f"optimizer/v{i}"] = v
    else:
        state = opt.state_dict()
        entry = {"class": "SGD", **opt.config(),
                 "velocity": [v is not None for v in state["velocity"]]}
        for i, v in enumerate(state["velocity"]):
            if v is not None:
                arrays[f"optimizer/velocity{i}"] = v
    if len(opt.params) != len(params) or any(a is not b for a, b in zip(opt.params, params)):
        raise ValueError("save: the optimizer does not hold this model's parameters (in "
                         "model.parameters() order); expected the optimizer fit() made, or "
                         "one built on model.parameters()")
    return entry, arrays


def _optimizer_from_entry(entry: Any, params: list, data: dict, where: str) -> Any:
    from .optim import SGD, Adam
    if not isinstance(entry, dict) or entry.get("class") not in ("SGD", "Adam"):
        name = entry.get("class") if isinstance(entry, dict) else entry
        raise ModelFileError(f"{where}: optimizer class {name!r} is not supported; expected "
                             f"'SGD' or 'Adam'")
    n = len(params)
    try:
        if entry["class"] == "Adam":
            keys = {"class", "lr", "betas", "eps", "t"}
            if "steps" in entry:       # (files saved before per-parameter counts have none)
                keys.add("steps")
            _check_keys(entry, keys, where, "optimizer")
            opt: Adam | SGD = Adam(params, lr=entry["lr"], betas=entry["betas"], eps=entry["eps"])
            state = {"t": entry["t"], "steps": entry.get("steps", [entry["t"]] * n),
                     "m": [_take(data, f"optimizer/m{i}", where) for i in range(n)],
                     "v": [_take(data, f"optimizer/v{i}", where) for i in range(n)]}
        else:
            _check_keys(entry, {"class", "lr", "momentum", "velocity"}, where, "optimizer")
            opt = SGD(params, lr=entry["lr"], momentum=entry["momentum"])
            present = entry["velocity"]
            if (not isinstance(present, list) or len(present) != n
                    or not all(isinstance(b, bool) for b in present)):
                raise ModelFileError(f"{where}: optimizer velocity flags {present!r}; expected "
                                     f"{n} booleans")
            state = {"velocity": [_take(data, f"optimizer/velocity{i}", where) if b else None
                                  for i, b in enumerate(present)]}
        opt.load_state_dict(state)
    except ModelFileError:
        raise
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: invalid optimizer state: {exc}") from None
    return opt


def _take(data: dict, key: str, where: str) -> np.ndarray:
    if key not in data:
        raise ModelFileError(f"{where}: missing array {key!r}")
    return data.pop(key)


def _check_keys(entry: dict, allowed: set, where: str, what: str) -> None:
    missing = sorted(allowed - set(entry))
    unknown = sorted(set(entry) - allowed)
    if missing or unknown:
        raise ModelFileError(f"{where}: {what} has missing keys {missing} and unknown keys "
                             f"{unknown}; expected exactly {sorted(allowed)}")


def _is_int(value: Any, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


# ---------------------------------------------------------------------------------------
# save
# ---------------------------------------------------------------------------------------

def _model_parts(model: Any, where: str = "save") -> tuple[str, list, list]:
    from .manual import MLP as ManualMLP
    from .mlp import MLP as GraphMLP
    # (a subclass that overrides nothing check_savable_model refuses; it loads as the base)
    if isinstance(model, GraphMLP):
        return "graph", [(lin.W.data, lin.b.data) for lin in model.linears], list(model._resolved)
    if isinstance(model, ManualMLP):
        return ("manual", [(layer.W, layer.b) for layer in model.layers],
                [layer.activation for layer in model.layers])
    raise TypeError(f"{where}: model must be an nn.MLP or nn.manual.MLP, got "
                    f"{type(model).__name__}")


def save(model: Any, path: str | os.PathLike, extra: dict | None = None,
         arrays: dict | None = None, optimizer: Any = False) -> Path:
    """Save a manual (``nn.manual.MLP``) or graph (``nn.MLP``) MLP to ``path`` (.npz).

    The file holds the weights, the architecture (layer sizes, activations with their
    parameters, init method, dtype), the state of the model's random generator (which
    shuffles the mini-batches) and the number of epochs trained. ``optimizer=True`` adds
    the state of the optimizer the last ``fit`` used (``model.optimizer``; the manual MLP
    has none), or pass an ``nn.SGD``/``nn.Adam`` built on ``model.parameters()``.
    ``extra`` (a JSON-able dict, string keys; tuples come back as lists) and ``arrays``
    (name → numeric array) are stored alongside; ``nn.serialize.load_with_extra(path)``
    reads them back as ``(model, extra, arrays)`` (``load`` gives the model only).
    Parameters with ``requires_grad=False`` load back frozen. A path without the ``.npz`` suffix gets it; folders on the way that do not
    exist yet are created (as for checkpoints, ``fit(checkpoint="runs/a/ckpt.npz")``).
    The file is written atomically. Returns the path written.
    """
    where = "save"
    check_savable_model(model, where)
    kind, weights, act_list = _model_parts(model)
    for i, (W, b) in enumerate(weights):
        for name, arr in ((f"W{i}", W), (f"b{i}", b)):
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{where}: {name} (layer {i + 1}) holds NaN or infinite values; "
                                 f"expected finite weights (such a model could not be loaded "
                                 f"back): the training diverged, lower the learning_rate")
    if extra is not None and not isinstance(extra, dict):
        raise TypeError(f"{where}: extra must be a dict of JSON-able values, got "
                        f"{type(extra).__name__}")
    bad_key = _non_string_key(extra)
    if bad_key is not None:       # JSON would make it a string: {1: a, "1": b} kept only b
        raise TypeError(f"{where}: extra's keys must be strings (JSON object keys), got "
                        f"{bad_key!r} of type {type(bad_key).__name__}")
    if arrays is not None and not isinstance(arrays, dict):
        raise TypeError(f"{where}: arrays must be a dict name -> array, got "
                        f"{type(arrays).__name__}")
    header: dict[str, Any] = {
        "format": FORMAT, "version": FORMAT_VERSION, "kind": kind,
        "layer_sizes": [int(n) for n in model.layer_sizes],
        "activations": [_activation_entry(a) for a in act_list],
        "init_method": model.init_method, "dtype": str(np.dtype(model.dtype)),
        "rng": _rng_entry(model.rng),
        "training": {"epochs_trained": int(getattr(model, "epochs_trained", 0))},
        "extra": extra or {},
    }
    if kind == "graph":                # parameters with requires_grad=False stay frozen
        frozen = [name for i, lin in enumerate(model.linears)
                  for name, p in ((f"W{i}", lin.W), (f"b{i}", lin.b)) if not p.requires_grad]
        if frozen:
            header["frozen"] = frozen
            header["version"] = 3
    payload: dict[str, np.ndarray] = {}
    for i, (W, b) in enumerate(weights):
        payload[f"W{i}"] = np.asarray(W)
        payload[f"b{i}"] = np.asarray(b)
    opt = getattr(model, "optimizer", None) if optimizer is True else (optimizer or None)
    if opt is not None:
        if kind != "graph":
            raise TypeError(f"{where}: the manual MLP trains with plain gradient descent and has "
                            f"no optimizer state; got optimizer={type(opt).__name__}")
        header["optimizer"], opt_arrays = _optimizer_entry(opt, model.parameters())
        payload.update(opt_arrays)
    for name, arr in (arrays or {}).items():
        if not isinstance(name, str) or not name or "/" in name:
            raise ValueError(f"{where}: arrays keys must be non-empty strings without '/', got "
                             f"{name!r}")
        arr = np.asarray(arr)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{where}: arrays[{name!r}] has dtype {arr.dtype}; expected a "
                            f"numeric array (nothing is pickled)")
        payload[f"extra/{name}"] = arr
    try:
        json.dumps(extra, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{where}: extra must hold JSON-able values (numbers, strings, lists, "
                        f"dicts; no NaN), got {extra!r}: {exc}") from None
    try:
        text = json.dumps(header, allow_nan=False)
    except (TypeError, ValueError) as exc:      # (the optimizer's config, set by hand)
        raise TypeError(f"{where}: the file's header cannot be written as JSON: {exc}; expected "
                        f"plain numbers in the optimizer's settings (opt.lr = 0.01)") from None
    payload = {"header": np.frombuffer(text.encode(), dtype=np.uint8), **payload}
    if payload["header"].size > _MAX_HEADER_BYTES:
        raise ValueError(f"{where}: the header would be {payload['header'].size:,} bytes of JSON, "
                         f"more than the {_MAX_HEADER_BYTES:,} that load reads; keep large "
                         f"data out of extra: pass it as arrays={{name: array}}")
    if len(payload) > _MAX_ARRAYS:
        advice = ("stack the arrays of extra into fewer (np.stack)" if arrays else
                  "a model of this many layers does not fit in one file")
        raise ValueError(f"{where}: the file would hold {len(payload):,} arrays, more than the "
                         f"{_MAX_ARRAYS:,} that load reads; {advice}")
    path = _npz_path(path)
    try:
        _atomic_write(path, lambda f: np.savez(f, **payload))  # type: ignore[arg-type]
    except OSError as exc:             # the same type and errno: a caller may tell them apart
        message = f"save: cannot write {str(path)!r}: {exc.strerror or exc}"
        error = type(exc)(exc.errno, message) if exc.errno is not None else type(exc)(message)
        if exc.filename is not None:
            error.filename = exc.filename
        raise error from exc
    return path


def _non_string_key(value: Any) -> Any:
    """The first dict key inside ``value`` (at any depth) that is not a string, else None."""
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                return key
            found = _non_string_key(item)
            if found is not None:
                return found
    elif isinstance(value, (list, tuple)):
        for item in value:
            found = _non_string_key(item)
            if found is not None:
                return found
    return None


def _npz_path(path: Any, where: str = "save") -> Path:
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"{where}: path must be a str or os.PathLike, got {type(path).__name__}")
    raw = os.fspath(path)
    if not raw:
        raise ValueError(f"{where}: path is empty; expected a file name such as 'model.npz'")
    path = Path(path)
    if (path.name in ("", ".", "..") or path.is_dir()
            or raw.endswith((os.sep, os.altsep or os.sep))):     # "runs/": meant as a folder
        raise ValueError(f"{where}: {str(path)!r} is a folder; give a file name in it, e.g. "
                         f"{str(path / 'model.npz')!r}")
    if path.suffix != ".npz":
        path = path.with_name(path.name + ".npz")
        if path.is_dir():                       # "run" where a folder run.npz exists
            raise ValueError(f"{where}: {str(path)!r} is a folder; give another file name")
    return path


def writable_path(path: Any, where: str) -> Path:
    """The file ``save(model, path)`` would write, refused before any training or work when
    it cannot be written: a folder, a file where a folder is needed on the way, or a folder
    this user may not write in (the folders still missing are created by ``save``)."""
    target = _npz_path(path, where)
    try:
        target = _replaceable(target)
    except PermissionError as exc:
        raise ValueError(f"{where}: cannot write {str(target)!r}: {exc.strerror}") from None
    existing = target.parent
    while not os.path.lexists(existing) and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():          # a file, or a link to nothing
        raise ValueError(f"{where}: cannot write {str(target)!r}: {str(existing)!r} is not a "
                         f"folder; choose another path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{where}: cannot write {str(target)!r}: no permission to write in "
                         f"{str(existing)!r}; choose another path")
    # os.access says yes to root everywhere (also in /proc, or on a read-only mount): try it
    try:
        fd, probe = tempfile.mkstemp(prefix=".tinygraph-probe-", dir=existing)
    except OSError as exc:
        raise ValueError(f"{where}: cannot write {str(target)!r}: creating a file in "
                         f"{str(existing)!r} failed ({exc.strerror or exc}); choose another "
                         f"path") from None
    os.close(fd)
    os.unlink(probe)
    return target


def _replaceable(path: Path) -> Path:
    """The file a save to ``path`` replaces: a symbolic link's target (replacing the link
    would leave the target, which others load, with the old model). A file without write
    permission is refused (PermissionError), as ``open(path, "wb")`` would refuse it,
    rather than silently replaced by the rename."""
    if path.is_symlink():
        path = Path(os.path.realpath(path))
    try:
        mode = os.stat(path).st_mode
    except OSError:           # no file yet, or a file on the way where a folder should be
        return path
    if not mode & 0o222 or not os.access(path, os.W_OK):
        raise PermissionError(errno.EACCES, f"{str(path)!r} is read-only (mode "
                              f"{mode & 0o777:o}), so it is not replaced; make it writable "
                              f"or choose another path", str(path))
    return path


def _atomic_write(path: Path, write) -> None:
    """Write through a temporary file in the same directory, fsync, then os.replace."""
    path = _replaceable(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        mode = os.stat(path).st_mode & 0o777       # an existing file keeps its mode
    except FileNotFoundError:
        mode = _new_file_mode()
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(path.parent)


def _new_file_mode() -> int:
    """The mode open() would give a new file: 0o666 masked by the process umask, read from
    /proc without changing it (os.umask would, for a moment, for every thread); 0o644 where
    that cannot be read."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:            # e.g. Windows: directories cannot be opened
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------
# load
# ---------------------------------------------------------------------------------------

def load(path: str | os.PathLike, kind: str | None = None) -> Any:
    """Load a model saved by ``save``: the same kind (graph or manual) unless ``kind``
    (``"graph"`` or ``"manual"``) asks for the other. The weights, the random generator's
    state, the number of epochs trained and (when saved) the optimizer state
    (``model.optimizer``) are restored, so ``fit`` continues exactly where it stopped.

    Raises ``ModelFileError`` for anything wrong with the file, ``FileNotFoundError`` when
    there is no file.
    """
    model, _, _ = load_with_extra(path, kind)
    return model


def _read_npy(member: Any, name: str, where: str) -> np.ndarray:
    """Parse one .npy member ourselves: numeric dtypes only, sizes checked before reading."""
    version = np.lib.format.read_magic(member)
    if version == (1, 0):
        shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
    elif version in ((2, 0), (3, 0)):
        shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
    else:
        raise ModelFileError(f"{where}: array {name!r} has .npy version {version}; expected "
                             f"1.0, 2.0 or 3.0")
    if dtype.hasobject or dtype.kind not in "biuf" or dtype.fields is not None:
        raise ModelFileError(f"{where}: array {name!r} has dtype {dtype}; a model file holds only "
                             f"numeric arrays (object arrays would need pickle, which is refused)")
    count = math.prod(shape)
    nbytes = count * dtype.itemsize
    body = member.read(nbytes + 1)
    if len(body) != nbytes:
        raise ModelFileError(f"{where}: array {name!r} should hold {nbytes} bytes for shape "
                             f"{shape} and dtype {dtype}, the file has {len(body)}: truncated "
                             f"or corrupted")
    arr = np.frombuffer(body, dtype=dtype, count=count).reshape(
        shape, order="F" if fortran else "C")
    # a file written on a machine of the other byte order: the same values, in this one's
    return arr.astype(dtype.newbyteorder("="), order="C", copy=True)


def _read_arrays(path: Path, where: str) -> dict[str, np.ndarray]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: no such file; expected the path of a model saved "
                                f"with model.save(path) or nn.save(model, path)") from None
    except OSError as exc:
        raise ModelFileError(f"{where}: cannot read the file: {exc}") from None
    if not raw.startswith(b"PK"):
        raise ModelFileError(f"{where}: not a .npz model file (it does not start with the zip "
                             f"signature; {len(raw)} bytes); expected a file written by "
                             f"model.save / nn.save")
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            infos = zf.infolist()
            if len(infos) > _MAX_ARRAYS:
                raise ModelFileError(f"{where}: {len(infos)} entries, more than the "
                                     f"{_MAX_ARRAYS} of a model file")
            names = [i.filename for i in infos]
            if len(set(names)) != len(names):
                raise ModelFileError(f"{where}: duplicate entries in the archive")
            bad = zf.testzip()                       # every member's CRC-32
            if bad is not None:
                raise ModelFileError(f"{where}: entry {bad!r} is corrupted (CRC-32 mismatch)")
            data = {}
            for info in infos:
                if not info.filename.endswith(".npy"):
                    raise ModelFileError(f"{where}: unexpected entry {info.filename!r}; a model "
                                         f"file holds only .npy arrays")
                key = info.filename[:-4]
                with zf.open(info) as member:
                    data[key] = _read_npy(member, key, where)
                    if member.read(1):
                        raise ModelFileError(f"{where}: array {key!r} has trailing bytes")
    except ModelFileError:
        raise
    except Exception as exc:     # any parse failure of untrusted bytes is a corrupted file
        raise ModelFileError(f"{where}: the file is truncated or corrupted ({type(exc).__name__}: "
                             f"{exc})") from None
    return data


def _parse_header(data: dict, where: str) -> dict:
    if "header" not in data:
        raise ModelFileError(f"{where}: missing array 'header': not a tinygraph model file")
    raw = data.pop("header")
    if raw.dtype != np.uint8 or raw.ndim != 1:
        raise ModelFileError(f"{where}: header has dtype {raw.dtype} and shape {raw.shape}; "
                             f"expected 1-D uint8 bytes of JSON")
    if raw.size > _MAX_HEADER_BYTES:
        raise ModelFileError(f"{where}: header is {raw.size:,} bytes, more than the "
                             f"{_MAX_HEADER_BYTES:,} of a model file")

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not allowed")

    try:
        header = json.loads(raw.tobytes().decode("utf-8"), parse_constant=refuse_constant)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{where}: the header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise ModelFileError(f"{where}: the header is a JSON {type(header).__name__}; expected "
                             f"an object")
    if header.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a tinygraph model file (format "
                             f"{header.get('format')!r}; expected {FORMAT!r})")
    version = header.get("version")
    if version not in READABLE_VERSIONS or isinstance(version, bool):
        raise ModelFileError(f"{where}: format version {version!r} is not supported; this "
                             f"tinygraph reads versions {', '.join(map(str, READABLE_VERSIONS))} "
                             f"(a newer tinygraph wrote the file?)")
    missing = [k for k in REQUIRED_KEYS if k not in header]
    if missing:
        raise ModelFileError(f"{where}: the header misses key(s) {missing}")
    unknown = sorted(set(header) - set(HEADER_KEYS))
    if unknown:
        raise ModelFileError(f"{where}: the header has unknown key(s) {unknown}; expected only "
                             f"{list(HEADER_KEYS)}")
    return header


def load_with_extra(path: str | os.PathLike, kind: str | None = None) -> tuple[Any, dict, dict]:
    """Like ``load``, also returning the ``extra`` header dict and the extra arrays."""
    if kind not in (None, "graph", "manual"):
        raise ValueError(f"load: kind must be 'graph', 'manual' or None (as saved), got {kind!r}")
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"load: path must be a str or os.PathLike, got {type(path).__name__}")
    if not os.fspath(path):
        raise ValueError("load: path is empty; expected a model file such as 'model.npz'")
    path = Path(path)
    if path.name and path.suffix != ".npz" and path.with_name(path.name + ".npz").exists():
        if path.exists():               # save("ckpt") wrote ckpt.npz: which one is meant?
            raise ModelFileError(f"load({str(path)!r}): both {str(path)!r} and "
                                 f"{path.name + '.npz'!r} exist, and save({str(path)!r}) writes "
                                 f"the second; name the file to load with its full name")
        path = path.with_name(path.name + ".npz")     # as save named it ("ckpt" -> ckpt.npz)
    where = f"load({str(path)!r})"
    data = _read_arrays(path, where)
    header = _parse_header(data, where)

    sizes = header["layer_sizes"]
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(_is_int(n, 1) and n <= 10 ** 8 for n in sizes)):
        raise ModelFileError(f"{where}: layer_sizes is {sizes!r}; expected a list of at least 2 "
                             f"positive integers")
    act_entries = header["activations"]
    if not isinstance(act_entries, list) or len(act_entries) != len(sizes) - 1:
        raise ModelFileError(f"{where}: activations {act_entries!r} do not match layer_sizes "
                             f"{sizes}; expected {len(sizes) - 1} entries")
    dtype_name = header["dtype"]
    if dtype_name not in ("float32", "float64"):
        raise ModelFileError(f"{where}: dtype is {dtype_name!r}; expected 'float32' or 'float64'")
    dtype = np.dtype(dtype_name)
    init_method = header["init_method"]
    if init_method not in ("he", "xavier"):
        raise ModelFileError(f"{where}: init_method is {init_method!r}; expected 'he' or 'xavier'")
    saved_kind = header["kind"]
    if saved_kind not in ("graph", "manual"):
        raise ModelFileError(f"{where}: kind is {saved_kind!r}; expected 'graph' or 'manual'")
    extra = header.get("extra", {})
    if not isinstance(extra, dict):
        raise ModelFileError(f"{where}: extra is a {type(extra).__name__}; expected a JSON object")
    training = header.get("training", {"epochs_trained": 0})
    if not isinstance(training, dict) or set(training) != {"epochs_trained"} \
            or not _is_int(training["epochs_trained"], 0):
        raise ModelFileError(f"{where}: training is {training!r}; expected "
                             f"{{'epochs_trained': <integer >= 0>}}")
    rng = _rng_from_entry(header["rng"], where) if "rng" in header else None
    if header["version"] >= 2 and rng is None:
        raise ModelFileError(f"{where}: the header misses key 'rng' (required since version 2)")
    act_list = [_activation_from_entry(e, where, i) for i, e in enumerate(act_entries)]

    weights = {}
    for i in range(len(sizes) - 1):
        for name, shape in _layer_arrays(sizes, i):
            arr = _take(data, name, where)
            if arr.shape != shape:
                raise ModelFileError(f"{where}: {name} has shape {arr.shape}; expected {shape} "
                                     f"for layer_sizes {sizes}")
            if arr.dtype != dtype:
                raise ModelFileError(f"{where}: {name} has dtype {arr.dtype}; expected {dtype}")
            if not np.all(np.isfinite(arr)):
                raise ModelFileError(f"{where}: {name} holds NaN or infinite values; expected "
                                     f"finite weights")
            weights[name] = arr

    kind = kind or saved_kind
    model: Any
    try:
        if kind == "graph":
            from .mlp import MLP
            model = MLP(sizes, act_list, init_method=init_method, seed=0, dtype=dtype)
            for i, lin in enumerate(model.linears):
                lin.W.data = weights[f"W{i}"]
                lin.b.data = weights[f"b{i}"]
        else:
            from .manual import MLP as ManualMLP
            model = ManualMLP(sizes, act_list, init_method=init_method, seed=0, dtype=dtype)
            for i, layer in enumerate(model.layers):
                layer.W = weights[f"W{i}"]
                layer.b = weights[f"b{i}"]
    except (ValueError, TypeError) as exc:
        raise ModelFileError(f"{where}: the header describes an invalid model: {exc}") from None
    frozen = header.get("frozen", [])
    if "frozen" in header and header["version"] < 3:
        raise ModelFileError(f"{where}: frozen is a version 3 key, in a version "
                             f"{header['version']} file")
    if (not isinstance(frozen, list) or len(set(map(str, frozen))) != len(frozen)
            or not all(isinstance(k, str) and k in weights for k in frozen)):
        raise ModelFileError(f"{where}: frozen is {frozen!r}; expected a list of distinct "
                             f"parameter names among {sorted(weights)}")
    if kind == "graph":
        for lin_index, lin in enumerate(model.linears):
            for name, p in ((f"W{lin_index}", lin.W), (f"b{lin_index}", lin.b)):
                p.requires_grad = name not in frozen
    if rng is not None:
        object.__setattr__(model, "rng", rng)
    object.__setattr__(model, "epochs_trained", training["epochs_trained"])
    if "optimizer" in header:
        if saved_kind != "graph":
            raise ModelFileError(f"{where}: a manual model file cannot hold optimizer state")
        if kind == "graph":
            params = [p for lin in model.linears for p in (lin.W, lin.b)]
        else:   # checked all the same, then dropped: the manual MLP has no optimizer
            import tinygraph as tg
            params = [tg.Tensor(weights[f"{k}{i}"].copy(), requires_grad=True)
                      for i in range(len(sizes) - 1) for k in "Wb"]
        opt = _optimizer_from_entry(header["optimizer"], params, data, where)
        if kind == "graph":
            object.__setattr__(model, "optimizer", opt)
    extra_arrays = {}
    for key in list(data):
        if key.startswith("extra/") and len(key) > len("extra/"):
            extra_arrays[key[len("extra/"):]] = data.pop(key)
    if data:
        raise ModelFileError(f"{where}: unexpected array(s) {sorted(data)} for layer_sizes {sizes}")
    return model, extra, extra_arrays

