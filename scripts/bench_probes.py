"""Benchmark: POS probes for all layers x seeds, vmapped JAX vs one-probe-at-a-time loops.

Setting: full EWT-train-sized word features (204,577 words by default, D = 768, 13 layers, 5 seeds,
17 UPOS classes). Features are random Gaussians with a planted linear signal whose strength varies
by layer (no real XLM-R weights here); labels are the real UPOS tags of UD_English-EWT train (the
shipped file is truncated to 120,452 words; labels repeat cyclically up to `--n-words`). Every run
trains for a fixed number of epochs (no dev, no early stopping), batch 64, Adam lr 1e-3.

Compared, in the same process:
  * jax_vmapped: `probes.fit_probes` on all L x S probes (one jitted epoch per call).
  * jax_loop: the same `fit_probes`, called once per (layer, seed) on `x[l:l+1]`.
  * torch_loop: the Liu et al. / jiant style loop: per (layer, seed), a torch DataLoader over a
    TensorDataset (shuffle, batch 64), nn.Linear, Adam, cross-entropy.
The two loops are timed on `--loop-probes` (layer, seed) units and their throughput is
extrapolated (their cost is linear in the number of probes). Throughput = probe-epochs per
second (probes trained x epochs / wall seconds). JAX timings exclude compilation (a warm-up run
compiles; its time is reported as compile_s).

Peak host memory: features are built layer by layer in place on the device in the probes' own
format (as `extract_features(on_device=True)` does in a sweep), so peak RSS is the feature array
(8.2 GB float32, 4.1 GB with --bf16 at full EWT) plus one float32 layer and the probe state.
Timings are noisy when other jobs share the machine; the JSON records the 1-minute load average.

`--devices K` spreads the layers over K local devices (`ProbeConfig.devices`); on CPU simulate them
with XLA_FLAGS=--xla_force_host_platform_device_count=K (they share the cores: no gain measured at
full size, and the features of the other blocks are copied).

Run: python scripts/bench_probes.py [--epochs 2] [--n-words 204577] [--loop-probes 2]
     [--shared-order] [--bf16] [--torch-threads 1] [--devices 1]
The last stdout line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import time
from pathlib import Path

import jax
import numpy as np

from xlmr_dynamics import probes

UPOS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
        "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
FULL_EWT_TRAIN_WORDS = 204_577  # UD_English-EWT r2.16 train; ../shared/data holds its first 120,452
EWT_TRAIN = (Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ud"
             / "UD_English-EWT" / "en_ewt-ud-train.conllu")


def read_upos(path: Path) -> np.ndarray:
    """UPOS indices of the word lines of a CoNLL-U file (skips multiword ranges, empty nodes)."""
    index = {t: i for i, t in enumerate(UPOS)}
    out = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            cols = line.rstrip("\n").split("\t")
            if "-" in cols[0] or "." in cols[0]:
                continue
            out.append(index[cols[3]])
    return np.asarray(out, np.int32)


def make_layer(y: np.ndarray, layer: int, layers: int, dim: int, num_classes: int, seed: int) -> np.ndarray:
    """float32 [N, D] features of one layer: unit Gaussian noise + a layer-dependent multiple of a
    class embedding (the class embedding is shared by all layers)."""
    emb = np.random.default_rng(seed).standard_normal((num_classes, dim), dtype=np.float32) / np.sqrt(dim)
    x = np.random.default_rng([seed, layer]).standard_normal((y.shape[0], dim), dtype=np.float32)
    x += (0.5 + 2.0 * layer / max(layers - 1, 1)) * emb[y] * np.float32(np.sqrt(dim) / 4)
    return x


def device_features(y, layers, dim, num_classes, seed, dtype) -> jax.Array:
    """[L, N, D] features in `probes.device_features` format (bf16 as uint16 bit patterns), built
    layer by layer in place on the device (donated updates) as `extract_features(on_device=True)`
    does in a sweep: host memory peaks at the features plus one float32 layer, never two copies."""
    import jax.numpy as jnp

    bf16 = dtype == "bfloat16"

    def set_layer(x, v, l):
        v = probes.bf16_bits(v) if bf16 else v
        return jax.lax.dynamic_update_index_in_dim(x, v, l, 0)

    put = jax.jit(set_layer, donate_argnums=0)
    x = jnp.zeros((layers, y.shape[0], dim), jnp.uint16 if bf16 else jnp.float32)
    for l in range(layers):
        x = put(x, make_layer(y, l, layers, dim, num_classes, seed), l)
    return x.block_until_ready()


def maxrss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def torch_loop(layer_features, y, units, *, epochs, batch_size, lr, num_classes):
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    y_t = torch.from_numpy(y.astype(np.int64))
    elapsed = 0.0
    for layer, seed in units:
        x = layer_features(layer)  # float32 [N, D]; made outside the timed region
        t0 = time.perf_counter()
        torch.manual_seed(seed)
        loader = DataLoader(TensorDataset(torch.from_numpy(x), y_t), batch_size=batch_size, shuffle=True)
        model = torch.nn.Linear(x.shape[1], num_classes)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        loss_fn = torch.nn.CrossEntropyLoss()
        for _ in range(epochs):
            for xb, yb in loader:
                opt.zero_grad()
                loss = loss_fn(model(xb), yb)
                loss.backward()
                opt.step()
        elapsed += time.perf_counter() - t0
    return elapsed


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--n-words", type=int, default=FULL_EWT_TRAIN_WORDS,
                    help="words (labels repeat cyclically past the 120,452 of the shipped truncated file)")
    ap.add_argument("--layers", type=int, default=13)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--loop-probes", type=int, default=2,
                    help="(layer, seed) units timed for each sequential baseline")
    ap.add_argument("--bf16", action="store_true", help="store features as bfloat16")
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="torch intra-op threads; 1 (default) is as fast on these tiny matmuls "
                         "and far more robust when other jobs share the 2 cores")
    ap.add_argument("--devices", type=int, default=1,
                    help="ProbeConfig.devices: spread the layers over this many local devices "
                         "(0 = all); on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N")
    ap.add_argument("--shared-order", action="store_true",
                    help="ProbeConfig(shuffle_per_seed=False): one minibatch order for all seeds")
    args = ap.parse_args()

    y_all = read_upos(EWT_TRAIN)
    y = np.resize(y_all, args.n_words)
    num_classes = len(UPOS)
    feature_dtype = "bfloat16" if args.bf16 else "float32"
    t0 = time.perf_counter()
    x_dev = device_features(y, args.layers, args.dim, num_classes, 0, feature_dtype)
    print(f"features {x_dev.shape} {feature_dtype} ({x_dev.nbytes / 2**30:.2f} GiB) in "
          f"{time.perf_counter() - t0:.1f}s; EWT train words {y_all.shape[0]}", flush=True)
    rss_after_features = maxrss_gb()

    # Sequential units spread over layers and seeds.
    units = [(int(l), int(s)) for l, s in zip(
        np.linspace(0, args.layers - 1, args.loop_probes).round(), range(args.loop_probes))]
    units = [(l, s % args.seeds) for l, s in units]
    n_probes = args.layers * args.seeds

    # torch first: once JAX's CPU thread pool is up, torch on the same 2 cores slows ~4x.
    import torch

    torch.set_num_threads(args.torch_threads)
    load_before = os.getloadavg()
    torch_s = torch_loop(lambda l: make_layer(y, l, args.layers, args.dim, num_classes, 0), y, units,
                         epochs=args.epochs, batch_size=args.batch_size,
                         lr=1e-3, num_classes=num_classes)
    torch_tp = len(units) * args.epochs / torch_s
    print(f"torch loop: {len(units)} probes in {torch_s:.1f}s -> {torch_tp:.2f} probe-epochs/s",
          flush=True)

    cfg = probes.ProbeConfig(batch_size=args.batch_size, max_epochs=args.epochs,
                             seeds=tuple(range(args.seeds)),
                             shuffle_per_seed=not args.shared_order, devices=args.devices)

    # JAX vmapped: warm-up (compiles the epoch and statistics steps), then timed run.
    t0 = time.perf_counter()
    probes.fit_probes(x_dev, y, num_classes, cfg=dataclass_replace(cfg, max_epochs=1))
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    fit = probes.fit_probes(x_dev, y, num_classes, cfg=cfg)
    jax.block_until_ready(fit.params)
    vmapped_s = time.perf_counter() - t0
    vmapped_tp = n_probes * args.epochs / vmapped_s
    print(f"jax vmapped: {n_probes} probes x {args.epochs} epochs in {vmapped_s:.1f}s "
          f"(+{compile_s:.1f}s warm-up incl. compile) -> {vmapped_tp:.2f} probe-epochs/s", flush=True)
    acc = probes.evaluate(probes.predict_probes(fit, x_dev), y, num_classes)["accuracy"]
    print("train accuracy per layer (seed 0):", np.round(acc[:, 0], 3).tolist(), flush=True)
    rss_after_vmapped = maxrss_gb()

    # JAX loop: one fit_probes call per (layer, seed); compile once on the first shape.
    one = probes.ProbeConfig(batch_size=args.batch_size, max_epochs=args.epochs, seeds=(0,))
    probes.fit_probes(x_dev[:1], y, num_classes, cfg=dataclass_replace(one, max_epochs=1))
    t0 = time.perf_counter()
    for layer, seed in units:
        f = probes.fit_probes(x_dev[layer:layer + 1], y, num_classes,
                              cfg=dataclass_replace(one, seeds=(seed,)))
        jax.block_until_ready(f.params)
    jax_loop_s = time.perf_counter() - t0
    jax_loop_tp = len(units) * args.epochs / jax_loop_s
    print(f"jax loop: {len(units)} probes in {jax_loop_s:.1f}s -> {jax_loop_tp:.2f} probe-epochs/s",
          flush=True)

    result = {
        "benchmark": "bench_probes",
        "settings": {
            "n_words": int(y.shape[0]), "dim": args.dim, "layers": args.layers,
            "seeds": args.seeds, "num_classes": num_classes, "epochs": args.epochs,
            "batch_size": args.batch_size, "feature_dtype": feature_dtype,
            "loop_probes_timed": units, "jax": jax.__version__, "torch": torch.__version__,
            "devices": [str(d) for d in jax.devices()], "torch_threads": torch.get_num_threads(),
            "standardize": cfg.standardize, "shuffle_per_seed": cfg.shuffle_per_seed,
            "probe_devices": fit.devices,
        },
        "jax_vmapped_s": vmapped_s,
        "jax_vmapped_compile_warmup_s": compile_s,
        "jax_vmapped_probe_epochs_per_s": vmapped_tp,
        "jax_loop_s": jax_loop_s,
        "jax_loop_probe_epochs_per_s": jax_loop_tp,
        "torch_loop_s": torch_s,
        "torch_loop_probe_epochs_per_s": torch_tp,
        "vmapped_train_accuracy_seed0": np.round(acc[:, 0], 4).tolist(),
        "peak_rss_gb": maxrss_gb(),
        "loadavg_1m_before_after": [load_before[0], os.getloadavg()[0]],
        "rss_after_features_gb": rss_after_features,
        "rss_after_vmapped_gb": rss_after_vmapped,
        "speedup_vs_torch_loop": vmapped_tp / torch_tp,
        "speedup_vs_jax_loop": vmapped_tp / jax_loop_tp,
    }
    print(json.dumps(result))


def dataclass_replace(cfg, **kw):
    import dataclasses

    return dataclasses.replace(cfg, **kw)


if __name__ == "__main__":
    main()
