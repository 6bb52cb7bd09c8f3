"""nn: neural networks two ways.

- ``nn.manual``: the spec's MLP with hand-written backprop (``Layer``, ``MLP``).
- graph nodes on tinygraph: ``Module``, ``Linear``, ``ActivationLayer`` (any ``activations``
  object as a node), ``Sequential``, the losses ``SoftmaxCrossEntropy`` (one fused node),
  ``MSELoss`` and ``BCELoss``, the optimizers ``SGD`` and ``Adam``, and ``MLP``, the same
  network with autodiff gradients.
- ``crosscheck`` compares the two on the same weights and batch; ``memory_table`` and
  ``measure_memory`` do the spec's memory analysis; ``nn.data`` has the datasets.
"""

from tinygraph._requirements import require_sibling as _require_sibling

# before the modules below import it: a learner's activations.py must not stand in for it
_require_sibling("activations", "nn")

from . import checkpoint, data, init, manual
from .crosscheck import CrosscheckReport, crosscheck
from .layers import ActivationLayer, Linear
from .losses import BCELoss, BCEWithLogits, MSELoss, SoftmaxCrossEntropy
from .memory import MemoryTable, measure_memory, memory_table
from .mlp import MLP, History
from .module import LoadedKeys, Module, Sequential
from .optim import SGD, Adam, Optimizer
from .serialize import ModelFileError, load, save
from .swiglu import SwiGLU

#: tells this package from another of the same name (tinygraph._requirements.require_sibling)
_PROJECT = "tinygraph"

__all__ = ["LoadedKeys", "checkpoint", "data", "init", "manual", "crosscheck", "CrosscheckReport", "ActivationLayer", "Linear",
           "BCELoss", "BCEWithLogits", "MSELoss", "SoftmaxCrossEntropy", "MemoryTable", "measure_memory",
           "memory_table", "MLP", "History", "Module", "Sequential", "SGD", "Adam", "Optimizer", "save", "load", "ModelFileError", "SwiGLU"]
