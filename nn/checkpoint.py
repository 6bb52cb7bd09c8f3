"""Checkpoints during ``fit`` and exact resumption.

``model.fit(X, y, epochs=10, ..., checkpoint="run.npz", checkpoint_every=2)`` saves the
model to ``run.npz`` (atomically, see ``nn.serialize``) after every 2nd epoch and after the
last one. The file holds everything training depends on: the weights, the optimizer state,
the state of the random generator that shuffles the mini-batches, and the number of epochs
trained. So::

    model = nn.load("run.npz")                        # in a fresh process, after a crash
    model.fit(X, y, epochs=10 - model.epochs_trained, ...same arguments...)

ends with exactly (bit for bit) the weights of an uninterrupted 10-epoch run.
"""
from __future__ import annotations

import os
from typing import Any

from ._spec_mlp import _check_int

__all__ = ["Checkpointer", "resume"]


class Checkpointer:
    """Saves ``model`` to ``path`` during one ``fit`` call: after each epoch that makes the
    model's own count (``epochs_trained``) a multiple of ``every``, and after the call's last
    epoch. ``path=None`` does nothing."""

    def __init__(self, model: Any, path: Any, every: Any, where: str) -> None:
        if path is None:
            if every is not None:
                raise ValueError(f"{where}: checkpoint_every={every!r} needs checkpoint=<path of "
                                 f"the .npz file to write>; got checkpoint=None")
            self.path = None
            self.every = 1
        else:
            if not isinstance(path, (str, os.PathLike)):
                raise TypeError(f"{where}: checkpoint must be a file path (str or os.PathLike), "
                                f"got {path!r} of type {type(path).__name__}")
            if not os.fspath(path):
                raise ValueError(f"{where}: checkpoint is an empty path; expected the .npz file "
                                 f"to write, such as 'run.npz'")
            from .serialize import check_savable_model, writable_path
            # before training, not after its first epoch
            self.path = writable_path(path, f"{where}: checkpoint")
            self.every = 1 if every is None else _check_int(f"{where}: checkpoint_every", every, 1)
            check_savable_model(model, f"{where}: checkpoint")
        self.model = model
        self.behind: bool | None = None     # whether the file lacks the last epoch; None: none done

    def check_optimizer(self, optimizer: Any, where: str) -> None:
        """Refuse, before training, an optimizer whose state a checkpoint cannot hold."""
        if self.path is not None and optimizer is not None:
            from .serialize import check_savable_optimizer
            check_savable_optimizer(optimizer, where)

    def epoch_counted(self) -> None:
        """An epoch has ended in the model, not yet in the file. Called before fit takes
        the epoch's snapshot, so that the file is never said to hold an epoch it lacks."""
        if self.path is not None:
            self.behind = True

    def epoch_done(self, epoch: int, last: bool) -> None:
        """``epoch`` counts from 1 within this ``fit`` call; the saves follow the model's own
        count (``epochs_trained``), so a run resumed from a stop at epoch 7 with
        ``checkpoint_every=5`` saves after epochs 10, 15, ..., not 12, 17, ..."""
        if self.path is None:
            return
        done = getattr(self.model, "epochs_trained", epoch)
        if done % self.every == 0 or last:    # (else still behind, since epoch_counted)
            from .serialize import save
            save(self.model, self.path, optimizer=True)
            self.behind = False

    def catch_up(self) -> str:
        """When fit stops early with its model put back after its last whole epoch: save it
        if ``checkpoint_every`` skipped that epoch. Returns words for fit's message."""
        if self.path is None or self.behind is None:
            return ""                          # no checkpoint, or no epoch done in this fit
        if self.behind:
            from .serialize import save
            try:
                save(self.model, self.path, optimizer=True)
            except OSError as exc:
                return f"; saving that to the checkpoint {str(self.path)!r} failed: {exc}"
            self.behind = False
        return f"; the checkpoint {str(self.path)!r} holds that state"


def resume(path: str | os.PathLike, epochs: int) -> tuple[Any, int]:
    """``(model, remaining)``: the model of checkpoint ``path`` and how many of ``epochs``
    (the total planned) are still to run: ``model.fit(X, y, epochs=remaining, ...)``."""
    from .serialize import load
    total = _check_int("nn.checkpoint.resume: epochs", epochs, 1)
    model = load(path)
    done = getattr(model, "epochs_trained", 0)
    if done > total:
        raise ValueError(f"nn.checkpoint.resume: the checkpoint has {done} epochs trained, more "
                         f"than epochs={total}; expected the total number of epochs planned")
    return model, total - done
