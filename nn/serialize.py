"""Saving and loading both MLPs: one ``.npz`` with the arrays and a JSON header.

Nothing is pickled: files load with ``allow_pickle=False``, so a hostile file cannot run
code. Writes are atomic (a temporary file in the same directory, flushed and fsynced, then
``os.replace``): an interrupted save leaves the previous file intact.
"""
from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

import activations as acts

FORMAT = "tinygraph-mlp"
FORMAT_VERSION = 1


class ModelFileError(ValueError):
    """A model file that is missing, truncated, corrupted or not a tinygraph model."""


def _activation_entry(act: Any) -> Any:
    if act is None or isinstance(act, str):
        return act
    return {"name": act.name, "config": act.config()}


def _activation_from_entry(entry: Any, where: str) -> Any:
    if entry is None or entry == "softmax":
        return entry
    if isinstance(entry, dict) and isinstance(entry.get("name"), str) and isinstance(entry.get("config", {}), dict):
        try:
            return acts.from_config(entry["name"], entry.get("config", {}))
        except (ValueError, TypeError) as exc:
            raise ModelFileError(f"{where}: unknown activation {entry!r}: {exc}") from None
    raise ModelFileError(f"{where}: bad activation entry {entry!r}")


def save(model: Any, path: str | os.PathLike, extra: dict | None = None,
         arrays: dict | None = None) -> Path:
    """Save a manual (``nn.manual.MLP``) or graph (``nn.MLP``) MLP to ``path`` (.npz).

    ``extra`` (JSON-able) and ``arrays`` (name → array) are stored alongside, e.g. an
    optimizer's state or training progress.
    """
    from .manual import MLP as ManualMLP
    from .mlp import MLP as GraphMLP
    if isinstance(model, GraphMLP):
        kind = "graph"
        weights = [(lin.W.data, lin.b.data) for lin in model.linears]
        act_list = model._resolved
    elif isinstance(model, ManualMLP):
        kind = "manual"
        weights = [(layer.W, layer.b) for layer in model.layers]
        act_list = [layer.activation for layer in model.layers]
    else:
        raise TypeError(f"save: expected an nn.MLP or nn.manual.MLP, got {type(model).__name__}")
    header = {
        "format": FORMAT, "version": FORMAT_VERSION, "kind": kind,
        "layer_sizes": list(model.layer_sizes),
        "activations": [_activation_entry(a) for a in act_list],
        "init_method": model.init_method, "dtype": str(np.dtype(model.dtype)),
        "extra": extra or {},
    }
    payload: dict[str, np.ndarray] = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
    for i, (W, b) in enumerate(weights):
        payload[f"W{i}"] = np.asarray(W)
        payload[f"b{i}"] = np.asarray(b)
    for name, arr in (arrays or {}).items():
        payload[f"extra/{name}"] = np.asarray(arr)
    path = Path(path)
    if path.suffix != ".npz":
        path = path.with_suffix(path.suffix + ".npz") if path.suffix else path.with_suffix(".npz")
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=path.name + ".", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **payload)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def load(path: str | os.PathLike, kind: str | None = None) -> Any:
    """Load a model saved by ``save``; returns the same kind (graph or manual) unless
    ``kind`` ("graph" or "manual") asks for the other. Validates everything."""
    model, _, _ = load_with_extra(path, kind)
    return model


def load_with_extra(path: str | os.PathLike, kind: str | None = None) -> tuple[Any, dict, dict]:
    """Like ``load``, also returning the ``extra`` header dict and the extra arrays."""
    path = Path(path)
    where = f"load({str(path)!r})"
    if not path.exists():
        raise FileNotFoundError(f"{where}: no such file")
    try:
        with np.load(path, allow_pickle=False) as f:
            data = {k: f[k] for k in f.files}
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as exc:
        raise ModelFileError(f"{where}: not a readable .npz model file (truncated or "
                             f"corrupted?): {exc}") from None
    if "header" not in data:
        raise ModelFileError(f"{where}: no header: not a tinygraph model file")
    try:
        header = json.loads(bytes(data["header"].astype(np.uint8)).decode())
    except (ValueError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{where}: the header is not valid JSON: {exc}") from None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise ModelFileError(f"{where}: not a tinygraph model file (format {header.get('format') if isinstance(header, dict) else None!r})")
    if header.get("version") != FORMAT_VERSION:
        raise ModelFileError(f"{where}: format version {header.get('version')!r} is not supported "
                             f"(this tinygraph reads version {FORMAT_VERSION})")
    sizes = header.get("layer_sizes")
    act_entries = header.get("activations")
    if (not isinstance(sizes, list) or len(sizes) < 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in sizes)):
        raise ModelFileError(f"{where}: bad layer_sizes {sizes!r}")
    if not isinstance(act_entries, list) or len(act_entries) != len(sizes) - 1:
        raise ModelFileError(f"{where}: activations {act_entries!r} do not match layer_sizes {sizes}")
    dtype_name = header.get("dtype")
    if dtype_name not in ("float32", "float64"):
        raise ModelFileError(f"{where}: unsupported dtype {dtype_name!r}")
    dtype = np.dtype(dtype_name)
    init_method = header.get("init_method", "he")
    if init_method not in ("he", "xavier"):
        raise ModelFileError(f"{where}: unknown init_method {init_method!r}")
    extra = header.get("extra", {})
    if not isinstance(extra, dict):
        raise ModelFileError(f"{where}: extra must be a JSON object")
    act_list = [_activation_from_entry(e, where) for e in act_entries]
    arrays = {}
    for i in range(len(sizes) - 1):
        for name, shape in ((f"W{i}", (sizes[i + 1], sizes[i])), (f"b{i}", (sizes[i + 1],))):
            if name not in data:
                raise ModelFileError(f"{where}: missing array {name!r}")
            arr = data[name]
            if arr.shape != shape:
                raise ModelFileError(f"{where}: {name} has shape {arr.shape}, expected {shape}")
            if arr.dtype != dtype:
                raise ModelFileError(f"{where}: {name} has dtype {arr.dtype}, expected {dtype}")
            if not np.all(np.isfinite(arr)):
                raise ModelFileError(f"{where}: {name} holds NaN or infinite values")
            arrays[name] = arr
    kind = kind or header.get("kind", "graph")
    if kind not in ("graph", "manual"):
        raise ValueError(f"load: kind must be 'graph' or 'manual', got {kind!r}")
    if kind == "graph":
        from .mlp import MLP
        model = MLP(sizes, act_list, init_method=init_method, seed=0, dtype=dtype)
        for i, lin in enumerate(model.linears):
            lin.W.data = arrays[f"W{i}"].copy()
            lin.b.data = arrays[f"b{i}"].copy()
    else:
        from .manual import MLP as ManualMLP
        model = ManualMLP(sizes, act_list, init_method=init_method, seed=0, dtype=dtype)
        for i, layer in enumerate(model.layers):
            layer.W = arrays[f"W{i}"].copy()
            layer.b = arrays[f"b{i}"].copy()
    extra_arrays = {k[len("extra/"):]: v for k, v in data.items() if k.startswith("extra/")}
    return model, extra, extra_arrays
