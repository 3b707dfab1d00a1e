"""xlmr-dynamics: when does a multilingual LM learn what it knows? (JAX/Flax).

Public entry points: `load_encoder` (fairseq / Hugging Face / converted checkpoints -> `Encoder`)
and `load_tokenizer` (XLM-R SentencePiece in fairseq layout, or an HF tokenizer directory). Both
are imported lazily, so `xlmr_dynamics.results` / `analysis` / `report` work without JAX.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "load_encoder":
        from xlmr_dynamics.convert import load_encoder

        return load_encoder
    if name == "load_tokenizer":
        from xlmr_dynamics.tokenizer import load_tokenizer

        return load_tokenizer
    raise AttributeError(f"module 'xlmr_dynamics' has no attribute {name!r}")
