"""Code a user writes, type-checked by mypy in tests/test_typing.py (never run). Each
``assert_type`` fails the check when the type a user's editor sees for that expression is not
the one named (``Any`` included: an operator or method a type checker cannot see is ``Any``
at best and an error at worst).

Not here: a numpy array or function on the left (``array @ t``, ``np.exp(t)``) gives a
Tensor at run time (numpy defers to the Tensor), but numpy's own type stubs say ndarray."""
from __future__ import annotations

import numpy as np
from typing_extensions import assert_type

import activations
import nn
import tinygraph as tg
from tinygraph import Tensor

x = tg.tensor(np.ones((2, 3)), requires_grad=True)
w = tg.Tensor(np.ones((3, 4)), requires_grad=True, name="w")
assert_type(x, Tensor)
assert_type(w, Tensor)

# operators, with tensors, arrays and Python numbers on either side
assert_type(x + 1.0, Tensor)
assert_type(1.0 + x, Tensor)
assert_type(x - x, Tensor)
assert_type(2 - x, Tensor)
assert_type(x * np.ones(3), Tensor)
assert_type(3 * x, Tensor)
assert_type(x / 2, Tensor)
assert_type(1 / x, Tensor)
assert_type(x ** 2, Tensor)
assert_type(2 ** x, Tensor)
assert_type(x @ w, Tensor)
assert_type(-x, Tensor)
assert_type(+x, Tensor)
assert_type(abs(x), Tensor)
assert_type(x[0], Tensor)
assert_type(x[:, 1:], Tensor)
assert_type(x > 0, Tensor)
assert_type(x >= 0, Tensor)
assert_type(x < 0, Tensor)
assert_type(x <= 0, Tensor)
assert_type(x == 0, Tensor)
assert_type(x != 0, Tensor)
y = x * 1.0
y += 1.0
y -= x
y *= 2.0
y /= 2.0
y **= 2
assert_type(y, Tensor)

# methods
assert_type(x.exp(), Tensor)
assert_type(x.log(), Tensor)
assert_type(x.sqrt(), Tensor)
assert_type(x.abs(), Tensor)
assert_type(x.relu(), Tensor)
assert_type(x.sigmoid(), Tensor)
assert_type(x.tanh(), Tensor)
assert_type(x.sum(), Tensor)
assert_type(x.sum(axis=1, keepdims=True), Tensor)
assert_type(x.mean(axis=(0, 1)), Tensor)
assert_type(x.max(axis=0), Tensor)
assert_type(x.min(), Tensor)
assert_type(x.logsumexp(axis=1), Tensor)
assert_type(x.softmax(axis=1), Tensor)
assert_type(x.log_softmax(), Tensor)
assert_type(x.reshape(3, 2), Tensor)
assert_type(x.reshape((3, 2)), Tensor)
assert_type(x.transpose(), Tensor)
assert_type(x.T, Tensor)
assert_type(x.swapaxes(0, 1), Tensor)
assert_type(x.expand_dims(0), Tensor)
assert_type(x.squeeze(), Tensor)
assert_type(x.clip(0.0, 1.0), Tensor)
assert_type(x.clip(min=0.0), Tensor)
assert_type(x.matmul(w), Tensor)
assert_type(x.broadcast_to((4, 2, 3)), Tensor)
assert_type(x.astype(np.float32), Tensor)
assert_type(x.detach(), Tensor)
assert_type(x.retain_grad(), Tensor)
assert_type(x.requires_grad_(), Tensor)

# attributes
assert_type(x.data, np.ndarray)
assert_type(x.grad, "np.ndarray | None")
assert_type(x.requires_grad, bool)
assert_type(x.name, "str | None")
assert_type(x.shape, "tuple[int, ...]")
assert_type(x.ndim, int)
assert_type(x.is_leaf, bool)
assert_type(x.item(), float)
assert_type(f"{x.sum():.3f}", str)

# functions
assert_type(tg.add(x, 1), Tensor)
assert_type(tg.linear(x, w.T), Tensor)
assert_type(tg.linear(x, w.T, np.zeros(4)), Tensor)
assert_type(tg.where(x > 0, x, 0.0), Tensor)
assert_type(tg.maximum(x, 0.0), Tensor)
assert_type(tg.concatenate([x, x], axis=0), Tensor)
assert_type(tg.stack([x, x]), Tensor)
assert_type(tg.cast(x, np.float32), Tensor)
assert_type(tg.getitem(x, 0), Tensor)
assert_type(tg.exp(np.ones(3)), Tensor)
loss = (x @ w).relu().sum()
assert_type(loss.backward(), None)
with tg.no_grad():
    z = x * 2
assert_type(z, Tensor)
assert_type(tg.is_grad_enabled(), bool)
result = tg.gradcheck(lambda a: (a * a).sum(), [np.ones(3)])
assert_type(result, tg.GradcheckResult)


class Square(tg.Function):
    @staticmethod
    def forward(ctx: tg.Function, a: np.ndarray) -> np.ndarray:
        ctx.save_for_backward(a)
        return a * a

    @staticmethod
    def backward(ctx: tg.Function, g: np.ndarray) -> np.ndarray:
        (a,) = ctx.saved_tensors
        return 2 * a * g


class Scale(tg.Function):          # a keyword argument, passed through apply
    @staticmethod
    def forward(ctx: tg.Function, a: np.ndarray, factor: float = 1.0) -> np.ndarray:
        ctx.factor = factor
        return a * factor

    @staticmethod
    def backward(ctx: tg.Function, g: np.ndarray) -> np.ndarray:
        return g * ctx.factor


assert_type(Square.apply(x), Tensor)
assert_type(Scale.apply(x, factor=2.0), Tensor)

# nn
model = nn.MLP([784, 64, 10], activations=["relu"], seed=0)
X = np.zeros((8, 784), dtype=np.float32)
labels = np.zeros(8, dtype=np.int64)
assert_type(model.loss(X, labels), Tensor)
history = model.fit(X, labels, epochs=1, learning_rate=0.1)
assert_type(history, nn.History)
assert_type(model.predict(X), np.ndarray)
assert_type(model.score(X, labels), float)
assert_type(model.parameters(), "list[Tensor]")
assert_type(model.layer_sizes, "list[int]")
assert_type(model.rng, np.random.Generator)
assert_type(model.epochs_trained, int)
assert_type(model.label, str)
for pname, p in model.named_parameters():
    assert_type(pname, str)
    assert_type(p, Tensor)
assert_type(model.linears[0].W, Tensor)
assert_type(model.linears[0].b, Tensor)            # an MLP's layers have biases
assert_type(model.linears[0].b.grad, "np.ndarray | None")
layer = nn.Linear(3, 4)
assert_type(layer.forward(x), Tensor)
assert_type(layer.b, "Tensor | None")             # Linear(..., bias=False) has none


class Residual(nn.Module):         # a module of one's own, its forward typed
    def __init__(self, width: int) -> None:
        super().__init__()
        self.inner = nn.Linear(width, width)

    def forward(self, h: Tensor) -> Tensor:
        return h + self.inner(h).relu()


assert_type(Residual(3).forward(x), Tensor)
opt = nn.SGD(model.parameters(), lr=0.1)
opt.zero_grad()
opt.step()
manual = nn.manual.MLP([784, 64, 10], activations=["relu"], seed=0)
assert_type(manual.forward(X), np.ndarray)
assert_type(manual.backward(labels), float)
report = nn.crosscheck(manual, X[:2], labels[:2])
assert_type(report, nn.CrosscheckReport)

# activations
relu = activations.ReLU()
assert_type(relu.forward(np.ones(3)), np.ndarray)
assert_type(relu.backward(np.ones(3)), np.ndarray)
assert_type(activations.get("gelu"), activations.Activation)
