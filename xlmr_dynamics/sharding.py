"""Device mesh, shardings and multi-process setup: the only module that names mesh axes.

Owns: `make_mesh`, the logical-axis table (`LOGICAL_RULES`: batch -> "data"; everything else
replicated), `sharding_for`, `global_batch` (process-local numpy batch -> global jax.Array), `to_host`
(gather a possibly multi-host array to every host as numpy) and `init_distributed`.

Data parallelism only: params replicated, the batch axis split over every device of every process.
The same code runs on 1 CPU, 8 simulated CPU devices, one GPU, or a multi-host TPU pod.
"""

from __future__ import annotations

import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

DATA_AXIS = "data"
LOGICAL_RULES = {"batch": DATA_AXIS}  # logical dim -> mesh axis; unnamed dims are replicated


def make_mesh(num_devices: int | None = None) -> jax.sharding.Mesh:
    """A 1-D data-parallel mesh over all (or the first `num_devices`) global devices.

    Auto axis types: inputs carry explicit NamedShardings (batch split, params replicated) and the
    compiler propagates them through the model, whose code stays sharding-agnostic (Explicit mode
    would need an out_sharding on every gather, e.g. the embedding lookup).
    """
    n = num_devices or jax.device_count()
    devices = jax.devices()[:n]
    return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices)


def sharding_for(mesh, *logical_dims: str | None) -> NamedSharding:
    """NamedSharding for an array whose dims have these logical names (None = replicated)."""
    return NamedSharding(mesh, P(*(LOGICAL_RULES.get(d) if d else None for d in logical_dims)))


def replicated(mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def batch_multiple(mesh) -> int:
    """Global batch sizes must be a multiple of this (pad with masked rows, never drop)."""
    return mesh.shape[DATA_AXIS]


def local_batch_multiple(mesh) -> int:
    """Per-process batch rows must be a multiple of this (this process's devices in the mesh)."""
    return max(1, mesh.shape[DATA_AXIS] // jax.process_count())


def global_batch(batch: dict[str, np.ndarray], mesh) -> dict[str, jax.Array]:
    """Turn this process's rows of a batch into global arrays sharded on the leading (batch) axis."""
    out = {}
    for k, v in batch.items():
        v = np.asarray(v)
        sharding = sharding_for(mesh, "batch", *([None] * (v.ndim - 1)))
        out[k] = jax.make_array_from_process_local_data(sharding, v)
    return out


def to_host(x) -> np.ndarray:
    """The full value of a (possibly multi-host sharded) array as numpy, on every process."""
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    if x.is_fully_replicated:  # every process already holds the whole value
        return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def put_replicated(tree, mesh):
    return jax.device_put(tree, replicated(mesh))


_SLURM_STEP = ("SLURM_JOB_ID", "SLURM_STEP_NODELIST", "SLURM_NTASKS", "SLURM_PROCID", "SLURM_LOCALID")


def cluster_detected(env) -> bool:
    """Whether `env` describes a multi-process job that `jax.distributed.initialize()` can set up
    by itself: a TPU pod, a Slurm job step (`srun`) or an Open MPI launch, with more than one
    process for the last two. An `salloc` shell (SLURM_JOB_ID only) or a 1-task step is not one."""
    if "TPU_WORKER_HOSTNAMES" in env or "MEGASCALE_COORDINATOR_ADDRESS" in env:
        return True
    if all(k in env for k in _SLURM_STEP):
        return int(env["SLURM_NTASKS"]) > 1
    if "OMPI_MCA_orte_hnp_uri" in env:
        return int(env.get("OMPI_COMM_WORLD_SIZE", "1")) > 1
    return False


def init_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                     process_id: int | None = None, local_device_ids=None) -> None:
    """Initialise multi-process JAX once, before any computation.

    With no arguments: auto-detect on TPU pods, Slurm and Open MPI (jax does this); on a single
    machine with none of those, do nothing. Explicit arguments (or `JAX_COORDINATOR_ADDRESS`,
    `JAX_NUM_PROCESSES`, `JAX_PROCESS_ID`) are used as given, e.g. two processes on loopback.
    """
    coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
    if num_processes is None and os.environ.get("JAX_NUM_PROCESSES"):
        num_processes = int(os.environ["JAX_NUM_PROCESSES"])
    if process_id is None and os.environ.get("JAX_PROCESS_ID"):
        process_id = int(os.environ["JAX_PROCESS_ID"])
    explicit = coordinator_address is not None
    if not explicit and not cluster_detected(os.environ):
        return
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, local_device_ids=local_device_ids)
