"""xlmr-dynamics: when does a multilingual LM learn what it knows? (JAX/Flax).

Public entry points: `load_encoder` (fairseq / Hugging Face / converted checkpoints -> `Encoder`)
and `load_tokenizer` (XLM-R SentencePiece in fairseq layout, or an HF tokenizer directory).
"""

__version__ = "0.1.0"

from xlmr_dynamics.convert import load_encoder  # noqa: E402,F401


def load_tokenizer(path):
    """See `xlmr_dynamics.tokenizer.load_tokenizer`."""
    from xlmr_dynamics.tokenizer import load_tokenizer as _load

    return _load(path)
