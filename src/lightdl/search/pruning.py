"""The job's side of a search: report the objective after every validation to its Optuna trial and stop
training when the pruner says the trial is behind the others at the same epoch."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from omegaconf import DictConfig, OmegaConf


def search_trial(hydra_cfg: Any) -> DictConfig | None:
    """The sweeper's config when this job is a trial of lightdl's sweeper (hydra.sweeper.trial set)."""
    sweeper = OmegaConf.select(hydra_cfg, "sweeper", default=None)
    if sweeper is None or OmegaConf.select(sweeper, "trial", default=None) is None:
        return None
    return sweeper


class TrialPruning(L.Callback):
    """Reports `metric` at each validation epoch; on a prune decision asks the trainer to stop."""

    def __init__(self, trial: Any, metric: str, pruner: str) -> None:
        self.trial, self.metric, self.pruner = trial, metric, pruner
        self.pruned_epoch: int | None = None
        self.pruned_value: float | None = None

    @classmethod
    def open(cls, sweeper: DictConfig) -> TrialPruning:
        """Reattach to the trial the sweeper asked for, in the study stored at sweeper.storage."""
        import optuna

        from lightdl.search.study import build_pruner

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        storage = optuna.storages.get_storage(sweeper.storage)
        study = optuna.load_study(
            study_name=sweeper.study_name,
            storage=storage,
            pruner=build_pruner(sweeper.pruner),
            sampler=optuna.samplers.RandomSampler(),  # nothing is sampled here
        )
        study_id = storage.get_study_id_from_name(sweeper.study_name)
        trial_id = storage.get_trial_id_from_study_id_trial_number(study_id, sweeper.trial)
        return cls(optuna.trial.Trial(study, trial_id), sweeper.objective, sweeper.pruner.type)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.metric not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.metric])
        if not math.isfinite(value):
            return
        epoch = trainer.current_epoch
        self.trial.report(value, epoch)
        if self.pruned_epoch is None and self.trial.should_prune():
            self.pruned_epoch, self.pruned_value = epoch, value
            trainer.should_stop = True

    def reason(self) -> str:
        return (
            f"the {self.pruner} pruner stopped it after epoch {self.pruned_epoch}: "
            f"{self.metric}={self.pruned_value:.4g} was behind earlier trials at that epoch"
        )
