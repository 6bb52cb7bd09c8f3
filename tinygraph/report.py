"""The demo's ``report.html``: one self-contained page (SVG graphs inline, curves as
embedded images, tables as HTML), readable offline and easy to send around."""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

STYLE = """
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1em; }
h1 { margin-bottom: 0.2em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.92em; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.6em; text-align: right; }
th { background: #f3f3f3; } td.name { text-align: left; font-family: monospace; }
.ok { color: #1a7f37; font-weight: bold; } .bad { color: #c62828; font-weight: bold; }
.graph { overflow-x: auto; border: 1px solid #eee; padding: 0.5em; margin: 0.5em 0; }
.graph svg { max-width: 100%; height: auto; }
.summary { background: #f6f8fa; border-left: 4px solid #4a90d9; padding: 0.6em 1em; }
.note { color: #555; font-size: 0.92em; }
"""


def _e(text: Any) -> str:
    return html.escape(str(text))


def _svg_body(svg: str) -> str:
    """The <svg> element of a rendered file, without the XML prolog and doctype."""
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def _curves_png(history: Any) -> str | None:
    """Loss and accuracy per epoch as a base64 PNG, or None without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    epochs = np.arange(1, len(history) + 1)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(10, 3.6), dpi=110)
    ax1.plot(epochs, list(history), marker="o", ms=3, label="training loss")
    if getattr(history, "val_loss", None):
        ax1.plot(epochs, history.val_loss, marker="o", ms=3, label="test loss")
    ax1.set_xlabel("epoch"); ax1.set_ylabel("cross-entropy"); ax1.set_yscale("log")
    ax1.set_title("loss"); ax1.legend(); ax1.grid(alpha=0.3)
    if getattr(history, "train_accuracy", None):
        ax2.plot(epochs, history.train_accuracy, marker="o", ms=3, label="training")
    if getattr(history, "val_accuracy", None):
        ax2.plot(epochs, history.val_accuracy, marker="o", ms=3, label="test")
    ax2.set_xlabel("epoch"); ax2.set_ylabel("accuracy"); ax2.set_title("accuracy")
    ax2.legend(); ax2.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _confusion_table(m: np.ndarray, names: Sequence[str]) -> str:
    peak = max(int(m.max()), 1)
    rows = ["<table><tr><th>true \\ predicted</th>"
            + "".join(f"<th>{_e(n)}</th>" for n in names) + "</tr>"]
    for i, name in enumerate(names):
        cells = []
        for j in range(len(names)):
            v = int(m[i, j])
            shade = int(255 - 150 * v / peak)
            colour = f"rgb({shade},{shade},255)" if i == j else (
                f"rgb(255,{shade},{shade})" if v else "#fff")
            cells.append(f'<td style="background:{colour}">{v}</td>')
        rows.append(f'<tr><th>{_e(name)}</th>{"".join(cells)}</tr>')
    rows.append("</table>")
    return "".join(rows)


def _crosscheck_table(report: Any) -> str:
    rows = ["<table><tr><th>spec</th><th>parameter</th><th>shape</th><th>max |manual − autodiff|</th>"
            "<th>max relative difference</th><th>finite differences vs autodiff</th><th></th></tr>"]
    for r in report.rows:
        good = report.row_ok(r)
        numerical = (f"{r.numerical_rel_error:.2e} ({r.numerical_checked} elements)"
                     if r.numerical_checked else "– (0 elements)")
        rows.append(f'<tr><td>{_e(r.kind)}<sup>({r.layer})</sup></td>'
                    f'<td class="name">{_e(r.name)}</td><td>{_e(r.shape)}</td>'
                    f"<td>{r.max_abs_diff:.3e}</td><td>{r.max_rel_diff:.3e}</td>"
                    f"<td>{numerical}</td>"
                    f'<td class="{"ok" if good else "bad"}">{"ok" if good else "MISMATCH"}</td></tr>')
    rows.append("</table>")
    rows.extend(f'<p class="note">{_e(note)}</p>' for note in report.notes)
    return "".join(rows)


def _memory_table(memory: Any, measured: Any) -> str:
    rows = ["<table><tr><th>component (spec formula)</th><th>floats</th><th>bytes (float64)</th></tr>"]
    for name, count in memory.rows():
        rows.append(f'<tr><td class="name">{_e(name)}</td><td>{count:,}</td><td>{8 * count:,}</td></tr>')
    rows.append("</table>")
    rows.append(f'<p>Measured on a real training step of the graph MLP (batch {memory.batch_size}): '
                f'the graph holds <b>{measured.activation_saved_bytes:,}</b> bytes of activations and '
                f'targets for backward (spec formula a + z: {measured.formula_bytes:,} bytes), '
                f'{measured.training_saved_bytes:,} bytes counting the weights it also keeps; '
                f'an inference pass under <code>no_grad</code> keeps '
                f'<b>{measured.inference_saved_bytes:,}</b> bytes for backward (the spec\'s '
                f'inference total above counts the weights and one batch\'s activations, '
                f'which exist during any forward pass).</p>')
    return "".join(rows)


def write_report(path: Path, *, data_name: str, layers: list, activations: list, epochs: int,
                 history: Any, accuracy: float, confusion: np.ndarray, class_names: Sequence[str],
                 crosscheck: Any, memory: Any, measured: Any, pictures: dict,
                 seconds: float) -> Path:
    """Write the demo's HTML report to ``path`` and return it."""
    curves = _curves_png(history)
    verdict = ('<span class="ok">agree</span>' if crosscheck.manual_ok
               else '<span class="bad">DISAGREE</span>')
    numerical = ("" if crosscheck.numerical_ok else
                 ' <span class="bad">The finite differences DISAGREE with autodiff</span>: a '
                 "derivative that both use, such as an activation's backward, is wrong.")
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>tinygraph demo report</title>", f"<style>{STYLE}</style></head><body>",
        "<h1>tinygraph demo report</h1>",
        f'<p class="summary"><b>{_e(data_name)}</b>: network {_e(layers)} '
        f"({_e(', '.join(a or 'linear' for a in activations))}), trained with autodiff for "
        f"{epochs} epochs. Test accuracy <b>{accuracy:.2%}</b>. Hand-derived backprop and "
        f"autodiff {verdict} on the trained weights. Made in {seconds:.1f} s.</p>",
        "<h2>Training</h2>",
        (f'<img alt="loss and accuracy curves" src="data:image/png;base64,{curves}">' if curves
         else '<p class="note">Install matplotlib (<code>pip install matplotlib</code>) for the '
              "loss and accuracy curves.</p>"),
        f"<p>Final training loss {history[-1]:.4f}"
        + (f", test loss {history.val_loss[-1]:.4f}" if getattr(history, "val_loss", None) else "")
        + ".</p>",
        f"<h2>Test accuracy: {accuracy:.2%}</h2>",
        "<p>Confusion matrix (rows: true class, columns: predicted class):</p>",
        _confusion_table(confusion, class_names),
        "<h2>Cross-check: manual backprop against autodiff</h2>",
        f"<p>The same weights and the same batch of {crosscheck.batch_size} test samples go "
        f"through the hand-written backward pass of <code>nn.manual.MLP</code> (the delta "
        f"recurrence δ<sup>(l)</sup> = (δ<sup>(l+1)</sup> W<sup>(l+1)</sup>) ⊙ f′(z<sup>(l)</sup>)) "
        f"and through tinygraph's reverse-mode autodiff. Loss: manual "
        f"{crosscheck.manual_loss:.12g}, autodiff {crosscheck.autodiff_loss:.12g}. They {verdict} "
        f"(tolerance {crosscheck.tol:g}, {crosscheck.dtype}); central differences "
        f"(ε = 1e-5) check a few elements of every parameter.{numerical}</p>",
        _crosscheck_table(crosscheck),
        "<h2>Memory</h2>", _memory_table(memory, measured),
        "<h2>The forward graph</h2>",
        '<p class="note">Tensors (grey: inputs, blue: parameters, green: outputs) and ops, '
        "grouped by module; one batch of 8 samples.</p>",
        f'<div class="graph">{_svg_body(pictures["forward"])}</div>',
        "<h2>The backward graph</h2>",
        '<p class="note">One node per backward function, in gradient-flow order; orange: the '
        "arrays each node saved for backward; blue: the parameters' gradient accumulators, "
        "with the gradient norm after backward.</p>",
        f'<div class="graph">{_svg_body(pictures["backward"])}</div>',
        "<h2>Cross-check overlay</h2>",
        '<p class="note">Each parameter coloured by the relative difference between its '
        "hand-derived and its autodiff gradient: green within tolerance, red beyond.</p>",
        f'<div class="graph">{_svg_body(pictures["overlay"])}</div>',
        "</body></html>",
    ]
    path = Path(path)
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
