"""Hydra plugin shim: registers hydra/sweeper=lightdl_optuna. The logic lives in lightdl.search; Hydra
only instantiates plugin classes defined under the hydra_plugins namespace, hence this subclass."""

from hydra.core.config_store import ConfigStore

from lightdl.search import config as _config
from lightdl.search import sweeper as _sweeper


class LightdlOptunaSweeper(_sweeper.OptunaSweeper):
    """Optuna search with pruning and resumable SQLite studies (see lightdl.search.sweeper)."""


ConfigStore.instance().store(
    group="hydra/sweeper", name="lightdl_optuna", node=_config.SweeperConf, provider="lightdl"
)
