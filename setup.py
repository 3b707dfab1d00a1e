"""Install xlmr-dynamics: `pip install -e ".[test]"` (see README)."""
from setuptools import find_packages, setup

setup(
    name="xlmr-dynamics",
    version="0.1.0",
    description="JAX/Flax toolkit measuring when a multilingual LM learns what it knows "
    "(Blevins et al. 2022 pretraining-dynamics study, reproduced).",
    python_requires=">=3.11",
    packages=find_packages(include=["xlmr_dynamics", "xlmr_dynamics.*"]),
    include_package_data=True,
    package_data={"xlmr_dynamics": ["demo_data/**/*", "demo_data/*"]},
    install_requires=[
        "jax>=0.10.2",
        "flax>=0.12.8",
        "optax>=0.2.8",
        "orbax-checkpoint>=0.12.8",
        "ml-collections>=1.1.0",
        "numpy>=2.0",
        "safetensors>=0.6",
        "sentencepiece>=0.2.0",
        "transformers>=5.0",
        "tensorflow-datasets>=4.9.10",
        "array-record>=0.8",
        "conllu>=6.0",
        "importlib-resources>=6.0",
        "pandas>=2.2",
        "pyarrow>=18",
        "matplotlib>=3.9",
        "scipy>=1.13",
        "tqdm>=4.66",
    ],
    extras_require={
        # torch is a *reference only* (tests and benchmarks); exactly this CPU wheel.
        "test": [
            "pytest>=8",
            "torch==2.13.0",
            "scikit-learn>=1.5",
            "omegaconf>=2.3",  # only to build fairseq-style `cfg` fixtures; loading never imports it
        ],
    },
    entry_points={"console_scripts": ["xlmr-dynamics=xlmr_dynamics.cli:main"]},
)
