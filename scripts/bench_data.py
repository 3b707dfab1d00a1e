"""Benchmark: sentences/s of load + tokenize + batch for UD English-EWT train (the data path).

The data path must never be the bottleneck: compare with bench_extract.py's base-size extraction
(hundreds of sentences/s on this machine). The tokenizer is trained first (time reported apart).

    python scripts/bench_data.py [--conllu PATH]

Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conllu", default=str(DATA / "ud" / "UD_English-EWT" / "en_ewt-ud-train.conllu"))
    ap.add_argument("--extract-sentences-per-s", type=float, default=None,
                    help="extraction throughput to compare with (from bench_extract.py)")
    args = ap.parse_args()

    from xlmr_dynamics import data as D
    from xlmr_dynamics.tokenizer import load_tokenizer, train_sentencepiece

    t = time.perf_counter()
    text = [" ".join(s.tokens) for s in D.load_ud(args.conllu)[:4000]]
    with tempfile.TemporaryDirectory() as tmp:
        tok = load_tokenizer(train_sentencepiece(text, Path(tmp), 8000))
    train_s = time.perf_counter() - t

    t0 = time.perf_counter()
    sents = D.load_ud(args.conllu)
    t1 = time.perf_counter()
    enc = D.encode_words(tok, [s.tokens for s in sents])
    t2 = time.perf_counter()
    plan = D.make_batches(enc.segments, tokens_per_batch=8192, pack=True)
    batches = list(plan)
    t3 = time.perf_counter()
    total = t3 - t0
    rec = {
        "benchmark": "data", "file": Path(args.conllu).name, "sentences": len(sents), "words": enc.num_words,
        "subwords": enc.stats["subwords"], "tokenizer_train_s": round(train_s, 2),
        "load_s": round(t1 - t0, 3), "tokenize_s": round(t2 - t1, 3), "batch_s": round(t3 - t2, 3),
        "sentences_per_s": round(len(sents) / total, 1), "batches": len(batches),
        "padding_fraction": round(plan.padding_fraction, 4), "shapes": sorted(map(list, plan.shapes)),
    }
    if args.extract_sentences_per_s:
        rec["speedup_vs_extraction"] = round(rec["sentences_per_s"] / args.extract_sentences_per_s, 1)
    print(json.dumps(rec))


if __name__ == "__main__":
    main()
