r"""A small, pure early-stopping helper counted in evaluations."""

from __future__ import annotations

import math
from typing import Any, Dict

__all__ = ["EarlyStopping"]

EARLY_STOPPING_MODES = ("max", "min")


class EarlyStopping:
    r"""Tracks a validation metric and says when training should stop.

    A value *improves* if it beats the best value so far by more than
    :obj:`min_delta` (:math:`v > \text{best} + \delta` for :obj:`mode="max"`,
    :math:`v < \text{best} - \delta` for :obj:`mode="min"`); the first
    non-NaN value always improves and a NaN value never does. Every
    non-improving evaluation increments :obj:`num_bad`, an improvement resets
    it, and :obj:`should_stop` becomes :obj:`True` once more than
    :obj:`patience` consecutive evaluations failed to improve (so
    :obj:`patience=0` stops at the first non-improvement).

    .. code-block:: python

        stopper = EarlyStopping(patience=5, mode="max")
        for epoch in range(num_epochs):
            ...
            if stopper.step(recall):
                save_checkpoint()
            if stopper.should_stop:
                break

    Args:
        patience (int): The number of consecutive non-improving evaluations
            tolerated before stopping.
        mode (str, optional): :obj:`"max"` if larger values are better,
            :obj:`"min"` otherwise. (default: :obj:`"max"`)
        min_delta (float, optional): The minimum change that counts as an
            improvement. (default: :obj:`0.0`)
    """

    def __init__(self, patience: int, mode: str = "max", min_delta: float = 0.0) -> None:
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 0:
            raise ValueError(
                f"'patience' must be a non-negative integer in 'EarlyStopping' (got {patience!r})"
            )
        if mode not in EARLY_STOPPING_MODES:
            raise ValueError(
                f"'mode' must be one of {EARLY_STOPPING_MODES} in 'EarlyStopping' (got {mode!r})"
            )
        if (
            isinstance(min_delta, bool)
            or not isinstance(min_delta, (int, float))
            or not math.isfinite(min_delta)
            or min_delta < 0
        ):
            raise ValueError(
                f"'min_delta' must be a finite non-negative number in 'EarlyStopping' "
                f"(got {min_delta!r})"
            )
        self.patience = patience
        self.mode = mode
        self.min_delta = float(min_delta)
        self.reset()

    def reset(self) -> None:
        r"""Forgets every value seen so far."""
        self.best = -math.inf if self.mode == "max" else math.inf
        self.best_step = -1
        self.num_bad = 0
        self.num_steps = 0

    def _improves(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best_step < 0:
            return True
        if self.mode == "max":
            return value > self.best + self.min_delta
        return value < self.best - self.min_delta

    def step(self, value: float) -> bool:
        r"""Records the metric of one evaluation.

        Args:
            value (float): The metric value.

        Returns:
            bool: :obj:`True` if :obj:`value` is a new best.
        """
        value = float(value)
        improved = self._improves(value)
        if improved:
            self.best = value
            self.best_step = self.num_steps
            self.num_bad = 0
        else:
            self.num_bad += 1
        self.num_steps += 1
        return improved

    @property
    def should_stop(self) -> bool:
        r"""Whether more than :obj:`patience` consecutive evaluations failed
        to improve."""
        return self.num_bad > self.patience

    def state_dict(self) -> Dict[str, Any]:
        r"""Returns the configuration and counters as plain Python values."""
        return {
            "patience": self.patience,
            "mode": self.mode,
            "min_delta": self.min_delta,
            "best": self.best,
            "best_step": self.best_step,
            "num_bad": self.num_bad,
            "num_steps": self.num_steps,
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        r"""Restores the counters saved by :meth:`state_dict`.

        The :obj:`mode` must match; :obj:`patience` and :obj:`min_delta` keep
        the values given to the constructor, so they may change on resume.

        Args:
            state_dict (dict): A dictionary returned by :meth:`state_dict`.
        """
        missing = [
            k for k in ("mode", "best", "best_step", "num_bad", "num_steps") if k not in state_dict
        ]
        if missing:
            raise ValueError(
                f"'state_dict' misses the keys {missing} in 'EarlyStopping' "
                f"(got {sorted(state_dict)})"
            )
        if state_dict["mode"] != self.mode:
            raise ValueError(
                f"'state_dict' was saved with mode {state_dict['mode']!r}, expected "
                f"{self.mode!r} in 'EarlyStopping'"
            )
        self.best = float(state_dict["best"])
        self.best_step = int(state_dict["best_step"])
        self.num_bad = int(state_dict["num_bad"])
        self.num_steps = int(state_dict["num_steps"])

    def __repr__(self) -> str:
        return (
            f"{self.__class__.__name__}(patience={self.patience}, mode={self.mode!r}, "
            f"min_delta={self.min_delta})"
        )
