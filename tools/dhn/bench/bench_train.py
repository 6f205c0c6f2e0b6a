"""A full-size AlexNet-DHN training run on CIFAR-10-shaped data: 32×32 generated images
(dhn.synthetic) resized to 256×256 through the list converter, 227 crops, batch 64, fch 48,
both DHN losses, Caffe's solver on the CPU. Reports seconds per iteration and the loss fall.

No ImageNet weights can be downloaded here, so conv1–fc7 start from their fillers; lr 1e-3
(not fine-tuning's 2e-5) and λ = 1 so that a short run shows the fall; at lr 1e-2 the codes
collapsed to 0 (pair loss → log 2) within 60 iterations (tried). DHN_BENCH_ALEXNET_ITERS sets
the length (default 150 iterations, long enough for the loss to fall and the set-up to amortise;
their cost on 2 cores: train.alexnet_dhn_cpu_s_per_iter in docs/BENCHMARKS.md). The log is kept as
runs/bench_alexnet_train.log.
"""
import os
import shutil
import tempfile
import time

import numpy as np

from dhn import caffe_process, convert, paths, synthetic, train
from dhn.bench import Figure
from dhn.run_folder import RunSettings


def bench_config(dataset, bits, iters, lr, lambda_, feature_norm=False):
    """(resolved RunSettings, Schedule) as dhn.train makes them (defaults otherwise), for prepare_run."""
    settings = RunSettings(dataset, bits, "dhn", lr=lr, lambda_=lambda_, alpha=1.0, similar_weight=1.0,
                           feature_norm=feature_norm, iters=iters)
    return settings.resolved(), train.schedule(dataset, iters)


def run():
    iters = int(os.environ.get("DHN_BENCH_ALEXNET_ITERS", "150"))
    with tempfile.TemporaryDirectory() as tmp:
        list_file = synthetic.write_dataset(tmp, 700)
        split = {"train": np.arange(640), "query": np.arange(640, 670), "database": np.arange(670, 700)}
        data = os.path.join(tmp, "lmdb")
        convert.convert_list(list_file, tmp, data, split, num_labels=len(synthetic.CONCEPTS), size=256,
                             progress=False)
        run_dir = os.path.join(tmp, "run")
        sol = train.prepare_run(run_dir, *bench_config("cifar10", 48, iters, lr=1e-3, lambda_=1.0), None, data)
        t0 = time.perf_counter()
        caffe_process.run_caffe_train(run_dir, os.path.join(run_dir, "solver.prototxt"), sol.max_iter, quiet=True)
        seconds = time.perf_counter() - t0
        log = os.path.join(run_dir, "train.log")
        losses = [v for _, v in caffe_process.parse_log(log)["pair_loss"]]
        keep = os.path.join(paths.root(), "runs", "bench_alexnet_train.log")
        os.makedirs(os.path.dirname(keep), exist_ok=True)
        shutil.copyfile(log, keep)
    k = max(1, len(losses) // 5)
    first, last = float(np.mean(losses[:k])), float(np.mean(losses[-k:]))
    return [
        Figure("train.alexnet_dhn_cpu_s_per_iter", seconds / iters, "s", None,
               "%d iterations incl. set-up, batch 64, 227 crops, fch48" % iters),
        Figure("train.alexnet_dhn_pair_loss_first", first, "loss", None, "mean of the first %d logged" % k),
        Figure("train.alexnet_dhn_pair_loss_last", last, "loss", last / first, "first logged losses"),
    ]
