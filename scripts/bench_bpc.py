"""Benchmark: BPC masked tokens/s at the XLM-R base config, JAX `bpc_rows` vs an HF torch loop.

Both score the same masked copies (scheme "each": one copy per subword) of the same sentences, in the
same padded `[B, T]` batches, with the same random weights (an HF `XLMRobertaForMaskedLM`, converted
with `xlmr_dynamics.convert.from_state_dict`). The torch loop is what an HF user writes:
`model(input_ids, attention_mask).logits`, log-softmax, gather the gold id at the masked position.
Sentence lengths follow Tatoeba French (real text); ids are random (no XLM-R tokenizer here), which
does not change the cost. Threads: torch = JAX's CPU count.

    python scripts/bench_bpc.py [--sentences 12] [--tokens-per-batch 512]

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"


class RandomIdTokenizer:
    """Stand-in tokenizer: line i -> a fixed random id list; every piece covers 3 characters."""

    bos_id, pad_id, eos_id, unk_id = 0, 1, 2, 3

    def __init__(self, vocab_size: int, lengths, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.vocab_size = vocab_size
        self.mask_id = vocab_size - 1
        self.ids = {str(i): rng.integers(4, vocab_size - 1, size=n).tolist() for i, n in enumerate(lengths)}

    def encode(self, text):
        return self.ids[text]

    def id_to_piece(self, i):
        return "\u2581ab" if i % 3 == 0 else "abc"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sentences", type=int, default=12)
    ap.add_argument("--tokens-per-batch", type=int, default=512)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()

    import jax
    import torch
    from transformers import XLMRobertaConfig, XLMRobertaForMaskedLM

    from xlmr_dynamics import bpc as B
    from xlmr_dynamics.convert import from_state_dict

    torch.set_num_threads(args.threads)
    # subword lengths ~ 1.4 x whitespace words of real French sentences
    text = (DATA / "text" / "tatoeba" / "tatoeba.fra-eng.fra").read_text(encoding="utf-8").splitlines()
    lengths = [max(2, int(round(1.4 * len(t.split())))) for t in text[: args.sentences]]
    hf_cfg = XLMRobertaConfig(vocab_size=250002, hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                              intermediate_size=3072, max_position_embeddings=514, pad_token_id=1,
                              bos_token_id=0, eos_token_id=2, type_vocab_size=1, layer_norm_eps=1e-5,
                              hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    torch.manual_seed(0)
    model = XLMRobertaForMaskedLM(hf_cfg).eval()
    with torch.no_grad():
        model.roberta.embeddings.token_type_embeddings.weight.zero_()
    enc = from_state_dict({k: v.numpy().copy() for k, v in model.state_dict().items()}, fmt="hf",
                          hparams=dict(num_heads=12))
    tok = RandomIdTokenizer(250002, lengths)
    lines = {"fr": [str(i) for i in range(len(lengths))]}
    kw = dict(tokens_per_batch=args.tokens_per_batch, max_len=512)

    t0 = time.perf_counter()
    B.bpc_rows(enc, tok, lines, **kw)  # compile + first run
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    (row,) = B.bpc_rows(enc, tok, lines, **kw)
    jax_s = time.perf_counter() - t0
    n = row["n"]

    # torch: same masked copies, same batches
    rows, _ = B.masked_copies(tok, lines["fr"], max_len=512)
    batches = list(B._batches(rows, max_len=512, tokens_per_batch=args.tokens_per_batch, pad_id=1))
    with torch.inference_mode():  # warm-up
        model(input_ids=torch.from_numpy(batches[0][0]).long(), attention_mask=torch.from_numpy(batches[0][1]).long())
    t0 = time.perf_counter()
    bits = 0.0
    with torch.inference_mode():
        for ids, mask, pos, gold, w in batches:
            logits = model(input_ids=torch.from_numpy(ids).long(), attention_mask=torch.from_numpy(mask).long()).logits
            x = logits[torch.arange(ids.shape[0]), torch.from_numpy(pos[:, 0]).long()]
            lp = torch.log_softmax(x.double(), -1)[torch.arange(ids.shape[0]), torch.from_numpy(gold[:, 0]).long()]
            bits -= float((lp.numpy() * w[:, 0]).sum()) / math.log(2)
    torch_s = time.perf_counter() - t0
    torch_bpc = bits / row["extra"]["chars"]
    out = {
        "bench": "bpc", "config": "XLMRConfig() base, random weights", "sentences": len(lengths),
        "masked_tokens": n, "tokens_per_batch": args.tokens_per_batch, "threads": args.threads,
        "jax_devices": len(jax.devices()), "jax_first_run_s": round(first, 3), "jax_s": round(jax_s, 3),
        "torch_s": round(torch_s, 3), "jax_masked_tokens_per_s": round(n / jax_s, 2),
        "torch_masked_tokens_per_s": round(n / torch_s, 2), "bpc_jax": row["value"], "bpc_torch": torch_bpc,
        "bpc_abs_diff": abs(row["value"] - torch_bpc), "speedup_vs_torch": round(torch_s / jax_s, 3),
    }
    out["load_average_1m_at_end"] = os.getloadavg()[0]  # other jobs share these 2 cores
    print(json.dumps(out))


if __name__ == "__main__":
    main()
