"""Training throughput (images/second) of a CNN through lightdl against a plain PyTorch loop.

What it measures, in one process, on the same data, seed, batch size and thread count:

  (a) lightdl: `model=cnn` with its default blocks (conv3x3(32) -> ReLU -> maxpool2,
      conv3x3(64) -> ReLU -> maxpool2, dense 128, output), Adam lr 1e-3, cross-entropy,
      Fashion-MNIST with `standardize`, composed from the real conf/ and run through
      `lightdl.train.train` -- Lightning Trainer, default callbacks, logger and the per-epoch
      training probe all on (see epoch_overhead.py, whose clock and runner this script reuses).
  (b) plain: the same network written as one nn.Sequential (same initial weights), trained by
      epoch_overhead.run_plain (torch.optim.Adam over the DataModule's own in-memory tensors,
      batches gathered with index_select, loss and accuracy summed on the device).

On a machine with a GPU both run there with the data resident on the device (lightdl moves its
in-memory splits to the device once; the plain loop does the same with .to(device)).

Throughput = training images / (epoch time - validation time): the training pass plus all
end-of-epoch work except validation. The first epoch of each run is warm-up and is discarded.

Run from the repository root:

    .venv/bin/python benchmarks/cnn_throughput.py
    .venv/bin/python benchmarks/cnn_throughput.py --train-per-class 0   # the whole training split
    .venv/bin/python benchmarks/cnn_throughput.py --device cuda --json cnn.json
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
from pathlib import Path

import case_result
import lightning as L
import torch
from epoch_overhead import DATA_DIR, compose_cfg, run_lightdl, run_plain
from torch import nn

TARGET = 1.10


def plain_cnn(channels: int, side: int, num_classes: int) -> nn.Sequential:
    """conf/model/cnn.yaml's default network, written out by hand."""
    return nn.Sequential(
        nn.Conv2d(channels, 32, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(32, 64, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(64 * (side // 4) ** 2, 128),
        nn.ReLU(),
        nn.Linear(128, num_classes),
    )


def cnn_for(spec) -> nn.Sequential:
    channels, side, _ = spec.input_shape
    return plain_cnn(channels, side, spec.num_classes)


def same_init(cfg, datamodule, seed: int) -> bool:
    """lightdl's CNN after seed_everything(seed) holds plain_cnn's weights after manual_seed(seed)."""
    from lightdl import build

    L.seed_everything(seed, verbose=False)
    ours = list(build.build_net(cfg, datamodule.spec, []).parameters())
    torch.manual_seed(seed)
    theirs = list(cnn_for(datamodule.spec).parameters())
    return len(ours) == len(theirs) and all(
        torch.equal(a, b) for a, b in zip(ours, theirs, strict=True)
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run (first is warm-up)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--train-per-class",
        type=int,
        default=2000,
        help="training images per class; 0 = the whole training split (55,000 images)",
    )
    parser.add_argument("--rounds", type=int, default=1, help="alternating (lightdl, plain) rounds")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--data-dir", default=DATA_DIR)
    case_result.add_options(parser)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is discarded as warm-up)")

    from lightdl import build

    if args.threads:
        torch.set_num_threads(args.threads)
    device, on_device = case_result.resolve_device(parser, args.device)
    gpu = case_result.GpuPeak(device)
    extra = ("model=cnn", *on_device, *args.set)
    if args.train_per_class:
        extra += (f"data.train_per_class={args.train_per_class}",)
    settings = (args.epochs, args.batch_size, args.data_dir, args.seed, extra)

    tmp = Path(tempfile.mkdtemp(prefix="lightdl-cnn-throughput-"))
    cfg = compose_cfg(tmp / "probe", *settings)
    datamodule = build.build_datamodule(cfg)
    n = len(datamodule.splits["train"][0])
    lr = float(cfg.optimizer.lr)
    print(
        f"torch {torch.__version__}, lightning {L.__version__}, "
        f"threads {torch.get_num_threads()}, device {device}"
    )
    print(
        f"{n} training images, batch {args.batch_size}, lr {lr}, "
        f"same initial weights: {same_init(cfg, datamodule, args.seed)}"
    )

    ours, theirs = [], []
    ours_t, ours_v, theirs_t, theirs_v = [], [], [], []
    for r in range(args.rounds):
        run_dir = tmp / f"round{r}"
        gpu.start()
        times, val, result = run_lightdl(compose_cfg(run_dir, *settings), run_dir)
        gpu.stop("lightdl")
        ours_t, ours_v = ours_t + times[1:], ours_v + val[1:]
        ours += [n / (t - v) for t, v in zip(times[1:], val[1:], strict=True)]
        print(
            f"round {r + 1} lightdl: {', '.join(f'{t:.2f}' for t in times)} s/epoch  "
            f"val/acc={result['metrics'].get('val/acc', float('nan')):.4f}"
        )
        gpu.start()
        times, val, last = run_plain(
            datamodule, args.epochs, args.batch_size, lr, args.seed, device, make_model=cnn_for
        )
        gpu.stop("plain")
        theirs_t, theirs_v = theirs_t + times[1:], theirs_v + val[1:]
        acc = last["val/acc"]
        theirs += [n / (t - v) for t, v in zip(times[1:], val[1:], strict=True)]
        print(
            f"round {r + 1} plain  : {', '.join(f'{t:.2f}' for t in times)} s/epoch  "
            f"val/acc={acc:.4f}"
        )

    a, b = statistics.median(ours), statistics.median(theirs)
    print()
    print(f"lightdl : {a:,.0f} images/s")
    print(f"plain   : {b:,.0f} images/s")
    print(
        f"ratio   : {b / a:.3f} (plain/lightdl throughput = lightdl/plain time; target <= {TARGET})"
    )
    case_result.write(
        args.json,
        case="cnn",
        unit="images",
        items=n,
        device=device,
        lightdl=(ours_t, ours_v),
        plain=(theirs_t, theirs_v),
        gpu=gpu,
        metrics={"lightdl val/acc": result["metrics"].get("val/acc"), "plain val/acc": acc},
        settings=vars(args),
    )
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
