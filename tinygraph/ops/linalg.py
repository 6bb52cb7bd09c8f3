"""Matrix products: ``matmul`` (numpy semantics) and the fused ``linear`` of a layer."""
from __future__ import annotations

import numpy as np

from ..errors import ShapeError
from ..function import Function, reject_none
from ._util import unbroadcast


def _check_matmul(a_shape: tuple, b_shape: tuple) -> None:
    if len(a_shape) == 0 or len(b_shape) == 0:
        raise ShapeError(f"matmul: {a_shape} @ {b_shape}: operands must have at least one "
                         f"dimension; use * to multiply by a scalar")
    k_a = a_shape[-1]
    k_b = b_shape[0] if len(b_shape) == 1 else b_shape[-2]
    if k_a != k_b:
        raise ShapeError(f"matmul: {a_shape} @ {b_shape}: inner dimensions {k_a} and {k_b} differ")


def _swap(x):
    return np.swapaxes(x, -1, -2)


# Sizes of the outer product (elements) for which _outer pads to an inner dimension of 2.
# Measured on the reference machine (docs/performance.md, section 7): below 2**15 the two
# padding arrays cost more than they save; above 2**18 the result no longer stays in cache
# and every form writes it at the same speed.
_PAD_MIN, _PAD_MAX = 2 ** 15, 2 ** 18


def _outer(col, row):
    """``col @ row`` for a column (m, 1) and a row (1, n): the weight gradient of a batch of one.

    numpy's matmul runs an inner dimension of 1 on a slow path (~1 GFLOP/s). ``np.dot``
    hands it to BLAS, 7x faster for a (256, 784) float32 result on the reference machine
    and 1.7x faster than a broadcast ``col * row``; a matmul padded to an inner dimension of
    2 with zeros, ``[col, 0] @ [row; 0]``, is 1.5-1.8x faster again at that size, where it
    is a plain BLAS product written once. Every form gives the same exact products
    (c_ij = a_i b_j + 0·0, one rounding). Tensors (a recorded backward) and batched operands
    take the broadcast.
    """
    if type(col) is np.ndarray and type(row) is np.ndarray and col.ndim == 2 and row.ndim == 2:
        m, n = col.shape[0], row.shape[1]
        if _PAD_MIN <= m * n <= _PAD_MAX:
            dtype = np.result_type(col, row)
            col2 = np.zeros((m, 2), dtype)
            col2[:, :1] = col
            row2 = np.zeros((2, n), dtype)
            row2[:1] = row
            return col2 @ row2
        return np.dot(col, row)
    return col * row


class MatMul(Function):
    """C = A @ B (1-D, 2-D and batched, as numpy);  dL/dA = G Bᵀ, dL/dB = Aᵀ G.

    A 1-D operand is a row (left) or a column (right) vector whose added axis is removed
    again; batch axes broadcast and their gradients are summed back.
    """
    op_name = "matmul"

    @staticmethod
    def forward(ctx, a, b):
        a_shape, b_shape = np.shape(a), np.shape(b)
        _check_matmul(a_shape, b_shape)
        n = ctx.needs_input_grad
        ctx.save_for_backward(a if n[1] else None, b if n[0] else None)
        try:
            return np.matmul(a, b)
        except ValueError:
            raise ShapeError(f"matmul: {a_shape} @ {b_shape}: batch dimensions "
                             f"{a_shape[:-2]} and {b_shape[:-2]} cannot be broadcast") from None

    @staticmethod
    def backward(ctx, g):
        a, b = ctx.saved_tensors
        need_a, need_b = ctx.needs_input_grad
        a_shape, b_shape = ctx.input_shape(0), ctx.input_shape(1)
        ga = gb = None
        if len(a_shape) == 1 and len(b_shape) == 1:          # dot product, g is a scalar
            return (g * b if need_a else None), (g * a if need_b else None)
        if len(a_shape) == 1:                                 # (k,) @ (..., k, m)
            g2 = np.expand_dims(g, -2)                        # (..., 1, m)
            if need_a:
                ga = unbroadcast(g2 @ _swap(b), (1, a_shape[0])).reshape(a_shape)
            if need_b:
                gb = unbroadcast(np.expand_dims(a, -1) * g2, b_shape)
            return ga, gb
        if len(b_shape) == 1:                                 # (..., n, k) @ (k,)
            g2 = np.expand_dims(g, -1)                        # (..., n, 1)
            if need_a:
                ga = unbroadcast(g2 * b, a_shape)
            if need_b:
                gb = unbroadcast(_swap(a) @ g2, (b_shape[0], 1)).reshape(b_shape)
            return ga, gb
        if need_a:
            ga = unbroadcast(g @ _swap(b), a_shape)
        if need_b:
            # an inner dimension of 1 (batch size 1) is a slow path of numpy's matmul
            gb = _outer(_swap(a), g) if a_shape[-2] == 1 else _swap(a) @ g
            gb = unbroadcast(gb, b_shape)
        return ga, gb


def _raise_linear_shape_error(x_shape: tuple, w_shape: tuple, b) -> None:
    if len(w_shape) != 2 or len(x_shape) < 1 or x_shape[-1] != w_shape[1]:
        raise ShapeError(f"linear: x of shape {x_shape} cannot go through a weight of shape "
                         f"{w_shape}: expected x of shape (batch, {w_shape[-1] if w_shape else '?'}) "
                         f"and W of shape (n_out, n_in)")
    raise ShapeError(f"linear: bias of shape {np.shape(b)} does not fit a weight of shape "
                     f"{w_shape}: expected ({w_shape[0]},)")


class Linear(Function):
    """z = x Wᵀ + b, one node for a whole layer (x: (n, n_in), W: (n_out, n_in), b: (n_out,)).

    dL/dx = δ W,  dL/dW = δᵀ x,  dL/db = Σ_rows δ  (δ = dL/dz), as in the spec.
    Saves only what the requested gradients need: x for dW, W for dx.
    """
    op_name = "linear"

    @staticmethod
    def forward(ctx, x, W, b=None):
        # One cheap test on the hot path (a layer calls this every step); the details only
        # when it fails. Constants may be Python numbers, hence the AttributeError.
        try:
            ok = (len(W.shape) == 2 and len(x.shape) >= 1 and x.shape[-1] == W.shape[1]
                  and (b is None or b.shape == W.shape[:1]))
        except AttributeError:
            ok = False
        if not ok:
            reject_none("linear", x, W)    # (rejects_none is off for b=None, no bias)
            _raise_linear_shape_error(np.shape(x), np.shape(W), b)
        n = ctx.needs_input_grad
        ctx.save_for_backward(x if n[1] else None, W if n[0] else None)
        z = x @ W.T
        if b is not None:
            if b.dtype == z.dtype:
                z += b                 # z is a fresh array: add the bias in place
            else:
                z = z + b              # numpy's promotion, as x @ W.T + b would give
        return z

    @staticmethod
    def backward(ctx, g):
        x, W = ctx.saved_tensors
        n = ctx.needs_input_grad
        gx = g @ W if n[0] else None
        need_W, need_b = n[1], len(n) > 2 and n[2]
        if g.ndim != 2 and (need_W or need_b):      # (..., n_out): rows of all leading axes
            g = g.reshape(-1, g.shape[-1])
            x = x.reshape(-1, x.shape[-1]) if need_W else x
        # batch size 1: an outer product instead of numpy's slow inner-dimension-1 matmul
        gW = (_outer(g.T, x) if x.shape[0] == 1 else g.T @ x) if need_W else None
        gb = g.sum(axis=0) if need_b else None
        return (gx, gW, gb) if len(n) > 2 else (gx, gW)
