"""lightdl's Optuna sweeper as a Hydra plugin (hydra/sweeper=lightdl_optuna)."""
