"""Benchmark: all-layer extraction of real tokens/s at the XLM-R base config on EWT train sentences.

JAX (sequence-packed batches by default, else length buckets; jitted, pooled on device) vs two HF torch `XLMRobertaModel(
output_hidden_states=True)` baselines on the same thread count and the same random weights:
(a) batches of 32 in file order padded to the longest (as a user would write it), and
(b) batches of 32 after sorting by length (the strong baseline). Also prints the achieved GFLOP/s on
real tokens against the machine's float32 matmul peak measured in the same run.

    python scripts/bench_extract.py [--sentences 1000] [--threads 2]

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


def matmul_peak_gflops(n: int = 2048, reps: int = 10) -> float:
    import jax
    import jax.numpy as jnp

    a = jnp.ones((n, n), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    f(a).block_until_ready()
    t = time.perf_counter()
    for _ in range(reps):
        f(a).block_until_ready()
    return 2 * n**3 * reps / (time.perf_counter() - t) / 1e9


def flops_per_sequence(cfg, length: int) -> float:
    """Forward FLOPs of the encoder (no MLM head) on one sequence of `length` real tokens."""
    d, f, layers = cfg.hidden_size, cfg.intermediate_size, cfg.num_layers
    per_token = 2 * (4 * d * d + 2 * d * f)
    attention = 2 * 2 * length * length * d
    return layers * (per_token * length + attention)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--tokens-per-batch", type=int, default=4096)
    ap.add_argument("--no-pack", action="store_true", help="bucketed batches without sequence packing")
    ap.add_argument("--pack-len", type=int, default=128)
    args = ap.parse_args()

    import numpy as np
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaModel

    from xlmr_dynamics import data as D
    from xlmr_dynamics import extract as E
    from xlmr_dynamics import sharding as S
    from xlmr_dynamics.convert import from_state_dict
    from xlmr_dynamics.extract import extract_features
    from xlmr_dynamics.model import XLMRConfig
    from xlmr_dynamics.tokenizer import load_tokenizer, train_sentencepiece

    torch.set_num_threads(args.threads)
    sents = D.load_ud(DATA / "ud" / "UD_English-EWT" / "en_ewt-ud-train.conllu")[: args.sentences]
    words = [s.tokens for s in sents]
    with tempfile.TemporaryDirectory() as tmp:
        tok = load_tokenizer(train_sentencepiece([" ".join(w) for w in words[:5000]] + D.load_text(
            DATA / "text" / "tatoeba" / "tatoeba.fra-eng.eng"), Path(tmp), 8000, seed=0))
        enc_words = D.encode_words(tok, words)
    cfg = XLMRConfig()
    hf_cfg = XLMRobertaConfig(vocab_size=cfg.vocab_size, hidden_size=768, num_hidden_layers=12,
                              num_attention_heads=12, intermediate_size=3072, max_position_embeddings=514,
                              type_vocab_size=1, layer_norm_eps=1e-5)
    torch.manual_seed(0)
    tm = XLMRobertaModel(hf_cfg, add_pooling_layer=False).eval()
    encoder = from_state_dict({k: v.numpy() for k, v in tm.state_dict().items()}, fmt="hf",
                              hparams=dict(num_heads=12))

    # ---- JAX: packed (or bucketed) batches; every shape is compiled first (reported separately)
    plan = D.make_batches(enc_words.segments, tokens_per_batch=args.tokens_per_batch, pack=not args.no_pack,
                          pack_len=args.pack_len, shrink_last=True)
    batches = list(plan)
    real_tokens = int(sum(int(b["attention_mask"].sum()) for b in batches))
    shapes = {}
    for b in batches:
        shapes.setdefault(b["input_ids"].shape, b)
    mesh = S.make_mesh()

    def jax_run(enc) -> tuple[float, float]:
        t0 = time.perf_counter()
        params = S.put_replicated(enc.params, mesh)
        for b in shapes.values():
            arrays = S.global_batch(b, mesh)
            E._extract_step(params, arrays, cfg=enc.config, pooling="first", keep=None,
                            out_dtype="float32")[0].block_until_ready()
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        feats = extract_features(enc, batches, enc_words.num_words, mesh=mesh)
        run_s = time.perf_counter() - t0
        del feats
        return compile_s, run_s

    compile_s, jax_s = jax_run(encoder)
    bf16_compile_s, jax_bf16_s = jax_run(encoder.with_dtype("bfloat16"))

    # ---- torch baselines: batches of 32, first-subword pooling on the host
    seqs = list(enc_words.segments)

    def torch_run(order, bf16: bool = False) -> tuple[float, float]:
        t0 = time.perf_counter()
        pad = 0
        for i in range(0, len(order), 32):
            chunk = [seqs[j] for j in order[i:i + 32]]
            n = max(len(s.ids) for s in chunk)
            ids = np.full((len(chunk), n), 1, np.int64)
            for r, s in enumerate(chunk):
                ids[r, :len(s.ids)] = s.ids
            mask = (ids != 1).astype(np.int64)
            pad += int((1 - mask).sum())
            with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                out = tm(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                         output_hidden_states=True)
            hs = torch.stack(out.hidden_states).float().numpy()
            for r, s in enumerate(chunk):
                _ = hs[:, r, s.word_start]
        return time.perf_counter() - t0, pad

    by_length = sorted(range(len(seqs)), key=lambda j: len(seqs[j].ids))
    file_s, file_pad = torch_run(list(range(len(seqs))))
    sorted_s, sorted_pad = torch_run(by_length)
    sorted_bf16_s, _ = torch_run(by_length, bf16=True)

    peak = matmul_peak_gflops()
    flops = sum(flops_per_sequence(cfg, len(s.ids)) for s in seqs)
    jax_tps = real_tokens / jax_s
    rec = {
        "benchmark": "extract",
        "config": "xlmr-base (12x768, vocab 250002); speedup_vs_* fields are float32 vs float32",
        "sentences": len(words),
        "segments": len(seqs),
        "real_tokens": real_tokens,
        "threads": args.threads,
        "jax_compile_s": round(compile_s, 2),
        "jax_bf16_compile_s": round(bf16_compile_s, 2),
        "jax_shapes": len(shapes),
        "jax_packing": not args.no_pack,
        "jax_shrink_last": True,
        "jax_padding_fraction": round(1 - real_tokens / sum(b["input_ids"].size for b in batches), 4),
        "jax_tokens_per_s": round(jax_tps, 1),
        "torch_file_order_tokens_per_s": round(real_tokens / file_s, 1),
        "torch_file_order_padding_fraction": round(file_pad / (file_pad + real_tokens), 4),
        "torch_sorted_tokens_per_s": round(real_tokens / sorted_s, 1),
        "torch_sorted_padding_fraction": round(sorted_pad / (sorted_pad + real_tokens), 4),
        "jax_bf16_tokens_per_s": round(real_tokens / jax_bf16_s, 1),
        "torch_sorted_bf16_autocast_tokens_per_s": round(real_tokens / sorted_bf16_s, 1),
        "jax_gflops_real_tokens": round(flops / jax_s / 1e9, 1),
        "matmul_peak_gflops": round(peak, 1),
        "fraction_of_peak": round(flops / jax_s / 1e9 / peak, 3),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
        "speedup_vs_torch_file_order": round(file_s / jax_s, 2),
        "speedup_vs_torch_sorted": round(sorted_s / jax_s, 2),
        # bfloat16 compute (float32 accumulation) on both sides: JAX bf16 vs torch autocast bf16 ...
        "bf16_speedup_vs_torch_sorted_bf16": round(sorted_bf16_s / jax_bf16_s, 2),
        # ... and JAX bf16 against the float32 torch baselines a user would run by default.
        "bf16_speedup_vs_torch_file_order": round(file_s / jax_bf16_s, 2),
        "bf16_speedup_vs_torch_sorted": round(sorted_s / jax_bf16_s, 2),
    }
    print(json.dumps(rec))


if __name__ == "__main__":
    sys.exit(main())
