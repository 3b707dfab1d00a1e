"""The paper sweep on one GPU: bf16 compute, large token batches.

Run:   xlmr-dynamics sweep --config gpu --config.checkpoints.dir=DIR --config.data_root=DATA
Expect: same rows as configs/paper.py (bf16 moves probe accuracies by well under a point).
"""

from pathlib import Path

from xlmr_dynamics.config import load_module


def get_config():
    c = load_module(Path(__file__).with_name("paper.py")).get_config()
    c.name = "gpu"
    c.results_dir = "results/gpu"
    c.checkpoints.dtype = "bfloat16"
    c.extract.tokens_per_batch = 65536
    return c
