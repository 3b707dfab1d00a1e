"""xlmr-dynamics: when does a multilingual LM learn what it knows? (JAX/Flax)."""
__version__ = "0.1.0"
