"""The paper sweep on a multi-host TPU pod slice (e.g. v4-32): run the same command on every host.

Run:   xlmr-dynamics sweep --config tpu_pod --config.checkpoints.dir=gs-fuse/DIR --config.data_root=DATA
       (jax.distributed is initialised automatically on TPU; every host reads only its share of each
       dataset's batches; process 0 writes results, so results_dir must be on process 0's disk or a
       shared filesystem.)
"""

from pathlib import Path

from xlmr_dynamics.config import load_module


def get_config():
    c = load_module(Path(__file__).with_name("paper.py")).get_config()
    c.name = "tpu_pod"
    c.results_dir = "results/tpu_pod"
    c.checkpoints.dtype = "bfloat16"
    c.extract.tokens_per_batch = 262144  # global: split over every chip of the slice
    c.probe.devices = 0  # each host trains its block of layers: spread it over its local chips
    return c
