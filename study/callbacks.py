"""Tune callbacks of the driver.

Tune pickles the RunConfig, callbacks included, into the study's ``tuner.pkl`` and
uses those on ``Tuner.restore``. Callbacks belong to a session (a progress printer, a
benchmark's clock, a test's interrupt), not to the study, so the runner hands Tune one
``SessionCallbacks``, which carries none and forwards every hook to the callbacks of
the session now running.
"""

from __future__ import annotations

from collections.abc import Sequence

from ray import tune

from analysis.contract import DIVERGED_KEY

_HOOKS = (
    "setup",
    "on_step_begin",
    "on_step_end",
    "on_trial_start",
    "on_trial_restore",
    "on_trial_save",
    "on_trial_result",
    "on_trial_complete",
    "on_trial_recover",
    "on_trial_error",
    "on_checkpoint",
    "on_experiment_end",
)


class NoRetryAfterDivergence(tune.Callback):
    """A diverged trial fails for good: rerun from its last checkpoint, it would diverge
    again at the same step, so the failure its last row announces is not retried."""

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        if result.get(DIVERGED_KEY):
            trial.max_failures = 0  # Trial.should_recover: num_failures <= max_failures


class SessionCallbacks(tune.Callback):
    """Forwards Tune's hooks to ``SessionCallbacks.active`` (set by the runner)."""

    active: list[tune.Callback] = []

    @classmethod
    def use(cls, callbacks: Sequence[tune.Callback]) -> None:
        cls.active = list(callbacks)


def _forward(hook: str):
    def forward(self, *args, **kwargs) -> None:
        for callback in SessionCallbacks.active:
            getattr(callback, hook)(*args, **kwargs)

    forward.__name__ = hook
    return forward


for _hook in _HOOKS:
    setattr(SessionCallbacks, _hook, _forward(_hook))
