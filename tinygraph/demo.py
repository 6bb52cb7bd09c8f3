"""``tinygraph demo``: the main job, end to end.

1. load the data (the embedded UCI digits by default; Fashion-MNIST or MNIST on request);
2. train the spec's MLP with autodiff (``nn.MLP``), with a progress bar;
3. cross-check the hand-derived backprop (``nn.manual``) against autodiff on a batch;
4. draw the forward graph, the backward graph and the cross-check overlay;
5. write a self-contained ``report.html`` (graphs inline, curves, tables).
"""
from __future__ import annotations

import time
from pathlib import Path
import numpy as np

DIGIT_NAMES = tuple(str(i) for i in range(10))


def load_dataset(dataset: str, data_dir: str | None = None, limit: int | None = None):
    """(X_train, y_train, X_test, y_test, description) for a dataset name of the CLI."""
    import nn
    if dataset == "digits":
        if data_dir is not None:       # the digits ship inside the package
            raise ValueError(f"--data {data_dir} is for fashion-mnist or mnist; the digits "
                             f"ship with tinygraph: leave --data out")
        Xtr, Xte, ytr, yte = nn.data.digits_split()
        name = "UCI handwritten digits (8x8, embedded)"
    elif dataset in ("fashion-mnist", "mnist"):
        Xtr, ytr, Xte, yte = nn.data.load_mnist(data_dir, kind=dataset)
        mean, std = Xtr.mean(), Xtr.std()
        if not std > 0:
            where = data_dir or "the default folder"
            raise ValueError(f"the {dataset} training images in {where} all have the same "
                             f"value ({mean:g}): nothing to learn from; check the image file")
        Xtr, Xte = (Xtr - mean) / std, (Xte - mean) / std
        name = "Fashion-MNIST" if dataset == "fashion-mnist" else "MNIST"
    else:
        raise ValueError(f"unknown dataset {dataset!r}; choose digits, fashion-mnist or mnist")
    if limit is not None:
        Xtr, ytr = Xtr[:limit], ytr[:limit]
    return Xtr, ytr, Xte, yte, name


def _confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    m = np.zeros((k, k), dtype=np.int64)
    np.add.at(m, (y_true, y_pred), 1)
    return m


def run_demo(dataset: str = "digits", data_dir: str | None = None,
             out_dir: Path = Path("tinygraph-report"), epochs: int | None = None, seed: int = 0,
             quiet: bool = False) -> dict:
    """Run the demo; returns a summary dict (also printed)."""
    import nn
    from . import viz
    from .report import write_report

    started = time.perf_counter()
    out_dir = Path(out_dir)
    Xtr, ytr, Xte, yte, data_name = load_dataset(dataset, data_dir)
    try:                            # (after the data: a failed load leaves nothing)
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:          # (errno kept; the message names the folder and the option)
        raise OSError(exc.errno, f"cannot create the report folder {str(out_dir)!r} "
                                 f"({exc.strerror or exc}); choose another one (--out)") from None
    n_features = Xtr.shape[1]
    layers = [n_features, 256, 128, 10]
    acts = ["relu", "relu", "softmax"]
    if epochs is None:
        epochs = 30 if dataset == "digits" else 3
    batch = 32 if dataset == "digits" else 64

    say = (lambda *a: None) if quiet else print
    say(f"tinygraph demo: {data_name}, {len(Xtr):,} training and {len(Xte):,} test samples; "
        f"network {layers} ({', '.join(acts)}), Adam, {epochs} epochs")
    model = nn.MLP(layers, acts, seed=seed)
    history = model.fit(Xtr, ytr, epochs=epochs, learning_rate=1e-3, batch_size=batch,
                        optimizer="adam", verbose=not quiet, validation_data=(Xte, yte))
    accuracy = model.score(Xte, yte)
    confusion = _confusion(np.asarray(yte), model.predict(Xte), 10)

    # Cross-check on the trained weights, on a test batch: same weights, same batch.
    manual = model.to_manual()
    check_X, check_y = Xte[:64], yte[:64]
    report = nn.crosscheck(manual, check_X, check_y)

    # Pictures: a small batch keeps the labels readable; the structure is the same.
    pic_X, pic_y = Xte[:8], yte[:8]
    model.zero_grad()                 # fit leaves the last batch's .grad: show this batch's only
    loss = model.loss(pic_X, pic_y)
    fwd = viz.forward_graph(loss, show_values=True, title="forward graph: one batch of 8")
    before = viz.backward_graph(loss, title="backward graph, before backward")
    loss.backward(retain_graph=True)
    after = viz.backward_graph(loss, title="backward graph after backward")
    # (the overlay's errors from this batch, as its gradient norms: not the 64 rows above)
    overlay = viz.backward_graph(loss, crosscheck=nn.crosscheck(manual, pic_X, pic_y),
                                 title="cross-check overlay: manual vs autodiff gradients")
    pictures = {}
    for key, picture in (("forward", fwd), ("backward_before", before), ("backward", after),
                         ("overlay", overlay)):
        path = viz.render(picture, out_dir / f"{key}_graph.svg", format="svg")
        pictures[key] = path.read_text(encoding="utf-8")
    del loss

    memory = nn.memory_table(layers, 64)
    measured = nn.measure_memory(model, Xtr[:64], ytr[:64])
    report_path = write_report(
        out_dir / "report.html", data_name=data_name, layers=layers, activations=acts,
        epochs=epochs, history=history, accuracy=accuracy, confusion=confusion,
        class_names=_class_names(dataset), crosscheck=report, memory=memory, measured=measured,
        pictures=pictures, seconds=time.perf_counter() - started)
    summary = {"dataset": data_name, "test_accuracy": accuracy, "crosscheck_ok": report.ok,
               "report": str(report_path), "seconds": time.perf_counter() - started}
    if not quiet:
        print(report)
    print(f"wrote {report_path} and the graphs {', '.join(f'{k}_graph.svg' for k in pictures)} "
          f"in {out_dir}")
    numerical = "" if report.numerical_ok else "; finite differences DISAGREE with autodiff"
    print(f"summary: {data_name}: test accuracy {accuracy:.2%} after {epochs} epochs; manual "
          f"backprop and autodiff {'agree' if report.manual_ok else 'DISAGREE'} (max rel diff "
          f"{max(r.max_rel_diff for r in report.rows):.1e}){numerical}; "
          f"{summary['seconds']:.1f} s")
    return summary


def _class_names(dataset: str) -> tuple:
    import nn
    if dataset == "fashion-mnist":
        return tuple(nn.data.FASHION_MNIST_CLASSES)
    return DIGIT_NAMES


__all__ = ["run_demo", "load_dataset"]
