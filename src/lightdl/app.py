"""The Hydra application behind `python -m lightdl`: composes the config, runs one job, maps failures to exit codes."""

from __future__ import annotations

import os
import sys

from lightdl.paths import conf_dir

EXIT_FAILED = 1
EXIT_CONFIG = 2
EXIT_DIVERGED = 3


def run_cli() -> int:
    """Run Hydra's main on sys.argv. Returns the process exit code."""
    import hydra
    from hydra.errors import ConfigCompositionException, OverrideParseException
    from omegaconf.errors import OmegaConfBaseException

    from lightdl import sweep_table
    from lightdl.errors import ConfigError, describe_composition_error

    debug = os.environ.get("LIGHTDL_DEBUG") == "1"
    os.environ["HYDRA_FULL_ERROR"] = "1"  # let composition errors reach us, we word them ourselves

    @hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
    def _app(cfg) -> dict:
        from lightdl.job import run_job

        return run_job(cfg)  # the summary: a sweeper reads it from the job's return value

    try:
        _app()
    except (
        ConfigCompositionException,
        OverrideParseException,
        OmegaConfBaseException,
        ConfigError,  # from a sweeper, e.g. a bad hparams_search space
    ) as exc:
        if debug:
            raise
        print(f"lightdl: error: {describe_composition_error(exc, sys.argv[1:])}", file=sys.stderr)
        return EXIT_CONFIG
    except Exception as exc:
        if debug:
            raise
        print(
            f"lightdl: error: {type(exc).__name__}: {exc} (LIGHTDL_DEBUG=1 shows the traceback)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    return sweep_table.exit_code
