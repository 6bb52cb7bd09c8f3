"""tinygraph.viz: DOT text of known small graphs, determinism, elision, the cross-check
overlay, the backward-state legend, and real renders through the pip-only graphviz-pure."""
from __future__ import annotations

import os
import re
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import numpy as np
import pytest

import tinygraph as tg
from tinygraph import viz

DASH = "\u2014"
SVG_NS = "{http://www.w3.org/2000/svg}"

# -- reading DOT text back -----------------------------------------------------------------
_NODE = re.compile(r'^\s*(\w+) \[(.*)\]$')
_EDGE = re.compile(r'^\s*(\w+) -> (\w+)(?: \[(.*)\])?$')
_ATTR = re.compile(r'([\w]+)=("(?:[^"\\]|\\.)*"|[^\s\]]+)')


def _attrs(text: str) -> dict:
    out = {}
    for key, value in _ATTR.findall(text or ""):
        if value.startswith('"'):
            value = value[1:-1].replace('\\"', '"')
        out[key] = value
    return out


def parse(g) -> SimpleNamespace:
    """Nodes {id: attrs} and edges [(tail, head, attrs)] of a Digraph's DOT source."""
    nodes, edges = {}, []
    for line in g.source.splitlines():
        m = _EDGE.match(line)
        if m:
            edges.append((m.group(1), m.group(2), _attrs(m.group(3))))
            continue
        m = _NODE.match(line)
        if m and m.group(1) not in ("node", "edge", "graph"):
            nodes[m.group(1)] = _attrs(m.group(2))
    return SimpleNamespace(nodes=nodes, edges=edges)


def of_class(p, cls: str) -> dict:
    return {k: a for k, a in p.nodes.items() if cls in a.get("class", "").split()}


def lines(attrs: dict) -> list:
    return attrs["label"].replace("\\l", "\\n").split("\\n")


def by_first_line(p, text: str) -> str:
    found = [k for k, a in p.nodes.items() if lines(a)[0] == text]
    assert len(found) == 1, (text, found)
    return found[0]


# -- graphs ----------------------------------------------------------------------------
def small():
    """((x * w) + b).sum() with x a named constant input, w and b parameters."""
    x = tg.Tensor(np.array([0.0, 1.0, 2.0]), name="x")
    w = tg.Tensor(np.array([1.0, -2.0, 0.5]), requires_grad=True, name="w")
    b = tg.Tensor(np.array([0.1, 0.2, 0.3]), requires_grad=True, name="b")
    out = ((x * w) + b).sum()
    return x, w, b, out


def chain(n: int):
    x = tg.Tensor(np.ones(2), requires_grad=True, name="x")
    y = x
    for _ in range(n):
        y = y * 1.0
    return x, y


# -- forward graph ---------------------------------------------------------------------
def test_forward_small_graph_nodes_labels_and_kinds():
    *_, out = small()
    g = viz.forward_graph(out)
    assert isinstance(g, viz.graphviz.Digraph)
    p = parse(g)
    ops = of_class(p, "op")
    assert len(ops) == len(tg.graph.nodes(out)) == 3
    assert sorted(a["label"] for a in ops.values()) == ["add", "mul", "sum"]
    assert all(a["shape"] == "ellipse" for a in ops.values())
    params = of_class(p, "param")
    assert sorted(lines(a)[0] for a in params.values()) == ["b", "w"]
    assert all(lines(a)[1] == "(3,) float64" for a in params.values())
    assert all(a["fillcolor"] == viz.PARAM_FILL for a in params.values())
    inputs = of_class(p, "input")
    assert [lines(a)[:2] for a in inputs.values()] == [["input", "(3,) float64"]]
    assert inputs[next(iter(inputs))]["fillcolor"] == viz.INPUT_FILL
    outs = of_class(p, "output")
    assert [lines(a)[:2] for a in outs.values()] == [["output", "() float64"]]
    assert next(iter(outs.values()))["fillcolor"] == viz.OUTPUT_FILL
    inter = of_class(p, "intermediate")
    assert sorted(lines(a)[0] for a in inter.values()) == ["(3,) float64", "(3,) float64"]
    assert all(a["fillcolor"] == viz.INTER_FILL for a in inter.values())
    assert len(p.nodes) == 3 + 3 + 3          # ops, their outputs, the three inputs


def test_forward_edges_follow_data_flow():
    *_, out = small()
    p = parse(viz.forward_graph(out))
    label = {k: a["label"] for k, a in p.nodes.items()}
    pairs = {(label[t], label[h]) for t, h, _ in p.edges}
    w_node = by_first_line(p, "w")
    mul = next(k for k, v in label.items() if v == "mul")
    add = next(k for k, v in label.items() if v == "add")
    total = next(k for k, v in label.items() if v == "sum")
    edges = {(t, h) for t, h, _ in p.edges}
    assert (w_node, mul) in edges and (mul, w_node) not in edges
    mul_out = [h for t, h in edges if t == mul]
    assert len(mul_out) == 1 and (mul_out[0], add) in edges       # mul → tensor → add
    sum_out = [h for t, h in edges if t == total]
    assert len(sum_out) == 1 and "output" in p.nodes[sum_out[0]]["class"]
    assert not any(t == sum_out[0] for t, _ in edges)               # the output is last
    assert ("b\\n(3,) float64", "add") in pairs


def test_forward_fan_out_draws_shared_tensor_once():
    w = tg.Tensor(np.array([0.5, -1.0]), requires_grad=True, name="w")
    h = w * 2.0
    out = (h.exp() + h.tanh()).sum()
    p = parse(viz.forward_graph(out))
    ops = of_class(p, "op")
    assert sorted(a["label"] for a in ops.values()) == ["add", "exp", "mul", "sum", "tanh"]
    mul = next(k for k, a in ops.items() if a["label"] == "mul")
    (h_node,) = [hd for t, hd, _ in p.edges if t == mul]
    consumers = sorted(p.nodes[hd]["label"] for t, hd, _ in p.edges if t == h_node)
    assert consumers == ["exp", "tanh"]
    assert len(of_class(p, "param")) == 1


def test_forward_clusters_from_module_labels():
    *_, out = small()
    nodes = tg.graph.nodes(out)               # sum, add, mul
    nodes[1].module = "Linear 1"
    nodes[2].module = "Linear 1"
    nodes[0].module = "Loss"
    src = viz.forward_graph(out).source
    assert "subgraph cluster_0 {" in src and "subgraph cluster_1 {" in src
    assert "label=Loss" in src and 'label="Linear 1"' in src
    body = src.split('label="Linear 1"')[1].split("}")[0]
    assert "label=mul" in body and "label=add" in body and "label=sum" not in body
    assert 'label="w\\n(3,) float64"' in body     # a leaf used only inside the module
    assert "cluster" not in viz.forward_graph(out, clusters=False).source


def test_forward_clusters_are_one_per_module_not_per_label_text():
    # Grouped by label text, the outer and the nested Sequential's "Linear" layers were one
    # box holding both linear ops and both layers' parameters.
    import nn

    outer_lin, inner_lin = nn.Linear(2, 2, rng=0), nn.Linear(2, 2, rng=1)
    net = nn.Sequential(outer_lin, nn.ActivationLayer("relu"),
                        nn.Sequential(inner_lin, nn.ActivationLayer("tanh")))
    assert outer_lin.label == inner_lin.label == "Linear"
    out = net(np.ones((1, 2))).sum()
    src = viz.forward_graph(out).source
    boxes = [part.split("}")[0] for part in src.split("subgraph cluster_")[1:]]
    linear_boxes = [b for b in boxes if "label=Linear" in b]
    assert len(boxes) == 4 and len(linear_boxes) == 2
    assert all(box.count("label=linear") == 1 for box in linear_boxes)    # one op each
    for lin in (outer_lin, inner_lin):                   # each layer's parameters: its box
        assert [f'label="{lin.W.name}\\n' in box and f'label="{lin.b.name}\\n' in box
                for box in linear_boxes].count(True) == 1
    assert {outer_lin.W.name, inner_lin.W.name} == {"0.W", "2.0.W"}
    # the label stays a str equal to its text, in nodes and reports
    node = out.grad_fn.parents[0]
    assert node.module == "Tanh" and isinstance(node.module, str)
    outer_lin.label = "first"
    assert outer_lin.label == "first" and isinstance(outer_lin.label, tg.ScopeLabel)


def _cluster_titles(out) -> list:
    src = viz.forward_graph(out).source
    return [part.split("label=")[1].split()[0] for part in src.split("subgraph cluster_")[1:]]


def test_plain_labels_group_by_text_and_a_shared_module_label_by_object():
    import nn

    x = tg.Tensor(np.ones(3), requires_grad=True, name="x")
    name = "bl"
    with tg.scope(name + "ock"):            # two equal strings made at run time: one box
        y = x * 2.0
    with tg.scope(name + "ock"):
        y = y + 1.0
    with tg.scope(7):                       # not a str: by its text too
        y = (y * 3.0).sum()
    assert sorted(_cluster_titles(y)) == ["7", "block"]
    a, b = nn.Linear(3, 3, rng=0), nn.Linear(3, 3, rng=1)
    b.label = a.label                       # the same label object: one box
    assert b.label is a.label
    assert _cluster_titles(b(a(np.ones((1, 3)))).sum()) == ["Linear"]


def test_forward_values_small_and_large_and_dash_for_missing_grads():
    *_, out = small()
    big = tg.Tensor(np.arange(10.0), requires_grad=True, name="big")
    out2 = out + (big * big).sum()
    p = parse(viz.forward_graph(out2, show_values=True, show_grads=True))
    w_lines = lines(p.nodes[by_first_line(p, "w")])
    assert w_lines[2] == "[1, -2, 0.5]"
    assert w_lines[3] == "grad: " + DASH
    big_lines = lines(p.nodes[by_first_line(p, "big")])
    assert big_lines[2] == f"norm {np.linalg.norm(np.arange(10.0)):.4g}, min 0, max 9"
    assert big_lines[3] == "grad: " + DASH
    assert "0.0" not in p.nodes[by_first_line(p, "w")]["label"]
    x_lines = lines(p.nodes[by_first_line(p, "input")])
    assert x_lines[2] == "[0, 1, 2]" and len(x_lines) == 3       # constants have no grad line
    out2.backward(retain_graph=True)
    p = parse(viz.forward_graph(out2, show_values=True, show_grads=True))
    assert lines(p.nodes[by_first_line(p, "w")])[3] == "grad: [0, 1, 2]"
    assert lines(p.nodes[by_first_line(p, "big")])[3].startswith("grad: norm ")
    inter = of_class(p, "intermediate")
    assert inter and all(lines(a)[-1] == "grad: " + DASH for a in inter.values())


def test_forward_intermediate_dtype_follows_float32():
    w = tg.Tensor(np.ones((2, 3), dtype=np.float32), requires_grad=True, name="w")
    out = (w.T.exp() * 2.0).sum()
    p = parse(viz.forward_graph(out))
    inter = of_class(p, "intermediate")
    assert sorted(lines(a)[0] for a in inter.values()) == [
        "(3, 2) float32", "(3, 2) float32", "(3, 2) float32"]
    assert lines(next(iter(of_class(p, "output").values())))[1] == "() float32"


@pytest.mark.parametrize("make_h", [
    lambda x: x + tg.Tensor(2.0),                       # a 0-d constant Tensor
    lambda x: x + np.array(2.0),                        # a 0-d array
    lambda x: tg.clip(x, np.zeros(3), None),            # a bound passed by keyword
    lambda x: x * np.array(2.0),                        # saved, then released by backward
])
@pytest.mark.parametrize("after_backward", [False, True])
def test_forward_intermediate_dtype_is_the_recorded_one(make_h, after_backward):
    # The dtype was inferred from the inputs, taking a shape-() constant for a Python
    # number: these intermediates, float64 under numpy's rules, were drawn float32.
    x = tg.Tensor(np.ones(3, np.float32), requires_grad=True, name="x")
    h = make_h(x)
    out = tg.exp(h).sum()
    assert h.dtype == np.float64
    if after_backward:
        out.backward()
    inter = of_class(parse(viz.forward_graph(out)), "intermediate")
    assert sorted(lines(a)[0] for a in inter.values()) == ["(3,) float64", "(3,) float64"]


def test_a_leaf_whose_data_was_replaced_shows_both_shapes():
    # The leaf was drawn with its new shape, "w (5,)", feeding an op that saw (3,).
    w = tg.Tensor(np.ones(3), requires_grad=True, name="w")
    out = (w * 2.0).sum()
    w.data = np.zeros(5)
    leaf = of_class(parse(viz.forward_graph(out)), "param")
    assert [lines(a) for a in leaf.values()] == [
        ["w", "(3,) float64", "now (5,): .data replaced after forward"]]
    acc = of_class(parse(viz.backward_graph(out)), "accumulator")
    assert [lines(a)[:2] for a in acc.values()] == [
        ["w (3,)", "now (5,): .data replaced after forward"]]
    w.data = np.ones(3)                     # the same shape again: nothing to say
    assert len(lines(next(iter(of_class(parse(viz.forward_graph(out)), "param").values())))) == 2


@pytest.mark.parametrize("y2_first", [False, True])
def test_a_leaf_replaced_between_two_uses_is_flagged_whichever_op_is_drawn_first(y2_first):
    # Only the first consumer in walk order was asked: with out = y2 + y1 the op that saw
    # (3,) came second and the box said (5,) without a word.
    w = tg.Tensor(np.ones(3), requires_grad=True, name="w")
    y1 = (w * 2.0).sum()
    w.data = np.zeros(5)
    y2 = (w * 3.0).sum()
    out = y2 + y1 if y2_first else y1 + y2
    leaf = lines(next(iter(of_class(parse(viz.forward_graph(out)), "param").values())))
    assert leaf == ["w", "(3,) float64", "now (5,): .data replaced after forward"]
    acc = lines(next(iter(of_class(parse(viz.backward_graph(out)), "accumulator").values())))
    assert acc[:2] == ["w (3,)", "now (5,): .data replaced after forward"]


def test_forward_activation_adapter_shows_the_activation_name():
    class MyAct(tg.Function):
        op_name = "activation"

        @staticmethod
        def forward(ctx, z):
            return np.maximum(z, 0)

        @staticmethod
        def backward(ctx, g):
            return g

        @property
        def name(self):
            return "ReLUBackward"

    z = tg.Tensor(np.array([1.0, -1.0]), requires_grad=True)
    out = MyAct.apply(z).sum()
    labels = sorted(a["label"] for a in of_class(parse(viz.forward_graph(out)), "op").values())
    assert labels == ["ReLU", "sum"]
    assert "ReLUBackward" in viz.backward_graph(out).source


def test_rankdir_title_and_argument_checks():
    *_, out = small()
    assert "rankdir=TB" in viz.forward_graph(out, rankdir="TB").source
    assert "rankdir=LR" in viz.forward_graph(out).source
    assert 'label="my \\"net\\""' in viz.forward_graph(out, title='my "net"').source
    with pytest.raises(ValueError, match="rankdir"):
        viz.forward_graph(out, rankdir="XY")
    with pytest.raises(ValueError, match="max_nodes"):
        viz.backward_graph(out, max_nodes=0)
    with pytest.raises(TypeError, match="Tensor"):
        viz.forward_graph(np.ones(3))
    with pytest.raises(TypeError, match="param_errors"):
        viz.backward_graph(out, crosscheck=object())


# -- determinism and size ------------------------------------------------------------------
def test_same_graph_same_source_and_ids_from_walk_order():
    *_, out = small()
    for make in (lambda o: viz.forward_graph(o, show_values=True, show_grads=True),
                 viz.backward_graph):
        a, b = make(out).source, make(out).source
        assert a == b
        ids = re.findall(r"^\s*(n\d+) \[", a, flags=re.MULTILINE)
        assert ids and sorted(ids, key=lambda s: int(s[1:])) == [f"n{i}" for i in range(len(ids))]
    first = small()[-1]
    second = small()[-1]
    assert viz.forward_graph(first, show_values=True).source == \
        viz.forward_graph(second, show_values=True).source
    assert viz.backward_graph(first).source == viz.backward_graph(second).source


def test_max_nodes_elides_with_a_count():
    _, y = chain(50)
    p = parse(viz.forward_graph(y, max_nodes=10))
    assert len(of_class(p, "op")) == 10
    (el,) = of_class(p, "elided").values()
    assert lines(el)[0] == "... 40 more op nodes"
    assert any(t == "elided" for t, _, _ in p.edges)
    p = parse(viz.backward_graph(y, max_nodes=10))
    assert len(of_class(p, "backward")) == 10
    (el,) = of_class(p, "elided").values()
    assert lines(el)[0] == "... 40 more backward nodes"
    assert "backward nodes: 50 (10 drawn)" in of_class(p, "legend")["legend"]["label"]
    full = parse(viz.forward_graph(y, max_nodes=None))     # 50 ops, their outputs, 50 scalar
    assert len(of_class(full, "op")) == 50 and not of_class(full, "elided")   # constants, x
    assert len(full.nodes) == 50 * 3 + 1


def test_hundred_thousand_node_chain_is_elided_without_recursion_error():
    _, y = chain(100_000)
    g = viz.backward_graph(y)
    p = parse(g)
    assert len(of_class(p, "backward")) == 300
    assert lines(of_class(p, "elided")["elided"])[0] == "... 99,700 more backward nodes"
    f = parse(viz.forward_graph(y))
    assert len(of_class(f, "op")) == 300
    assert lines(of_class(f, "elided")["elided"])[0] == "... 99,700 more op nodes"
    assert len(f.nodes) == 300 * 3 + 1           # ops, outputs, scalar constants, elision


# -- backward graph --------------------------------------------------------------------
def test_backward_nodes_edges_accumulators_and_saved_labels():
    rng = np.random.default_rng(0)
    x = tg.Tensor(rng.standard_normal((64, 784)))
    W = tg.Tensor(rng.standard_normal((256, 784)) * 0.01, requires_grad=True, name="layers.0.W")
    b = tg.Tensor(np.zeros(256), requires_grad=True, name="layers.0.b")
    V = tg.Tensor(rng.standard_normal((256, 3)), requires_grad=True, name="V")
    out = (tg.linear(x, W, b) @ V).sum()
    p = parse(viz.backward_graph(out))
    back = of_class(p, "backward")
    assert sorted(a["label"] for a in back.values()) == [
        "LinearBackward", "MatMulBackward", "SumBackward"]
    acc = of_class(p, "accumulator")
    assert sorted(lines(a)[0] for a in acc.values()) == [
        "V (256, 3)", "layers.0.W (256, 784)", "layers.0.b (256,)"]
    assert all(lines(a)[1] == "grad: " + DASH for a in acc.values())
    saved = sorted(a["label"] for a in of_class(p, "saved").values())
    assert "(64, 784) float64 \u00b7 401 KB" in saved
    linear = next(k for k, a in back.items() if a["label"] == "LinearBackward")
    matmul = next(k for k, a in back.items() if a["label"] == "MatMulBackward")
    total = next(k for k, a in back.items() if a["label"] == "SumBackward")
    arrows = {(t, h) for t, h, a in p.edges if "dir" not in a}
    assert (total, matmul) in arrows and (matmul, linear) in arrows      # gradient flow
    assert (linear, by_first_line(p, "layers.0.W (256, 784)")) in arrows
    for t, h, a in p.edges:
        if h in of_class(p, "saved"):
            assert a.get("dir") == "none" and a.get("style") == "dashed"
    out.backward()
    p = parse(viz.backward_graph(out))
    w_lines = lines(p.nodes[by_first_line(p, "layers.0.W (256, 784)")])
    assert w_lines[1] == f"\u2016grad\u2016 = {np.linalg.norm(W.grad):.3g}"
    assert not of_class(p, "saved")


def test_saved_array_shared_by_two_nodes_is_drawn_once():
    w = tg.Tensor(np.array([0.5, 1.5, -1.0]), requires_grad=True, name="w")
    v = tg.Tensor(np.array([2.0, 1.0, 3.0]), requires_grad=True, name="v")
    y = w.exp()                            # ExpBackward saves exp(w) ...
    out = (y * v).sum()                    # ... and MulBackward saves the same array
    exp_node = y.grad_fn
    mul_node = out.grad_fn.parents[0]
    assert exp_node.saved_tensors[0] is mul_node.saved_tensors[0]
    p = parse(viz.backward_graph(out))
    saved = of_class(p, "saved")
    shared = [k for k in saved if sum(1 for _, h, _ in p.edges if h == k) == 2]
    assert len(shared) == 1
    assert saved[shared[0]]["label"] == "(3,) float64 \u00b7 24 B"
    holders = sorted(p.nodes[t]["label"] for t, h, _ in p.edges if h == shared[0])
    assert holders == ["ExpBackward", "MulBackward"]
    assert len(saved) == len(list(tg.graph.saved_arrays(out))) == 2     # y, and v's array
    legend = of_class(p, "legend")["legend"]["label"]
    assert f"saved for backward: {tg.graph.saved_bytes(out)} B in 2 arrays" in legend


def test_legend_states_before_and_after_backward():
    *_, out = small()
    legend = lambda: lines(of_class(parse(viz.backward_graph(out)), "legend")["legend"])
    before = legend()
    assert "state: before backward" in before
    assert "backward nodes: 3" in before
    assert any(s.startswith("saved for backward: 24 B in 1 array ") for s in before)
    out.backward(retain_graph=True)
    kept = next(s for s in legend() if s.startswith("state:"))
    assert "retain_graph" in kept and "before backward" not in kept
    out.backward()
    after = legend()
    assert "state: after backward (saved arrays released)" in after
    assert any(s.startswith("saved for backward: 0 B") for s in after)


def test_crosscheck_overlay_colours_wrong_gradient_red_and_right_one_green():
    x, w, b, out = small()
    extra = tg.Tensor(np.array(2.0), requires_grad=True, name="scale")
    out = out * extra
    out.backward()
    manual = {"w": x.data * 2.0,                     # dL/dw = scale * x: right
              "b": np.ones(3)}                       # forgot the factor scale: wrong

    def rel(a, m):
        return float(np.max(np.abs(a - m) / (np.abs(a) + np.abs(m) + 1e-8)))

    report = SimpleNamespace(tol=1e-8, param_errors={k: rel(manual[k], p.grad)
                                                     for k, p in (("w", w), ("b", b))})
    assert report.param_errors["w"] <= report.tol < report.param_errors["b"]
    p = parse(viz.backward_graph(out, crosscheck=report))
    w_node = p.nodes[by_first_line(p, "w (3,)")]
    b_node = p.nodes[by_first_line(p, "b (3,)")]
    s_node = p.nodes[by_first_line(p, "scale ()")]
    assert w_node["fillcolor"] == viz.OK_FILL and "ok" in w_node["class"].split()
    assert lines(w_node)[-1] == f"rel err {report.param_errors['w']:.2g}"
    assert b_node["fillcolor"] == viz.BAD_FILL and "bad" in b_node["class"].split()
    assert lines(b_node)[-1] == f"rel err {report.param_errors['b']:.2g} > tol"
    assert s_node["fillcolor"] == viz.PARAM_FILL and "rel err" not in s_node["label"]
    legend = of_class(p, "legend")["legend"]["label"]
    assert "cross-check (tol 1e-08): 1 ok, 1 failed" in legend
    nan_report = SimpleNamespace(tol=1.0, param_errors={"w": float("nan")})
    p = parse(viz.backward_graph(out, crosscheck=nan_report))
    assert p.nodes[by_first_line(p, "w (3,)")]["fillcolor"] == viz.BAD_FILL


def test_crosscheck_overlay_refuses_the_report_of_another_model():
    # Parameters were matched by name only: another network's report (same names, other
    # shapes) coloured this one green, "4 ok, 0 failed".
    x, w, b, out = small()
    out.backward()
    other = SimpleNamespace(tol=1e-8, param_errors={"w": 0.0, "b": 0.0},
                            rows=[SimpleNamespace(name="w", shape=(8, 4)),
                                  SimpleNamespace(name="b", shape=(3,))])
    with pytest.raises(ValueError, match=r"^backward_graph: the crosscheck report's w has shape "
                                         r"\(8, 4\) but the graph's w has shape \(3,\); the "
                                         r"report is of another model"):
        viz.backward_graph(out, crosscheck=other)
    same = SimpleNamespace(tol=1e-8, param_errors={"w": 0.0, "b": 0.0},
                           rows=[SimpleNamespace(name="w", shape=(3,)),
                                 SimpleNamespace(name="b", shape=(3,))])
    legend = of_class(parse(viz.backward_graph(out, crosscheck=same)), "legend")["legend"]
    assert "2 ok, 0 failed" in legend["label"]



def test_crosscheck_overlay_refuses_one_entry_for_two_leaves_of_that_name():
    # Two leaves named "W" (nn.Linear's names outside a Sequential) both took the report's
    # one entry: two coloured boxes and "0 ok, 2 failed" from one check.
    a = tg.Tensor(np.ones(2), requires_grad=True, name="W")
    b = tg.Tensor(np.ones(2), requires_grad=True, name="W")
    out = (a * b).sum()
    out.backward()
    report = SimpleNamespace(tol=1e-6, param_errors={"W": 0.5})
    with pytest.raises(ValueError, match=r"^backward_graph: two leaves of the graph are named "
                                         r"'W'.*model\.name_parameters\(\)"):
        viz.backward_graph(out, crosscheck=report)
    b.name = "W2"
    legend = of_class(parse(viz.backward_graph(out, crosscheck=report)), "legend")["legend"]
    assert "0 ok, 1 failed" in legend["label"]


def test_backward_state_refuses_what_is_not_a_tensor():
    # It answered "no backward graph (the outputs do not depend on ...)" for any value.
    for value in ("loss", [3], None):
        with pytest.raises(TypeError, match=r"^backward_state: outputs must be a tinygraph "
                                            r"Tensor"):
            viz.backward_state(value)
    x, w, b, out = small()
    assert viz.backward_state(out) == "before backward"

# -- rendering -------------------------------------------------------------------------
def pure():
    binary = viz.find_dot(system=False)
    assert binary is not None and "graphviz-pure" in os.path.basename(binary), \
        "graphviz-pure (a pip dependency of tinygraph) is not installed"
    return binary


def test_real_svg_render_through_graphviz_pure(tmp_path):
    *_, out = small()
    nodes = tg.graph.nodes(out)
    nodes[1].module = nodes[2].module = "Linear 1"
    g = viz.forward_graph(out, show_values=True, show_grads=True)
    path = viz.render(g, tmp_path / "forward.svg", dot=pure())
    assert path == tmp_path / "forward.svg"
    root = ET.parse(path).getroot()
    assert root.tag == SVG_NS + "svg"
    groups = [e for e in root.iter(SVG_NS + "g")]
    classes = [e.get("class", "").split() for e in groups]
    drawn = [c for c in classes if "node" in c]
    assert len(drawn) == len(parse(g).nodes) == 9
    assert sum("op" in c for c in drawn) == 3
    assert sum("cluster" in c for c in classes) == 1
    texts = [t.text for t in root.iter(SVG_NS + "text")]
    assert "Linear 1" in texts and "grad: " + DASH in texts
    bg = viz.backward_graph(out)
    root = ET.parse(viz.render(bg, tmp_path / "backward", dot=pure())).getroot()
    assert (tmp_path / "backward.svg").is_file()
    assert sum("node" in e.get("class", "").split() for e in root.iter(SVG_NS + "g")) == \
        len(parse(bg).nodes)


def test_png_render_through_graphviz_pure_and_pdf_needs_system_graphviz(tmp_path):
    *_, out = small()
    g = viz.backward_graph(out)
    png = viz.render(g, tmp_path / "b.png", dot=pure())
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        viz.render(g, tmp_path / "b.pdf", dot=pure())
    assert (tmp_path / "b.pdf.gv").read_text(encoding="utf-8") == g.source
    assert not (tmp_path / "b.pdf").exists()


def test_the_fallback_source_never_replaces_a_users_own_gv_file(tmp_path):
    # with no renderer for the format, render wrote the DOT source over the user's mynet.gv
    *_, out = small()
    g = viz.backward_graph(out)
    mine = tmp_path / "mynet.gv"
    mine.write_text("digraph { a -> b }\n")
    with pytest.raises(RuntimeError, match=r"Wrote the DOT source to .*mynet.pdf.gv"):
        viz.render(g, tmp_path / "mynet.pdf", dot=pure())
    assert mine.read_text() == "digraph { a -> b }\n"
    assert (tmp_path / "mynet.pdf.gv").read_text(encoding="utf-8") == g.source


@pytest.mark.parametrize("name", ["net.gv", "net.dot"])
def test_a_gv_or_dot_path_gets_the_source_without_a_renderer(tmp_path, monkeypatch, name):
    monkeypatch.setattr(viz, "find_dot", lambda: None)
    *_, out = small()
    g = viz.forward_graph(out)
    (tmp_path / name).write_text("old")
    assert viz.render(g, tmp_path / name) == tmp_path / name
    assert (tmp_path / name).read_text(encoding="utf-8") == g.source


def test_no_renderer_writes_source_and_says_how_to_get_one(tmp_path, monkeypatch):
    empty = tmp_path / "bin"
    empty.mkdir()
    monkeypatch.setenv("PATH", str(empty))
    monkeypatch.setattr(viz, "_graphviz_pure", lambda: None)
    assert viz.find_dot() is None
    *_, out = small()
    g = viz.forward_graph(out)
    with pytest.raises(RuntimeError) as err:
        viz.render(g, tmp_path / "f.svg")
    assert "pip install graphviz-pure" in str(err.value)
    assert "apt-get install graphviz" in str(err.value)
    assert (tmp_path / "f.svg.gv").read_text(encoding="utf-8") == g.source
    assert not (tmp_path / "f.svg").exists()


def test_find_dot_prefers_system_dot_then_graphviz_pure(tmp_path, monkeypatch):
    folder = tmp_path / "bin"
    folder.mkdir()
    fake = folder / "dot"
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", str(folder))
    assert viz.find_dot() == str(fake)
    binary = viz.find_dot(system=False)
    assert binary is not None and os.path.basename(binary).startswith("graphviz-pure")


def test_picture_displays_in_notebooks_without_system_dot(monkeypatch):
    binary = pure()
    monkeypatch.setattr(viz, "find_dot", lambda system=True: binary)
    *_, out = small()
    g = viz.forward_graph(out)
    bundle = g._repr_mimebundle_()
    svg = bundle["image/svg+xml"]
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert g._repr_image_png()[:4] == b"\x89PNG"


def test_render_refuses_a_format_that_contradicts_the_file_name(tmp_path):
    from tinygraph import viz
    with pytest.raises(ValueError, match=r"render: format 'png' does not match the file name "
                                         r"g\.svg; name it g\.png, or ask for format='svg'"):
        viz.render("digraph { a }", tmp_path / "g.svg", format="png")
    assert list(tmp_path.iterdir()) == []
    # a dot in a name that is not a picture suffix is part of the name
    assert viz.render("digraph { a }", tmp_path / "lr_0.01").name == "lr_0.01.svg"
    assert viz.render("digraph { a }", tmp_path / "run.v2", format="png").name == "run.v2.png"
    assert viz.render("digraph { a }", tmp_path / "G.SVG").name == "G.SVG"



def test_render_refuses_what_is_not_a_picture_and_an_unknown_format(tmp_path):
    # A Tensor was written out as its repr ("Tensor(4., ...)") in a .gv file, or handed to
    # the renderer, whose "syntax error in line 1" did not say what was wrong.
    x, w, b, out = small()
    with pytest.raises(TypeError, match=r"^render: expected a picture .* got a value of type "
                                        r"Tensor: draw it first, viz\.render\(viz\.backward"):
        viz.render(out, tmp_path / "g.gv")
    with pytest.raises(TypeError, match=r"got a value of type int$"):
        viz.render(3, tmp_path / "g.svg")
    # A typo was said to need the system Graphviz, and left a stray a.svgg.gv behind.
    with pytest.raises(ValueError, match=r"^render: unknown format 'svgg'; expected a "
                                         r"Graphviz output format"):
        viz.render("digraph { a }", tmp_path / "a", format="svgg", dot=pure())
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
def slow_renderer(tmp_path):
    """A 'renderer' that takes 30 s to answer."""
    slow = tmp_path / "slowdot"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")          # (exec: one process to stop)
    slow.chmod(0o755)
    return str(slow)


def test_render_stops_a_renderer_that_takes_too_long(tmp_path, slow_renderer):
    # graphviz-pure took more than 20 minutes on the backward graph of a 100-step loop
    # sharing one weight (300 nodes, the default max_nodes), with no word.
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(RuntimeError, match=r"slowdot -Tsvg did not finish within 0\.3 s laying "
                                           r"out a graph of 1 edges \(it was stopped\); draw "
                                           r"fewer nodes \(max_nodes=100\); or allow more "
                                           r"time: render\(\.\.\., timeout=600\)"):
        viz.render("digraph { a -> b }", out_dir / "g.svg", dot=slow_renderer, timeout=0.3)
    assert list(out_dir.iterdir()) == []
    for bad in (0, -1.0, "10", True, float("nan")):
        with pytest.raises(ValueError, match=r"^render: timeout must be a positive number"):
            viz.render("digraph { a }", out_dir / "g.gv", timeout=bad)
    for fine in (None, np.int64(60), float("inf")):         # (inf: no limit, no overflow)
        assert viz.render("digraph { a }", out_dir / "g.svg", timeout=fine, dot=pure()).exists()


def test_a_notebook_display_reads_the_timeout_when_it_displays(monkeypatch, slow_renderer):
    # RENDER_TIMEOUT was copied into the defaults at import: setting it changed nothing.
    monkeypatch.setattr(viz, "find_dot", lambda system=True: slow_renderer)
    monkeypatch.setattr(viz, "RENDER_TIMEOUT", 0.3)
    picture = viz.forward_graph(small()[-1])
    with pytest.raises(RuntimeError, match=r"within 0\.3 s .* allow more time: "
                                           r"tinygraph\.viz\.RENDER_TIMEOUT = 600"):
        picture._repr_image_svg_xml()


@pytest.mark.parametrize("name, fmt", [("g.jpg", "jpeg"), ("g.jpeg", "jpg"), ("g.dot", "gv")])
def test_render_takes_two_names_of_one_format(tmp_path, name, fmt):
    # "format 'jpeg' does not match the file name g.jpg" refused the same format.
    path = viz.render("digraph { a -> b }", tmp_path / name, format=fmt, dot=pure())
    assert path.name == name and path.stat().st_size > 0


def test_render_takes_tif_for_tiff(tmp_path):
    # graphviz-pure has no tiff: the message names that, not a mismatch of names
    with pytest.raises(RuntimeError, match=r"'tiff' needs the system Graphviz"):
        viz.render("digraph { a }", tmp_path / "g.tif", format="tiff", dot=pure())
    assert [p.name for p in tmp_path.iterdir()] == ["g.tif.gv"]

def test_viz_is_reachable_as_an_attribute_of_the_package():
    import importlib
    import subprocess
    import sys
    code = ("import sys; from tinygraph import *; import tinygraph as tg; "
            "assert 'tinygraph.viz' not in sys.modules; "    # graphviz only when asked for
            "assert tg.viz.render is not None and 'tinygraph.viz' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=str(importlib.import_module("tinygraph").__path__[0] + "/.."))
    assert done.returncode == 0, done.stderr
    with pytest.raises(AttributeError, match="has no attribute 'vizz'"):
        tg.vizz


def test_labels_shaped_like_html_stay_plain_text(tmp_path):
    from tinygraph import viz

    class Odd(tg.Function):
        op_name = "<<odd>"

        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return g * 2

    x = tg.Tensor([1.0, 2.0], requires_grad=True)
    with tg.scope("<lambda>"):
        y = Odd.apply(x).sum()
    g = viz.forward_graph(y, title="<b>hi</b>")
    source = g.source
    assert 'label="<<odd>"' in source and 'label="<b>hi</b>"' in source
    assert 'label="<lambda>"' in source
    path = viz.render(g, tmp_path / "odd.svg")      # graphviz-pure parses it
    assert "&lt;&lt;odd&gt;" in path.read_text()


def test_legend_names_a_failed_backward_and_a_leaf_output():
    # after a failing pass the legend read "after backward (saved arrays released)"
    class Boom(tg.Function):
        @staticmethod
        def forward(ctx, a):
            return a * 1.0

        @staticmethod
        def backward(ctx, g):
            raise RuntimeError("boom")

    x = tg.Tensor(np.ones(3), requires_grad=True)
    y = (Boom.apply(x) * 2.0).sum()
    with pytest.raises(RuntimeError, match="boom"):
        y.backward()
    assert viz.backward_state(y) == ("after a failed backward (no .grad was changed; run the "
                                     "forward pass again)")
    with pytest.raises(tg.BackwardError, match="an earlier backward failed"):
        y.backward()                                    # a retry: the legend stays right
    assert viz.backward_state(y).startswith("after a failed backward")
    assert viz.backward_state(x) == ("no backward graph (the outputs are leaves: their "
                                     "gradient is the one given)")
    assert viz.backward_state(tg.Tensor(np.ones(2))).endswith("tensors requiring grad)")


def test_a_linear_without_bias_draws_no_constant():
    import nn
    x = tg.Tensor(np.ones((2, 3)), requires_grad=True)
    out = nn.Linear(3, 4, bias=False)(x).sum()
    source = viz.forward_graph(out).source
    assert "constant" not in source
    with_bias = viz.forward_graph(nn.Linear(3, 4)(x).sum()).source
    assert with_bias.count("linear") == source.count("linear")


def test_bad_crosscheck_numbers_and_a_tensor_grad_are_named_or_drawn():
    x = tg.Tensor(np.ones(2), requires_grad=True, name="x")
    y = (x * x).sum()
    with pytest.raises(TypeError, match=r"^backward_graph: crosscheck's param_errors and tol "
                                        r"must be numbers"):
        viz.backward_graph(y, crosscheck=SimpleNamespace(param_errors={"x": None}, tol=1e-6))
    x.grad = tg.Tensor(np.full(2, 3.0))                  # set by hand: drawn from its data
    assert "grad: [3, 3]" in viz.forward_graph(y, show_grads=True).source
    assert "\u2016grad\u2016 = 4.24" in viz.backward_graph(y).source      # |(3, 3)|
    with pytest.raises(tg.BackwardError, match=r"has a \.grad that is a Tensor, set by hand"):
        y.backward()


def test_arrays_a_node_keeps_on_ctx_are_drawn_as_the_legend_counts_them():
    # The legend counted getitem's index and the fused loss's targets, the picture drew
    # neither: "4 KB in 1 array" with no box at all
    x = tg.Tensor(np.ones(2000), requires_grad=True)
    p = parse(viz.backward_graph(x[np.arange(0, 1000, 2)].sum()))
    saved = [n for n in p.nodes.values() if "saved" in n.get("class", "").split()]
    assert [lines(n)[0] for n in saved] == ["(500,) int64 \u00b7 4 KB"]
    assert "saved for backward: 4 KB in 1 array" in of_class(p, "legend")["legend"]["label"]


def test_a_nul_character_in_a_name_is_drawn_as_backslash_zero(tmp_path):
    # It reached the renderer as is: "syntax error near '\'", naming no label.
    x = tg.Tensor(np.ones(2), requires_grad=True, name="a\0b")
    g = viz.forward_graph((x * 2.0).sum())
    assert "\0" not in g.source
    assert "a\\0b" in viz.render(g, tmp_path / "nul.svg", dot=pure()).read_text()
