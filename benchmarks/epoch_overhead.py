"""Per-epoch overhead of lightdl's full training stack against a plain PyTorch loop.

What it measures, in one process, on the same data, seed and thread count:

  (a) lightdl: the default run (MLP 784-256-128-10 with ReLU, Adam lr 1e-3, cross-entropy,
      Fashion-MNIST with the default `standardize` preprocessing) composed from the real conf/
      with Hydra's compose API and run through `lightdl.train.train(cfg, run_dir)` -- Lightning
      Trainer, default callbacks (checkpoint, early stopping, NaN guard, history), the progress
      bar and the CSV logger all on. The only addition is a timing callback, injected by wrapping
      `lightdl.build.build_trainer`, which records time.perf_counter() at each
      on_train_epoch_start and at on_train_end.
  (b) plain: the same nn.Sequential MLP (same seed, hence the same initial weights), torch.optim.Adam
      (lr 1e-3), nn.CrossEntropyLoss, the same batch size, over the DataModule's own in-memory
      tensors (datamodule.splits["train"] / ["val"]): one torch.randperm per epoch, batches
      gathered with index_select, train loss/accuracy accumulated on tensors (one .item() per
      epoch), then a torch.no_grad() validation pass over the val split in batches of the
      DataModule's eval_batch_size.

"Epoch time" is, for both, one training pass over the 55,000 training examples plus one
validation pass over the 5,000 validation examples plus all end-of-epoch work (for lightdl: from one
on_train_epoch_start to the next, or to on_train_end for the last epoch, so checkpoint writing,
CSV logging, the progress line and the callbacks are included). The first epoch of each run is
discarded as warm-up and the median of the rest is reported. Runs of (a) and (b) alternate over
--rounds rounds to spread drift (other load on the machine) over both.

Run from the repository root:

    .venv/bin/python benchmarks/epoch_overhead.py
    .venv/bin/python benchmarks/epoch_overhead.py --epochs 4 --rounds 3 --batch-size 256
    .venv/bin/python benchmarks/epoch_overhead.py --profile 30   # also cProfile one lightdl run
    .venv/bin/python benchmarks/epoch_overhead.py --json mlp.json --set data.train_per_class=100

Timings on a shared or small machine are noisy; compare ratios from the same invocation.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import case_result
import lightning as L
import torch
from torch import nn

DATA_DIR = "/usr/share/datasets/fashion-mnist"
TARGET = 1.10


class EpochClock(L.Callback):
    """perf_counter() at every training-epoch start and at the end of training."""

    def __init__(self) -> None:
        self.starts: list[float] = []
        self.val: list[float] = []
        self.end: float | None = None
        self._val_start = 0.0

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.starts.append(time.perf_counter())

    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        self._val_start = time.perf_counter()

    def on_validation_epoch_end(self, trainer, pl_module) -> None:
        self.val.append(time.perf_counter() - self._val_start)

    def on_train_end(self, trainer, pl_module) -> None:
        self.end = time.perf_counter()

    def epoch_times(self) -> list[float]:
        marks = [*self.starts, self.end]
        return [b - a for a, b in zip(marks, marks[1:], strict=False)]


def compose_cfg(
    run_dir: Path, epochs: int, batch_size: int, data_dir: str, seed: int, extra: tuple = ()
):
    """The real conf/ composed with Hydra's compose API; `extra` are further overrides."""
    from hydra import compose, initialize_config_dir

    from lightdl.paths import conf_dir

    overrides = [
        f"paths.run_dir={run_dir}",
        f"paths.output_dir={run_dir}",
        f"trainer.max_epochs={epochs}",
        f"data.batch_size={batch_size}",
        f"data.data_dir={data_dir}",
        f"seed={seed}",
        "test=false",
        *extra,
    ]
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=overrides)


def run_lightdl(
    cfg, run_dir: Path, progress: str = "auto"
) -> tuple[list[float], list[float], dict]:
    """lightdl.train.train(cfg, run_dir) with EpochClock added to the Trainer's callbacks."""
    from lightdl import build
    from lightdl.callbacks import progress as progress_mod
    from lightdl.train import train

    clock = EpochClock()
    original_build_trainer = build.build_trainer
    original_progress_bar = progress_mod.progress_bar

    def build_trainer(cfg, callbacks, *args, **kwargs):
        return original_build_trainer(cfg, [*callbacks, clock], *args, **kwargs)

    def forced_progress_bar():
        if progress == "rich":
            from lightning.pytorch.callbacks import RichProgressBar

            return RichProgressBar()
        return progress_mod.EpochLines()

    build.build_trainer = build_trainer
    if progress != "auto":
        progress_mod.progress_bar = forced_progress_bar
    try:
        result = train(cfg, run_dir)
    finally:
        build.build_trainer = original_build_trainer
        progress_mod.progress_bar = original_progress_bar
    return clock.epoch_times(), clock.val, result


def plain_net(input_dim: int, num_classes: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(input_dim, 256),
        nn.ReLU(),
        nn.Linear(256, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def run_plain(
    datamodule,
    epochs: int,
    batch_size: int,
    lr: float,
    seed: int,
    device: torch.device,
    make_model=None,
) -> tuple[list[float], list[float], dict]:
    """The fairest fast plain loop over the same in-memory tensors.

    make_model(spec) builds the network (after torch.manual_seed(seed)); default: plain_net.
    """
    x_train, y_train = (t.to(device) for t in datamodule.splits["train"])
    x_val, y_val = (t.to(device) for t in datamodule.splits["val"])
    spec = datamodule.spec
    torch.manual_seed(seed)
    if make_model is None:
        model = plain_net(spec.input_dim, spec.num_classes)
    else:
        model = make_model(spec)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    n, n_val, eval_bs = len(x_train), len(x_val), datamodule.eval_batch_size
    times, val_times, last = [], [], {}
    for epoch in range(epochs):
        start = time.perf_counter()
        model.train()
        # the permutation TensorBatches draws for this epoch, so both see batches in the same order
        generator = torch.Generator().manual_seed(datamodule.split_seed * 100_003 + epoch)
        order = torch.randperm(n, generator=generator).to(device)
        loss_sum = torch.zeros((), device=device)
        correct = torch.zeros((), dtype=torch.long, device=device)
        for i in range(0, n, batch_size):
            index = order[i : i + batch_size]
            xb, yb = x_train.index_select(0, index), y_train.index_select(0, index)
            logits = model(xb)
            loss = loss_fn(logits, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            with torch.no_grad():
                loss_sum += loss.detach() * len(yb)
                correct += (logits.argmax(1) == yb).sum()
        val_start = time.perf_counter()
        model.eval()
        with torch.no_grad():
            val_loss = torch.zeros((), device=device)
            val_correct = torch.zeros((), dtype=torch.long, device=device)
            for i in range(0, n_val, eval_bs):
                xb, yb = x_val[i : i + eval_bs], y_val[i : i + eval_bs]
                logits = model(xb)
                val_loss += loss_fn(logits, yb) * len(yb)
                val_correct += (logits.argmax(1) == yb).sum()
        last = {
            "train/loss": loss_sum.item() / n,
            "train/acc": correct.item() / n,
            "val/loss": val_loss.item() / n_val,
            "val/acc": val_correct.item() / n_val,
        }
        end = time.perf_counter()
        times.append(end - start)
        val_times.append(end - val_start)
    return times, val_times, last


def same_init(cfg, datamodule, seed: int) -> bool:
    """lightdl's MLP after seed_everything(seed) equals plain_net after manual_seed(seed)."""
    from lightdl import build

    L.seed_everything(seed, verbose=False)
    ours = build.build_net(cfg, datamodule.spec, [])
    torch.manual_seed(seed)
    theirs = plain_net(datamodule.spec.input_dim, datamodule.spec.num_classes)
    a, b = ours.state_dict(), theirs.state_dict()
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="alternating (lightdl, plain) rounds; epochs pooled over rounds",
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads for both (default: torch's own default)",
    )
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default=DATA_DIR)
    parser.add_argument(
        "--progress",
        choices=("auto", "lines", "rich"),
        default="auto",
        help="lightdl's progress bar: auto = what lightdl picks (rich on a tty)",
    )
    parser.add_argument(
        "--profile",
        type=int,
        default=0,
        metavar="N",
        help="after timing, cProfile one more lightdl run and print the top N",
    )
    case_result.add_options(parser)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is discarded as warm-up)")

    from lightdl import build

    if args.threads:
        torch.set_num_threads(args.threads)
    threads = torch.get_num_threads()
    device, on_device = case_result.resolve_device(parser, args.device)
    settings = (args.epochs, args.batch_size, args.data_dir, args.seed, (*on_device, *args.set))
    gpu = case_result.GpuPeak(device)

    tmp = Path(tempfile.mkdtemp(prefix="lightdl-epoch-overhead-"))
    cfg = compose_cfg(tmp / "probe", *settings)
    datamodule = build.build_datamodule(cfg)  # the same class, files and split as train() builds
    lr = float(cfg.optimizer.lr)
    print(
        f"torch {torch.__version__}, lightning {L.__version__}, threads {threads}, device {device}"
    )
    print(
        f"train {len(datamodule.splits['train'][0])} / val {len(datamodule.splits['val'][0])} "
        f"examples, batch {args.batch_size}, eval batch {datamodule.eval_batch_size}, lr {lr}, "
        f"same initial weights: {same_init(cfg, datamodule, args.seed)}"
    )

    ours, theirs, ours_val, theirs_val = [], [], [], []
    for r in range(args.rounds):
        run_dir = tmp / f"round{r}"
        cfg = compose_cfg(run_dir, *settings)
        gpu.start()
        times, val, result = run_lightdl(cfg, run_dir, args.progress)
        gpu.stop("lightdl")
        if len(times) != args.epochs:
            print(f"warning: lightdl ran {len(times)} epochs ({result.get('status')})")
        ours += times[1:]
        ours_val += val[1:]
        print(
            f"round {r + 1} lightdl epochs: {', '.join(f'{t:.3f}' for t in times)} s  "
            f"val/acc={result['metrics'].get('val/acc', float('nan')):.4f}"
        )
        if torch.get_num_threads() != threads:
            print(f"warning: thread count changed to {torch.get_num_threads()}; resetting")
            torch.set_num_threads(threads)

        gpu.start()
        times, val, last = run_plain(
            datamodule, args.epochs, args.batch_size, lr, args.seed, device
        )
        gpu.stop("plain")
        theirs += times[1:]
        theirs_val += val[1:]
        print(
            f"round {r + 1} plain   epochs: {', '.join(f'{t:.3f}' for t in times)} s  "
            f"val/acc={last['val/acc']:.4f}"
        )

    a, b = statistics.median(ours), statistics.median(theirs)
    steps = -(-len(datamodule.splits["train"][0]) // args.batch_size)
    print()
    print(f"threads  : {torch.get_num_threads()}")
    print(f"lightdl  : {a:.3f} s/epoch  (validation {statistics.median(ours_val):.3f} s)")
    print(f"plain    : {b:.3f} s/epoch  (validation {statistics.median(theirs_val):.3f} s)")
    print(f"ratio    : {a / b:.3f} (target <= {TARGET})")
    print(f"overhead : {(a - b) / steps * 1e6:.0f} us per training step ({steps} steps/epoch)")
    case_result.write(
        args.json,
        case="mlp",
        unit="examples",
        items=len(datamodule.splits["train"][0]),
        device=device,
        lightdl=(ours, ours_val),
        plain=(theirs, theirs_val),
        gpu=gpu,
        metrics={
            "lightdl val/acc": result["metrics"].get("val/acc"),
            "plain val/acc": last["val/acc"],
        },
        settings={**vars(args), "steps_per_epoch": steps},
    )

    if args.profile:
        run_dir = tmp / "profile"
        cfg = compose_cfg(run_dir, *settings)
        profiler = cProfile.Profile()
        profiler.enable()
        run_lightdl(cfg, run_dir, args.progress)
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out).sort_stats("cumulative")
        stats.print_stats(args.profile)
        print(out.getvalue())
        stats.dump_stats(str(tmp / "lightdl.prof"))
        print(f"full profile: {tmp / 'lightdl.prof'}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)  # run directories: checkpoints, metrics.csv


if __name__ == "__main__":
    main()
