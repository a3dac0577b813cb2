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
    try:
        sys.argv[1:] = torchrun_args(sys.argv[1:], os.environ)
    except ConfigError as exc:
        print(f"lightdl: error: {exc}", file=sys.stderr)
        return EXIT_CONFIG

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


def torchrun_args(args: list[str], env) -> list[str]:
    """The command line as each rank of a torchrun launch runs it: every rank composes the same
    run, so they share one run directory, named after the launch's run id unless hydra.run.dir is
    given, and only rank 0 writes .hydra/ and app.log. A sweep (-m) is refused: torchrun starts
    one run; `-m trainer=ddp` starts each job's ranks itself."""
    if "TORCHELASTIC_RUN_ID" not in env:
        return args
    from lightdl.errors import ConfigError

    if "-m" in args or "--multirun" in args:
        raise ConfigError(
            "torchrun starts the ranks of one run, not a sweep; for a sweep of DDP runs use "
            "python -m lightdl -m trainer=ddp ... (lightdl starts each job's ranks)."
        )
    extra = []
    run_id = env["TORCHELASTIC_RUN_ID"]
    if not any(arg.startswith("hydra.run.dir=") for arg in args):
        if run_id in ("", "none"):  # no --standalone and no --rdzv-id: nothing names the launch
            raise ConfigError(
                "this torchrun launch has no run id (--rdzv-id) to name its run directory; give "
                "hydra.run.dir=<a directory every rank can reach> (or use --standalone)."
            )
        extra.append(f"hydra.run.dir=${{paths.output_dir}}/torchrun/{run_id}")
    if int(env.get("RANK", "0")) != 0:
        extra += ["hydra.output_subdir=null", "hydra/job_logging=disabled"]
    return [*args, *extra]
