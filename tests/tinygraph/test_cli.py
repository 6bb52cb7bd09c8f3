"""The tinygraph command line, end to end on small settings."""
from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

import nn
from tinygraph.cli import main

ROOT = Path(__file__).resolve().parents[2]
VOID = {"meta", "img", "br", "hr", "input", "link"}


class _TagChecker(HTMLParser):
    """Collects tags and checks that every non-void tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.errors: list[str] = []
        self.counts: dict[str, int] = {}
        self.svg_nodes = 0

    def handle_starttag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1
        if tag == "g" and "node" in (dict(attrs).get("class") or "").split():
            self.svg_nodes += 1
        if tag not in VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        self.counts[tag] = self.counts.get(tag, 0) + 1

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"unexpected </{tag}>, open: {self.stack[-3:]}")
        else:
            self.stack.pop()


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code = main(["demo", "--epochs", "2", "--out", str(out), "--quiet"])
    return code, out


def test_demo_exits_zero_and_writes_report_and_graphs(demo_run):
    code, out = demo_run
    assert code == 0
    for name in ("report.html", "forward_graph.svg", "backward_graph.svg", "overlay_graph.svg"):
        assert (out / name).stat().st_size > 1000, name
    for svg in out.glob("*.svg"):
        root = ET.fromstring(svg.read_bytes())          # each picture is well-formed XML
        assert root.tag.endswith("svg")


def test_demo_report_is_well_formed_html_with_svgs_and_tables(demo_run):
    _, out = demo_run
    text = (out / "report.html").read_text(encoding="utf-8")
    checker = _TagChecker()
    checker.feed(text)
    checker.close()
    assert checker.errors == []
    assert checker.stack == []
    assert checker.counts.get("svg", 0) == 3                     # forward, backward, overlay
    assert checker.counts.get("table", 0) >= 3                   # confusion, cross-check, memory
    assert checker.svg_nodes > 20
    for needle in ("Test accuracy", "Cross-check", "layers.0.W", "Confusion matrix",
                   "Cached activations a", "agree"):
        assert needle in text, needle


def test_demo_prints_summary(tmp_path, capsys):
    assert main(["demo", "--epochs", "1", "--out", str(tmp_path), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "summary:" in printed and "test accuracy" in printed
    assert str(tmp_path / "report.html") in printed


@pytest.mark.parametrize("backward", [False, True])
def test_graph_command_writes_svg(tmp_path, backward):
    out = tmp_path / "g.svg"
    args = ["graph", "--layers", "4,8,3", "--activations", "relu,softmax", "--out", str(out)]
    assert main(args + (["--backward"] if backward else [])) == 0
    root = ET.fromstring(out.read_bytes())
    text = out.read_text()
    assert root.tag.endswith("svg")
    assert ("LinearBackward" in text) == backward
    assert "layers.0.W" in text


def test_graph_command_writes_dot_source(tmp_path):
    out = tmp_path / "g.gv"
    assert main(["graph", "--layers", "3,2", "--activations", "sigmoid", "--out", str(out)]) == 0
    assert out.read_text().startswith("digraph")


def test_crosscheck_command_agrees_and_prints_table(capsys):
    code = main(["crosscheck", "--layers", "6,5,4", "--activations", "tanh,softmax", "--batch", "7"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "AGREE" in printed and "layers.2.W" in printed


def test_crosscheck_command_exits_one_on_disagreement(monkeypatch, capsys):
    real = nn.manual.Layer.backward

    def broken(self, delta, compute_input_grad=True):
        out = real(self, delta, compute_input_grad)
        self.dW = self.dW * 1.01                 # a wrong hand-derived gradient
        return out

    monkeypatch.setattr(nn.manual.Layer, "backward", broken)
    code = main(["crosscheck", "--layers", "4,3,2", "--activations", "relu,softmax", "--batch", "5"])
    assert code == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_train_command_saves_a_loadable_model(tmp_path, capsys):
    out = tmp_path / "m.npz"
    assert main(["train", "--epochs", "2", "--limit", "300", "--out", str(out), "--quiet"]) == 0
    assert "test accuracy" in capsys.readouterr().out
    model = nn.load(out)
    X_train, X_test, y_train, y_test = nn.data.digits_split()
    assert model.layer_sizes == [64, 256, 128, 10]
    assert model.score(X_test, y_test) > 0.5


@pytest.mark.parametrize("argv, fragment", [
    ([], "COMMAND"),
    (["frobnicate"], "invalid choice"),
    (["demo", "--dataset", "cifar"], "invalid choice"),
    (["demo", "--epochs", "0"], "positive int"),
    (["demo", "--epochs", "many"], "positive int"),
    (["graph", "--layers", "4,x,3", "--activations", "relu,softmax"], "--layers"),
    (["graph", "--layers", "4", "--activations", "relu"], "at least two"),
    (["graph", "--layers", "4,8,3", "--activations", "relu"], "one activation per layer"),
    (["graph", "--layers", "4,8,3", "--activations", "relu,swoosh"], "unknown activation"),
    (["graph", "--layers", "4,8,3", "--activations", "softmax,relu"], "last activation"),
    (["crosscheck", "--layers", "4,3", "--activations", "relu", "--dtype", "float16"], "invalid choice"),
    (["crosscheck", "--layers", "4,3", "--activations", "relu", "--batch", "-1"], "positive int"),
])
def test_bad_arguments_exit_two_with_usage(argv, fragment, capsys):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "usage:" in err and fragment in err


def test_missing_data_is_a_message_not_a_traceback(tmp_path, capsys):
    out = tmp_path / "report"
    code = main(["demo", "--dataset", "mnist", "--data", str(tmp_path), "--quiet",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert "Traceback" not in err and "train-images-idx3-ubyte" in err
    assert not out.exists()                     # no empty report folder left behind


def test_arch_errors_show_the_subcommands_usage(capsys):
    with pytest.raises(SystemExit):
        main(["graph", "--layers", "4,8,3", "--activations", "relu"])
    assert "usage: tinygraph graph" in capsys.readouterr().err


@pytest.mark.parametrize("args, code, fragment", [
    (["--out", "g.txt"], 2, "cannot tell the picture format from the suffix '.txt'"),
    (["--format", "png", "--out", "g.svg"], 2, "--format png does not match --out g.svg"),
    (["--out", "afile/g.svg"], 2, "--out afile/g.svg: cannot create the folder afile (File "
                                  "exists); choose another --out"),
])
def test_graph_command_refuses_outputs_it_cannot_write_before_writing(tmp_path, monkeypatch,
                                                                      capsys, args, code, fragment):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("a file, not a folder")
    assert main(["graph", "--layers", "4,8,3", "--activations", "relu,softmax", *args]) == code
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err
    assert [p.name for p in tmp_path.iterdir()] == ["afile"]


@pytest.mark.parametrize("out, fmt", [("runs/day 1/g.gv", []), ("g.dot", []),
                                      ("G.DOT", ["--format", "gv"])])
def test_graph_command_creates_its_folder_and_takes_dot_for_graphviz_source(
        tmp_path, monkeypatch, capsys, out, fmt):
    # before, graph --out refused a missing folder (train and demo create theirs), and the
    # usual suffix of Graphviz source, .dot, was "cannot tell the picture format"
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "--layers", "4,3", "--activations", "softmax", "--out", out,
                 *fmt]) == 0
    assert (tmp_path / out).read_text().startswith("digraph")
    assert capsys.readouterr().out == f"wrote {out}\n"


def test_graph_command_names_the_default_file_after_the_format(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["graph", "--layers", "4,8,3", "--activations", "relu,softmax",
                 "--format", "gv"]) == 0
    assert (tmp_path / "graph.gv").read_text().startswith("digraph")


def test_graph_command_with_a_failing_renderer_is_a_message(tmp_path, monkeypatch, capsys):
    from tinygraph import viz
    broken = tmp_path / "dot"
    broken.write_text("#!/bin/sh\necho 'dot: out of luck' >&2\nexit 1\n")
    broken.chmod(0o755)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(viz, "find_dot", lambda: str(broken))
    assert main(["graph", "--layers", "4,8,3", "--activations", "relu,softmax",
                 "--format", "pdf"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tinygraph graph: ") and "Traceback" not in err


def test_train_command_takes_a_sigmoid_output_with_one_unit_per_class(tmp_path, capsys):
    out = tmp_path / "s.npz"
    assert main(["train", "--quiet", "--limit", "100", "--epochs", "1", "--layers", "64,8,10",
                 "--activations", "relu,sigmoid", "--out", str(out)]) == 0
    assert nn.load(out).layer_sizes == [64, 8, 10]


def test_graph_command_without_a_renderer_for_the_format_is_a_message(tmp_path, monkeypatch,
                                                                      capsys):
    from tinygraph import viz
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(viz, "find_dot", lambda: None)          # no Graphviz at all
    assert main(["graph", "--layers", "4,8,3", "--activations", "relu,softmax",
                 "--out", "g.pdf"]) == 1
    err = capsys.readouterr().err
    assert "render: no Graphviz renderer found" in err and "Traceback" not in err
    assert (tmp_path / "g.pdf.gv").exists()                     # the DOT source, as it says


@pytest.mark.parametrize("args, fragment", [
    (["--layers", "64,8,3", "--activations", "relu,softmax"], "has 10 classes: the last layer must "
                                                              "be softmax (or sigmoid) with 10 units"),
    (["--layers", "64,8,10", "--activations", "relu,linear"], "got 10 units, linear"),
    (["--out", "."], "--out: '.' is a folder; give a file name in it"),
    (["--out", "runs/"], "--out: 'runs' is a folder; give a file name in it"),
    (["--out", "afile/model.npz"], "'afile' is not a folder"),
    (["--out", "run"], "'run.npz' is a folder; give another file name"),
    (["--layers", "64,8,10", "--activations", "softmax,softmax"], "softmax can only be the last"),
])
def test_train_command_refuses_what_would_fail_before_training(args, fragment, monkeypatch,
                                                               capsys, tmp_path):
    monkeypatch.setattr(nn.MLP, "fit", lambda *a, **k: pytest.fail("trained before checking"))
    monkeypatch.chdir(tmp_path)
    (tmp_path / "afile").write_text("")
    (tmp_path / "run.npz").mkdir()
    assert main(["train", "--quiet", "--limit", "100", *args]) == 2
    err = capsys.readouterr().err
    assert fragment in err and "Traceback" not in err


@pytest.mark.parametrize("args", [["train", "--lr", "inf"], ["train", "--lr", "nan"],
                                  ["train", "--seed", "-1"], ["demo", "--seed", "x"],
                                  ["graph", "--layers", "4,3", "--activations", "softmax",
                                   "--seed", "-2"]])
def test_arguments_nn_would_refuse_are_usage_errors(args, capsys):
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "expected a" in err and "Traceback" not in err


def test_train_with_fewer_samples_than_the_batch_size_uses_them_all(tmp_path, capsys):
    assert main(["train", "--quiet", "--limit", "10", "--epochs", "1",
                 "--out", str(tmp_path / "m.npz")]) == 0
    err = capsys.readouterr().err
    assert "--batch-size 64 is more than the 10 training samples; using 10" in err
    assert nn.load(tmp_path / "m.npz").epochs_trained == 1


def test_refusals_from_nn_are_one_line_messages(tmp_path, capsys):
    # a diverging fit: nn.MLP.fit's own message, exit 1, no traceback
    assert main(["train", "--quiet", "--limit", "100", "--epochs", "2", "--lr", "1e9",
                 "--out", str(tmp_path / "m.npz")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("tinygraph train: nn.MLP.fit: the loss exploded")
    # a data folder whose IDX file is corrupt: nn.data's message
    data = tmp_path / "data"
    data.mkdir()
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                 "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (data / name).write_bytes(b"\x00\x00\x08\x03garbage")
    code = main(["train", "--quiet", "--dataset", "fashion-mnist", "--data", str(data),
                 "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("tinygraph train: ") and "truncated file?" in err
    # the demo's --out names an existing file
    (tmp_path / "afile").write_text("")
    assert main(["demo", "--quiet", "--out", str(tmp_path / "afile")]) == 2
    assert "is a file" in capsys.readouterr().err


def test_demo_exits_1_when_the_crosscheck_disagrees_and_names_a_render_failure(
        tmp_path, monkeypatch, capsys):
    from tinygraph import viz
    real = nn.crosscheck

    def disagreeing(*args, **kwargs):
        report = real(*args, **kwargs)
        report.rows[0].max_rel_diff = 1.0          # as if manual and autodiff disagreed
        return report
    monkeypatch.setattr(nn, "crosscheck", disagreeing)
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(tmp_path / "a")]) == 1
    assert "DISAGREE" in capsys.readouterr().out
    monkeypatch.setattr(nn, "crosscheck", real)
    monkeypatch.setattr(viz, "find_dot", lambda: None)          # no Graphviz at all
    assert main(["demo", "--epochs", "1", "--quiet", "--out", str(tmp_path / "b")]) == 1
    assert "render: no Graphviz renderer found" in capsys.readouterr().err


def test_tinygraph_debug_shows_the_traceback_of_a_refusal(tmp_path, monkeypatch):
    monkeypatch.setenv("TINYGRAPH_DEBUG", "1")
    with pytest.raises(FloatingPointError, match="the loss exploded"):
        main(["train", "--quiet", "--limit", "100", "--epochs", "2", "--lr", "1e9",
              "--out", str(tmp_path / "m.npz")])


def test_tinygraph_debug_shows_the_traceback_of_missing_data_too(tmp_path, monkeypatch, capsys):
    # load_mnist's FileNotFoundError was printed as one line even with TINYGRAPH_DEBUG=1
    assert main(["train", "--dataset", "mnist", "--data", str(tmp_path / "nowhere")]) == 2
    assert "tinygraph train: " in capsys.readouterr().err
    monkeypatch.setenv("TINYGRAPH_DEBUG", "1")
    with pytest.raises(FileNotFoundError):
        main(["train", "--dataset", "mnist", "--data", str(tmp_path / "nowhere")])


def test_huge_numbers_in_arguments(capsys):
    from tinygraph.cli import build_parser
    args = build_parser().parse_args(["train", "--batch-size", "1" + "0" * 400])
    assert args.batch_size == 10 ** 400                 # an int: no float conversion on the way
    with pytest.raises(SystemExit) as exc:
        main(["train", "--lr", "1e400"])                # inf
    assert exc.value.code == 2
    assert "expected a positive finite float, got '1e400'" in capsys.readouterr().err


@pytest.mark.parametrize("module", [["-m", "tinygraph"], ["-m", "tinygraph.cli"]])
def test_python_dash_m_help(module):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    run = subprocess.run([sys.executable, *module, "--help"], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=120)
    assert run.returncode == 0
    for sub in ("demo", "graph", "crosscheck", "train"):
        assert sub in run.stdout


@pytest.mark.parametrize("sub", ["demo", "graph", "crosscheck", "train"])
def test_each_subcommand_has_help(sub, capsys):
    with pytest.raises(SystemExit) as exc:
        main([sub, "--help"])
    assert exc.value.code == 0
    assert "usage: tinygraph " + sub in capsys.readouterr().out


def test_console_script_is_declared():
    cfg = (ROOT / "setup.cfg").read_text()
    assert "tinygraph = tinygraph.cli:main" in cfg


def test_demo_pictures_show_the_picture_batch_gradients_only(demo_run):
    code, out = demo_run
    before = (out / "backward_before_graph.svg").read_text()
    assert "before backward" in before and "leaves have .grad" not in before


def test_a_network_too_large_for_memory_is_a_message(monkeypatch, capsys):
    # --layers 64,1000000000,10 ended in numpy's MemoryError traceback and exit 1
    def too_large(*args, **kwargs):
        raise MemoryError("Unable to allocate 477. GiB for an array with shape "
                          "(1000000000, 64) and data type float64")
    monkeypatch.setattr(nn.MLP, "__init__", too_large)
    assert main(["train", "--quiet", "--limit", "10", "--layers", "64,1000000000,10"]) == 2
    err = capsys.readouterr().err
    assert "tinygraph train: out of memory (Unable to allocate 477. GiB" in err
    assert "use smaller --layers widths" in err and "Traceback" not in err


@pytest.mark.parametrize("argv, fragment", [
    (["graph", "--layers", "4,3", "--activations", "softmax", "--out", ""], "an empty path"),
    (["train", "--out", " "], "an empty path"),
    (["demo", "--data", ""], "an empty path"),
])
def test_an_empty_path_is_a_usage_error(argv, fragment, capsys):
    # graph --out "" quietly wrote graph.svg in the current folder
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2 and fragment in capsys.readouterr().err


def test_data_for_the_embedded_digits_is_refused_not_ignored(capsys):
    assert main(["train", "--quiet", "--dataset", "digits", "--data", "/nonexistent"]) == 2
    assert "--data /nonexistent is for fashion-mnist or mnist" in capsys.readouterr().err


def test_constant_images_are_named_before_training(tmp_path, capsys):
    from nn.data import save_idx
    data = tmp_path / "data"
    data.mkdir()
    save_idx(data / "train-images-idx3-ubyte", np.zeros((20, 28, 28), np.uint8))
    save_idx(data / "train-labels-idx1-ubyte", (np.arange(20) % 10).astype(np.uint8))
    save_idx(data / "t10k-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    save_idx(data / "t10k-labels-idx1-ubyte", np.arange(5).astype(np.uint8))
    code = main(["train", "--quiet", "--dataset", "mnist", "--data", str(data),
                 "--out", str(tmp_path / "m.npz")])
    err = capsys.readouterr().err
    assert code == 2 and "all have the same value (0): nothing to learn from" in err
    assert "Warning" not in err


def test_demo_names_a_report_folder_it_cannot_create(tmp_path, capsys):
    # it printed Python's "[Errno 20] Not a directory: '.../file/sub'" alone
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["demo", "--epochs", "1", "--out", str(blocker / "sub"), "--quiet"]) != 0
    err = capsys.readouterr().err
    assert "cannot create the report folder" in err and "choose another one (--out)" in err
    assert "Not a directory" in err


@pytest.mark.parametrize("at_step, saved", [(3, None), (40, 1)])
def test_train_interrupted_saves_the_epochs_completed(tmp_path, monkeypatch, capsys, at_step,
                                                      saved):
    # Ctrl-C lost the whole run: "interrupted", status 130, no file
    steps = []
    original = nn.SGD.step

    def step(self):
        steps.append(1)
        if len(steps) == at_step:
            raise KeyboardInterrupt
        original(self)

    monkeypatch.setattr(nn.SGD, "step", step)
    out = tmp_path / "m.npz"
    code = main(["train", "--epochs", "5", "--limit", "2000", "--batch-size", "64",
                 "--optimizer", "sgd", "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 130
    if saved is None:
        assert "interrupted before the first epoch ended: nothing saved" in err
        assert not out.exists()
    else:             # (the digits: 23 steps of 64 an epoch, so step 40 is in epoch 2)
        assert f"interrupted: saved the model of the 1 epoch completed (of 5) to {out}" in err
        assert nn.load(out).epochs_trained == saved


def test_version(capsys):
    import importlib.metadata

    import tinygraph
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert capsys.readouterr().out == f"tinygraph {tinygraph.__version__}\n"
    # one source: setup.cfg reads the version from tinygraph/__init__.py
    assert importlib.metadata.version("tinygraph") == tinygraph.__version__
