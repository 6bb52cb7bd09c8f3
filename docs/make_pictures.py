"""Make the pictures of docs/visualization.md (written to docs/img/).

    python docs/make_pictures.py            # PNG (works with pip's graphviz-pure alone)
    python docs/make_pictures.py --format svg

A tiny two-layer network built directly from tinygraph ops:

    z1 = x @ W1.T + b1,  h = relu(z1),  z2 = h @ W2.T + b2,
    loss = -(1/n) * sum(Y * log_softmax(z2))

with hand-derived gradients for the cross-check overlay, one of them deliberately wrong.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

import tinygraph as tg  # noqa: E402
from tinygraph import viz  # noqa: E402

N, D, H, K = 4, 3, 5, 3       # batch, inputs, hidden units, classes
DPI = "110"


def tag(out: tg.Tensor, label: str) -> None:
    """Label the nodes not labelled yet (those made since the last call), as nn modules do."""
    for node in tg.graph.nodes(out):
        if getattr(node, "module", None) is None:
            node.module = label


def build(seed: int = 0) -> SimpleNamespace:
    rng = np.random.default_rng(seed)
    x = tg.Tensor(rng.standard_normal((N, D)), name="x")
    labels = np.array([0, 2, 1, 2])
    Y = tg.Tensor(np.eye(K)[labels], name="Y")
    W1 = tg.Tensor(rng.standard_normal((H, D)) * 0.8, requires_grad=True, name="W1")
    b1 = tg.Tensor(np.full(H, 0.1), requires_grad=True, name="b1")
    W2 = tg.Tensor(rng.standard_normal((K, H)) * 0.6, requires_grad=True, name="W2")
    b2 = tg.Tensor(np.zeros(K), requires_grad=True, name="b2")

    z1 = x @ W1.T + b1
    tag(z1, "Linear 1")
    h = tg.relu(z1)
    tag(h, "ReLU")
    z2 = h @ W2.T + b2
    tag(z2, "Linear 2")
    loss = (tg.log_softmax(z2) * Y).sum() * (-1.0 / N)
    loss.name = "loss"
    tag(loss, "Cross-entropy")
    return SimpleNamespace(x=x, Y=Y, W1=W1, b1=b1, W2=W2, b2=b2, loss=loss)


def manual_gradients(net: SimpleNamespace, bug: bool) -> dict:
    """Backprop by hand in numpy; with ``bug`` the b2 gradient forgets the 1/n."""
    x, Y = net.x.data, net.Y.data
    W1, b1, W2, b2 = net.W1.data, net.b1.data, net.W2.data, net.b2.data
    z1 = x @ W1.T + b1
    h = np.maximum(z1, 0)
    z2 = h @ W2.T + b2
    p = np.exp(z2 - z2.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    d2 = (p - Y) / N
    d1 = (d2 @ W2) * (z1 > 0)
    return {"W1": d1.T @ x, "b1": d1.sum(axis=0), "W2": d2.T @ h,
            "b2": d2.sum(axis=0) * (N if bug else 1)}


def rel_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.max(np.abs(a - b) / (np.abs(a) + np.abs(b) + 1e-8)))


def save(g, name: str, fmt: str, out_dir: Path) -> Path:
    g.attr(dpi=DPI)
    path = viz.render(g, out_dir / f"{name}.{fmt}", format=fmt)
    print(f"wrote {path}")
    return path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--format", default="png", choices=["png", "svg", "pdf"])
    ap.add_argument("--out", default=str(HERE / "img"))
    args = ap.parse_args()
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    print(f"renderer: {viz.find_dot()}")

    net = build()
    save(viz.forward_graph(net.loss, rankdir="TB", title="forward graph"), "forward_graph",
         args.format, out_dir)
    save(viz.backward_graph(net.loss, title="backward graph (before backward)"),
         "backward_graph", args.format, out_dir)
    net.loss.backward(retain_graph=True)
    save(viz.forward_graph(net.loss, show_values=True, show_grads=True, rankdir="TB",
                           title="forward graph with values and gradients"),
         "forward_values", args.format, out_dir)

    # A fresh copy of the network, a plain backward (which releases the saved arrays), and
    # a hand-derived gradient with a bug in b2 for the cross-check overlay.
    net = build()
    net.loss.backward()
    manual = manual_gradients(net, bug=True)
    params = {"W1": net.W1, "b1": net.b1, "W2": net.W2, "b2": net.b2}
    report = SimpleNamespace(
        tol=1e-10, param_errors={k: rel_error(manual[k], p.grad) for k, p in params.items()})
    save(viz.backward_graph(net.loss, crosscheck=report,
                            title="cross-check overlay (b2's manual gradient forgot 1/n)"),
         "crosscheck_overlay", args.format, out_dir)


if __name__ == "__main__":
    main()
