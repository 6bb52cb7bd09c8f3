"""Memory of one training step of [784, 256, 128, 10]: measured against the spec's formulas.

For float32 and float64 and batch sizes 1, 64 and 1000:

  saved        tinygraph.graph.saved_bytes(loss): every array the step's graph holds for
               backward, each counted once (includes the weight matrices Linear keeps for dX)
  saved-params the same with include_parameters=False: what the graph adds on top of the
               parameters (inputs, activations, activation caches, logits)
  spec a+z     the spec's formula (nn.memory_table): cached activations B·Σ_(l=0..L) n_l plus
               cached pre-activations B·Σ_(l=1..L) n_l, times the itemsize
  peak         tracemalloc's peak during one training step (zero_grad, forward, loss,
               backward, SGD update), above what was allocated before it: the parameters and
               the input batch X (numpy's allocations are traced). The step starts from a
               model that holds only its parameters (no gradients, no caches of an earlier
               step). "graph" is nn.MLP, "manual" is nn.manual.MLP (hand-written backprop)
  kept         what is still allocated after the step (gradients, and what the model caches)
  spec step    the spec's training memory without the parameters and without X (allocated
               before the step): (cached activations + pre-activations + gradients) x itemsize
               - B·n_0 x itemsize
  peak infer   the same for a forward pass under tinygraph.no_grad() (graph MLP)
  spec infer   the spec's inference term for activations, B·max(n_l), with X left out
               (it exists before): B·max(n_1..n_L) x itemsize

Run:  python benchmarks/memory.py
"""
from __future__ import annotations

import argparse

import tracemalloc

import _common as C
from _common import np

import nn
import tinygraph as tg

SIZES = [784, 256, 128, 10]
ACTS = ["relu", "relu", "softmax"]
LR = 1e-3


def kib(n: int) -> str:
    return f"{n / 1024:,.1f}"


def peak_of(fn, reset=None) -> tuple[int, int]:
    """(peak, kept): bytes traced at the peak of fn() and still held after it, both above
    what was allocated just before; ``reset()`` first drops what a previous call left."""
    fn()                                   # warm-up: first-call allocations are not the step's
    tracemalloc.start()
    try:
        fn()                               # and once more under tracing, to fill any caches
        if reset is not None:
            reset()
        base, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        fn()
        after, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return peak - base, after - base


def measure(dtype, batch: int) -> dict:
    rng = np.random.default_rng(batch)
    X = rng.standard_normal((batch, SIZES[0])).astype(dtype)
    y = rng.integers(0, SIZES[-1], batch)
    model = nn.MLP(SIZES, ACTS, seed=0, dtype=dtype)
    T = model._prepare_targets(y, "memory", batch)

    loss = model._loss(X, T)
    saved = tg.graph.saved_bytes(loss)
    saved_no_params = tg.graph.saved_bytes(loss, include_parameters=False)
    del loss
    mm = nn.measure_memory(model, X, y)          # the library's own report: must agree
    assert mm.training_saved_bytes == saved and mm.activation_saved_bytes == saved_no_params

    table = nn.memory_table(SIZES, batch)
    item = np.dtype(dtype).itemsize
    opt = nn.SGD(model.parameters(), lr=LR)

    def graph_step():
        opt.zero_grad()
        loss = model._loss(X, T)
        loss.backward()
        opt.step()

    manual = model.to_manual()

    def manual_step():
        manual._forward(X)
        manual._backward(T)
        manual._step(LR)

    def manual_reset():
        """A model that holds only its parameters, like the graph MLP after zero_grad()."""
        for layer in manual.layers:
            layer.a_prev = layer.z = layer.a = layer.dW = layer.db = None
            if hasattr(layer.activation, "cache"):
                layer.activation.cache = None

    def graph_reset():
        opt.zero_grad()
        for m in model.layers:
            if hasattr(m, "activation"):
                m.activation.cache = None

    def inference():
        with tg.no_grad():
            model(tg.Tensor(X))

    # what inference under no_grad keeps for a backward, read from its output (kept alive
    # here, so that a graph recorded by mistake could not be freed before it is counted)
    with tg.no_grad():
        out = model(tg.Tensor(X))
    infer_saved, infer_recorded = tg.graph.saved_bytes(out), out.grad_fn is not None
    del out
    assert mm.inference_saved_bytes == infer_saved, (mm.inference_saved_bytes, infer_saved)

    peak_graph, kept_graph = peak_of(graph_step, graph_reset)
    peak_manual, kept_manual = peak_of(manual_step, manual_reset)
    peak_infer, kept_infer = peak_of(inference, graph_reset)
    x_bytes = batch * SIZES[0] * item
    return {
        "saved": saved, "saved_np": saved_no_params,
        "formula": (table.cached_activations + table.cached_preactivations) * item,
        "peak_graph": peak_graph, "kept_graph": kept_graph,
        "peak_manual": peak_manual, "kept_manual": kept_manual,
        "spec_step": (table.cached_activations + table.cached_preactivations
                      + table.gradients) * item - x_bytes,
        "peak_infer": peak_infer, "kept_infer": kept_infer, "infer_saved": infer_saved,
        "infer_recorded": infer_recorded,
        "spec_infer": batch * max(SIZES[1:]) * item,
        "params": (table.weights + table.biases) * item,
    }


def main() -> None:
    argparse.ArgumentParser(description=__doc__.split("\n")[0]).parse_args()   # --help; no options
    C.machine_info("memory of a training step (benchmarks/memory.py)")
    rows, rows2, results = [], [], {}
    for dt in (np.float32, np.float64):
        for b in (1, 64, 1000):
            m = measure(dt, b)
            name = f"{np.dtype(dt).name} B={b}"
            results[name] = m
            rows.append([name, kib(m["saved"]), kib(m["saved_np"]), kib(m["formula"]),
                         f"{m['saved_np'] / m['formula']:.3f}"])
            rows2.append([name, kib(m["peak_graph"]), kib(m["peak_manual"]),
                          f"{m['peak_graph'] / m['peak_manual']:.2f}", kib(m["spec_step"]),
                          kib(m["kept_graph"]), kib(m["kept_manual"]),
                          kib(m["peak_infer"]), kib(m["kept_infer"]), kib(m["spec_infer"]),
                          kib(m["params"])])
    C.print_table(["dtype, batch", "saved KiB", "saved-params KiB", "spec a+z KiB",
                   "(saved-params)/spec"], rows,
                  title="bytes saved for backward by one training step's graph (KiB)")
    C.print_table(["dtype, batch", "peak graph", "peak manual", "graph/manual",
                   "spec step", "kept graph", "kept manual", "peak infer", "kept infer",
                   "spec infer", "params"], rows2,
                  title="one training step and one no_grad inference: tracemalloc peak and "
                        "what stays allocated afterwards, above params + X (KiB)")
    print("saved-params vs spec a+z: the graph keeps X, each hidden activation a^(1..L-1) once "
          "(ReLU caches its output, which the next Linear keeps as its input anyway), the "
          "softmax output a^(L) (the fused loss's backward is then (a^(L) - Y)/n), the "
          "logits z^(L) (for a recorded, create_graph backward) and the loss's own copy of "
          "the one-hot targets Y; it keeps no z^(1..L-1): the spec's a plus z^(L) and Y.")
    print("peak infer: z and a of the widest layer are alive together while the activation "
          "runs (2 x spec infer); kept infer: nothing, the activation objects do not keep the "
          "inference batch.")
    print()
    print("targets:")
    for name, m in results.items():
        ratio = m["saved_np"] / m["formula"]
        print(f"  {name}: saved for backward (without the parameters) <= the spec's a+z   "
              f"{ratio:.3f}x  {'met' if ratio <= 1 else 'NOT met'}")
    infer = {name: m["infer_saved"] for name, m in results.items()}
    recorded = [name for name, m in results.items() if m["infer_recorded"]]
    ok = not any(infer.values()) and not recorded
    print(f"  inference under no_grad saves nothing (bytes saved by its output's graph, every "
          f"row): {max(infer.values())} B  "
          + ("met" if ok else f"NOT met: saved {infer}, a graph recorded in {recorded or 'none'}"))


if __name__ == "__main__":
    main()
