"""A validation-gated curriculum over trajectory length (Chen et al. 2020).

Truncated unrolls see a window of `unroll_length` steps, and trajectories of a fixed length
never show the optimizer what happens after them: both bias a learned optimizer towards
greedy steps that stall, and it generalizes badly past its training horizon. The remedy of
"Training Stronger Baselines for Learning to Optimize" is a curriculum: train on short
trajectories first and move to longer ones (e.g. 100 -> 200 -> 500 -> 1000 steps, always
truncated at the same unroll length), with every stage validated on the *next* stage's
horizon, so that a stage is kept only while it improves what the next stage needs. When a
stage stops improving (`patience` validations in a row without a new best), the best phi of
that stage is restored and the next stage starts from it; the last stage is validated on its
own horizon, and when it stops improving training ends. A stage may also have an epoch budget:
it then ends at the first validation after the budget is spent, improving or not (a stage whose
validation keeps creeping down would otherwise hold the whole run).

`CurriculumState` is the pure bookkeeping (no TensorFlow), so the trainer can checkpoint it
as three numbers and tests can drive it with made-up validation values.
"""
from __future__ import annotations

import dataclasses
import math

from l2l_tf.errors import UserError


@dataclasses.dataclass(frozen=True)
class Curriculum:
    """Trajectory lengths per stage and how many non-improving validations end a stage."""

    stages: tuple[int, ...]
    patience: int = 2
    #: Epochs each stage may train at most (0: no budget, it ends by patience alone); empty: none.
    stage_epochs: tuple[int, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "stages", tuple(int(s) for s in self.stages))
        object.__setattr__(self, "stage_epochs", tuple(int(e) for e in self.stage_epochs))
        if self.stage_epochs and (len(self.stage_epochs) != len(self.stages) or min(self.stage_epochs) < 0):
            raise UserError(f"curriculum stage epochs must be one budget >= 0 per stage ({len(self.stages)}), got "
                            f"{list(self.stage_epochs)}")
        if not self.stages or any(s <= 0 for s in self.stages):
            raise UserError(f"curriculum stages must be positive step counts, got {list(self.stages)}")
        if list(self.stages) != sorted(set(self.stages)):
            raise UserError(f"curriculum stages must increase, got {list(self.stages)}")
        if self.patience < 1:
            raise UserError(f"curriculum patience must be >= 1, got {self.patience}")

    def num_steps(self, stage: int) -> int:
        """Training trajectory length of `stage`."""
        return self.stages[stage]

    def budget(self, stage: int) -> int:
        """Epochs `stage` may train (0: unlimited)."""
        return self.stage_epochs[stage] if self.stage_epochs else 0

    def validation_steps(self, stage: int) -> int:
        """The horizon `stage` is validated on: the next stage's length (the last stage's own)."""
        return self.stages[min(stage + 1, len(self.stages) - 1)]

    @property
    def last(self) -> int:
        return len(self.stages) - 1


@dataclasses.dataclass
class CurriculumState:
    """Where a curriculum stands: the stage, its best validation value, validations since then.

    `record(value)` takes one validation and says what the trainer must do next.
    """

    curriculum: Curriculum
    stage: int = 0
    best: float = math.inf
    stalls: int = 0

    #: What `record` asks for.
    KEEP_TRAINING, NEXT_STAGE, DONE = "keep training", "next stage", "done"

    def record(self, value: float, epochs_in_stage: int = 0) -> tuple[bool, str]:
        """(whether `value` is the stage's new best, what to do next), after `epochs_in_stage`
        epochs of the current stage."""
        improved = value < self.best
        if improved:
            self.best, self.stalls = value, 0
        else:
            self.stalls += 1
        budget = self.curriculum.budget(self.stage)
        if (improved or self.stalls < self.curriculum.patience) and not (budget and epochs_in_stage >= budget):
            return improved, self.KEEP_TRAINING
        return improved, self.DONE if self.stage == self.curriculum.last else self.NEXT_STAGE

    def advance(self, starting_value: float) -> None:
        """Moves to the next stage, whose baseline is the restored phi's value on its horizon."""
        if self.stage >= self.curriculum.last:
            raise ValueError("the curriculum is already at its last stage")
        self.stage += 1
        self.best, self.stalls = starting_value, 0
