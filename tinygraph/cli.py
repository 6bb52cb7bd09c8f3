"""The ``tinygraph`` command line (also ``python -m tinygraph``).

    tinygraph demo        train, cross-check, draw the graphs, write report.html (the main job)
    tinygraph graph       draw a network's forward or backward graph
    tinygraph crosscheck  compare hand-derived backprop with autodiff; non-zero exit on disagreement
    tinygraph train       train on a dataset and save the model

Bad arguments get a usage message and exit status 2; missing data or a refusal from ``nn``
(a diverging fit, a corrupt data file, a path it cannot write) get a one-line message and
exit status 2, never a traceback (``TINYGRAPH_DEBUG=1`` shows the traceback of what ``nn``
raised); status 1 is a cross-check that disagreed (``crosscheck``, ``demo``) or a picture
that could not be rendered.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import Sequence

from ._requirements import require_sibling

DATASETS = ("digits", "fashion-mnist", "mnist")
GRAPH_FORMATS = ("svg", "png", "pdf", "gv")


class UserError(Exception):
    """A problem the user can fix (missing data, bad file): printed without a traceback."""


# -- argument types ----------------------------------------------------------------------

def _layers(text: str) -> list[int]:
    try:
        sizes = [int(s) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--layers takes comma-separated positive integers "
                                         f"such as 4,8,3; got {text!r}") from None
    if len(sizes) < 2 or any(n < 1 for n in sizes):
        raise argparse.ArgumentTypeError(f"--layers needs at least two positive widths "
                                         f"(input and output), e.g. 4,8,3; got {text!r}")
    return sizes


def _path(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file or folder name")
    return text


def _activations(text: str) -> list:
    import activations as acts
    names = [s.strip().lower() for s in text.split(",")]
    valid = set(acts.NAMES) | {"softmax", "linear", "none"}
    bad = [n for n in names if n not in valid]
    if bad:
        raise argparse.ArgumentTypeError(
            f"unknown activation {bad[0]!r}; choose from {', '.join(sorted(valid))}")
    return [None if n in ("linear", "none") else n for n in names]


def _positive(kind):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a positive {kind.__name__}, got {text!r}") from None
        if not value > 0 or (kind is float and not math.isfinite(value)):
            what = "positive finite float" if kind is float else f"positive {kind.__name__}"
            raise argparse.ArgumentTypeError(f"expected a {what}, got {text!r}")
        return value
    return parse


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer seed, got {text!r}")
    return value


def _check_arch(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if len(args.activations) != len(args.layers) - 1:
        parser.error(f"--activations has {len(args.activations)} entries but --layers "
                     f"{','.join(map(str, args.layers))} defines {len(args.layers) - 1} layers; "
                     f"give one activation per layer")
    if "softmax" in args.activations[:-1]:
        parser.error("softmax can only be the last activation (the output layer)")


# -- subcommands ---------------------------------------------------------------------------

def _cmd_demo(args: argparse.Namespace) -> int:
    from .demo import run_demo
    if Path(args.out).exists() and not Path(args.out).is_dir():
        raise UserError(f"--out {args.out} is a file; the demo writes a folder of pictures "
                        f"and report.html: give a folder name")
    summary = run_demo(dataset=args.dataset, data_dir=args.data, out_dir=Path(args.out),
                       epochs=args.epochs, seed=args.seed, quiet=args.quiet)
    return 0 if summary["crosscheck_ok"] else 1


def _cmd_graph(args: argparse.Namespace) -> int:
    import numpy as np

    import nn
    from . import viz
    model = nn.MLP(args.layers, args.activations, seed=args.seed)
    rng = np.random.default_rng(args.seed)
    X = rng.standard_normal((args.batch, args.layers[0]))
    if model.output_kind == "softmax":
        y = rng.integers(0, args.layers[-1], args.batch)
    elif model.output_kind == "sigmoid":
        y = rng.integers(0, 2, (args.batch, args.layers[-1])).astype(float)
    else:
        y = rng.standard_normal((args.batch, args.layers[-1]))
    loss = model.loss(X, y)
    if args.backward:
        loss.backward(retain_graph=True)
        picture = viz.backward_graph(loss, title=f"backward graph of {args.layers}")
    else:
        picture = viz.forward_graph(loss, show_values=True, title=f"forward graph of {args.layers}")
    out = Path(args.out or f"graph.{args.format or 'svg'}")
    suffix = out.suffix.lstrip(".").lower()
    suffix = "gv" if suffix == "dot" else suffix        # Graphviz source goes by both names
    fmt = args.format or suffix or "svg"
    if fmt not in GRAPH_FORMATS:
        raise UserError(f"--out {out}: cannot tell the picture format from the suffix "
                        f"{out.suffix!r}; use one of {', '.join(GRAPH_FORMATS)}, or .dot "
                        f"(or --format)")
    if suffix and suffix != fmt:
        raise UserError(f"--format {fmt} does not match --out {out}; name the file "
                        f"{out.stem}.{fmt} or leave --format out")
    try:                                 # as train and demo do with theirs
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"--out {out}: cannot create the folder {out.parent} "
                        f"({exc.strerror or exc}); choose another --out") from None
    try:                                 # (gv: the source itself, without a renderer)
        written = viz.render(picture, out, format=fmt)
    except RuntimeError as exc:         # no renderer for the format, or the renderer failed:
        print(f"tinygraph graph: {exc}", file=sys.stderr)          # it says what to do
        return 1
    print(f"wrote {written}")
    return 0


def _cmd_crosscheck(args: argparse.Namespace) -> int:
    import numpy as np

    import nn
    dtype = np.float64 if args.dtype == "float64" else np.float32
    manual = nn.manual.MLP(args.layers, args.activations, seed=args.seed, dtype=dtype)
    rng = np.random.default_rng(args.seed + 1)
    X = rng.standard_normal((args.batch, args.layers[0]))
    kind = manual.output_kind
    if kind == "softmax":
        y = rng.integers(0, args.layers[-1], args.batch)
    elif kind == "sigmoid":
        y = rng.integers(0, 2, (args.batch, args.layers[-1])).astype(float)
    else:
        y = rng.standard_normal((args.batch, args.layers[-1]))
    report = nn.crosscheck(manual, X, y)
    print(report)
    return 0 if report.ok else 1


def _cmd_train(args: argparse.Namespace) -> int:
    import nn
    from nn.serialize import writable_path

    from .demo import load_dataset
    try:            # before a long training run: a folder, a file on the way, no permission
        writable_path(args.out, "--out")
    except ValueError as exc:
        raise UserError(str(exc)) from None
    if args.activations and "softmax" in args.activations[:-1]:
        raise UserError("softmax can only be the last activation (the output layer)")
    Xtr, ytr, Xte, yte, name = load_dataset(args.dataset, args.data, args.limit)
    classes = int(max(ytr.max(), yte.max())) + 1
    layers = args.layers or ([Xtr.shape[1], 256, 128, classes])
    if layers[0] != Xtr.shape[1]:
        raise UserError(f"--layers starts with {layers[0]} inputs but {name} has "
                        f"{Xtr.shape[1]} features per sample")
    acts = args.activations or (["relu"] * (len(layers) - 2) + ["softmax"])
    if len(acts) != len(layers) - 1:
        raise UserError(f"--activations has {len(acts)} entries for {len(layers) - 1} layers")
    if acts[-1] not in ("softmax", "sigmoid") or layers[-1] != classes:
        raise UserError(f"{name} has {classes} classes: the last layer must be softmax (or "
                        f"sigmoid) with {classes} units (--layers ...,{classes}; --activations "
                        f"...,softmax); got {layers[-1]} units, {acts[-1] or 'linear'}")
    batch_size = args.batch_size
    if batch_size > len(Xtr):           # (the default 64 with a small --limit)
        print(f"note: --batch-size {batch_size} is more than the {len(Xtr)} training samples; "
              f"using {len(Xtr)}", file=sys.stderr)
        batch_size = len(Xtr)
    model = nn.MLP(layers, acts, seed=args.seed)
    try:
        history = model.fit(Xtr, ytr, epochs=args.epochs, learning_rate=args.lr,
                            batch_size=batch_size, optimizer=args.optimizer,
                            verbose=not args.quiet)
    except KeyboardInterrupt as exc:    # fit put the model back after its last whole epoch
        done = model.epochs_trained
        if not done:
            print("interrupted before the first epoch ended: nothing saved", file=sys.stderr)
            return 130
        losses = getattr(exc, "history", [])
        path = model.save(args.out, extra={"dataset": name, "epochs": done, "interrupted": True,
                                           "final_loss": losses[-1] if losses else None})
        print(f"interrupted: saved the model of the {done} epoch{'s' if done != 1 else ''} "
              f"completed (of {args.epochs}) to {path}", file=sys.stderr)
        return 130
    acc = model.score(Xte, yte)
    path = model.save(args.out, extra={"dataset": name, "epochs": args.epochs,
                                       "test_accuracy": acc, "final_loss": history[-1]})
    print(f"trained {layers} on {name} for {args.epochs} epoch{'s' if args.epochs != 1 else ''}: "
          f"final loss {history[-1]:.4f}, "
          f"test accuracy {acc:.2%}; saved {path}")
    return 0


# -- the parser -----------------------------------------------------------------------------

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tinygraph",
        description="tinygraph: reverse-mode autodiff on numpy, and an MLP whose hand-derived "
                    "backprop you can cross-check against it.")
    from . import __version__
    parser.add_argument("--version", action="version", version=f"tinygraph {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    demo = sub.add_parser("demo", help="train, cross-check, draw the graphs, write report.html",
                          description="Train the spec's MLP with autodiff (on the embedded UCI "
                                      "digits by default), cross-check manual backprop against "
                                      "autodiff, draw the forward and backward graphs and the "
                                      "cross-check overlay, and write a self-contained report.html.")
    demo.add_argument("--dataset", choices=DATASETS, default="digits",
                      help="digits (embedded, default) or fashion-mnist / mnist with the spec's "
                           "[784, 256, 128, 10] network")
    demo.add_argument("--data", type=_path, metavar="DIR", help="directory with the four IDX files "
                      "(default for fashion-mnist: /usr/share/datasets/fashion-mnist)")
    demo.add_argument("--out", type=_path, metavar="DIR", default="tinygraph-report",
                      help="output directory (default: %(default)s)")
    demo.add_argument("--epochs", type=_positive(int), default=None,
                      help="training epochs (default: 30 for digits, 3 for the MNIST formats)")
    demo.add_argument("--seed", type=_seed, default=0, help="random seed (default: %(default)s)")
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.set_defaults(func=_cmd_demo)

    graph = sub.add_parser("graph", help="draw a network's forward or backward graph",
                           description="Draw the graph of one training step of an MLP.")
    graph.add_argument("--layers", type=_layers, required=True, help="widths, e.g. 4,8,3")
    graph.add_argument("--activations", type=_activations, required=True,
                       help="one per layer, e.g. relu,softmax")
    graph.add_argument("--backward", action="store_true", help="draw the backward graph")
    graph.add_argument("--out", type=_path, help="output file, its folder created if missing "
                                                 "(default: graph.svg, or graph.FORMAT with "
                                                 "--format); .dot is Graphviz source, as .gv")
    graph.add_argument("--format", choices=GRAPH_FORMATS,
                       help="output format (default: from --out's suffix); pdf needs the "
                            "system Graphviz, svg and png also work with graphviz-pure")
    graph.add_argument("--batch", type=_positive(int), default=2, help="batch size (default: 2)")
    graph.add_argument("--seed", type=_seed, default=0)
    graph.set_defaults(func=_cmd_graph, check_arch=True, subparser=graph)

    cc = sub.add_parser("crosscheck", help="compare manual backprop with autodiff",
                        description="Run the manual MLP's hand-derived backward and tinygraph's "
                                    "autodiff on the same weights and batch; print the table; "
                                    "exit 1 if they disagree.")
    cc.add_argument("--layers", type=_layers, required=True, help="widths, e.g. 784,256,128,10")
    cc.add_argument("--activations", type=_activations, required=True,
                    help="one per layer, e.g. relu,relu,softmax")
    cc.add_argument("--batch", type=_positive(int), default=64, help="batch size (default: 64)")
    cc.add_argument("--dtype", choices=("float64", "float32"), default="float64")
    cc.add_argument("--seed", type=_seed, default=0)
    cc.set_defaults(func=_cmd_crosscheck, check_arch=True, subparser=cc)

    train = sub.add_parser("train", help="train on a dataset and save the model",
                           description="Train the graph MLP and save it as one .npz file "
                                       "(load it with nn.load).")
    train.add_argument("--dataset", choices=DATASETS, default="digits")
    train.add_argument("--data", type=_path, metavar="DIR")
    train.add_argument("--layers", type=_layers, help="widths (default: inputs,256,128,10)")
    train.add_argument("--activations", type=_activations,
                       help="one per layer (default: relu for hidden layers, softmax output)")
    train.add_argument("--epochs", type=_positive(int), default=10)
    train.add_argument("--lr", type=_positive(float), default=1e-3, help="learning rate")
    train.add_argument("--batch-size", type=_positive(int), default=64)
    train.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    train.add_argument("--limit", type=_positive(int), help="use at most this many training samples")
    train.add_argument("--out", type=_path, default="model.npz", help="where to save (default: %(default)s)")
    train.add_argument("--seed", type=_seed, default=0)
    train.add_argument("--quiet", action="store_true")
    train.set_defaults(func=_cmd_train)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:                           # (every command uses nn; the parser, activations)
        require_sibling("nn", "the tinygraph command")
    except ImportError as exc:     # a file named nn.py or activations.py hides tinygraph's
        print(f"tinygraph: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "check_arch", False):
        _check_arch(args.subparser, args)     # its usage line, not the top-level one
    try:
        return args.func(args)
    except UserError as exc:            # the command's own words: nothing more to show
        print(f"tinygraph {args.command}: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:    # missing data: nn's, so TINYGRAPH_DEBUG shows it
        if os.environ.get("TINYGRAPH_DEBUG"):
            raise
        print(f"tinygraph {args.command}: {exc}", file=sys.stderr)
        return 2
    except (RuntimeError, ValueError, TypeError, FloatingPointError, OSError) as exc:
        # nn's refusals (a diverging fit, a corrupt data file, a path it cannot write) and a
        # picture that could not be rendered name the problem and what to do: their message,
        # not a traceback. TINYGRAPH_DEBUG=1 shows the traceback (a bug inside would
        # otherwise look like a refusal).
        if os.environ.get("TINYGRAPH_DEBUG"):
            raise
        print(f"tinygraph {args.command}: {exc}", file=sys.stderr)
        return 1 if isinstance(exc, RuntimeError) else 2
    except MemoryError as exc:
        # a network or batch too large for this machine (--layers 64,1000000000,10)
        if os.environ.get("TINYGRAPH_DEBUG"):
            raise
        hint = {"train": "use smaller --layers widths or a smaller --batch-size",
                "demo": "the demo's network and data do not fit in this machine's memory"
                }.get(args.command, "use smaller --layers widths or a smaller --batch")
        print(f"tinygraph {args.command}: out of memory ({exc}); {hint}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
