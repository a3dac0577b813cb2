"""Hyperparameter search: lightdl's Optuna sweeper (hydra/sweeper=lightdl_optuna), its search spaces and
the pruning callback that reports each validation to the trial. Nothing here imports optuna or torch at
import time: Hydra imports the plugin shim on every run."""
