"""Sharding helpers: when multi-process JAX is initialised automatically."""

import jax
import pytest

from xlmr_dynamics import sharding as S

SLURM_STEP = {"SLURM_JOB_ID": "12345", "SLURM_STEP_NODELIST": "node[1-2]", "SLURM_PROCID": "0",
              "SLURM_LOCALID": "0"}


@pytest.mark.parametrize("env, expected", [
    ({}, False),
    ({"SLURM_JOB_ID": "12345"}, False),  # an salloc shell: jax could not find the coordinator
    (dict(SLURM_STEP, SLURM_NTASKS="1"), False),  # a one-task srun step
    (dict(SLURM_STEP, SLURM_NTASKS="4"), True),
    ({"OMPI_COMM_WORLD_SIZE": "1"}, False),
    ({"OMPI_COMM_WORLD_SIZE": "2"}, False),  # Open MPI 5 has no orte URI: jax cannot set it up
    ({"OMPI_MCA_orte_hnp_uri": "1531576320.0;tcp://10.96.0.1:34911", "OMPI_COMM_WORLD_SIZE": "2"}, True),
    ({"TPU_WORKER_HOSTNAMES": "t0,t1"}, True),
])
def test_cluster_detected(env, expected):
    assert S.cluster_detected(env) is expected


def test_init_distributed_is_a_no_op_in_an_salloc_shell(monkeypatch):
    for k in list(SLURM_STEP) + ["SLURM_NTASKS", "OMPI_MCA_orte_hnp_uri", "OMPI_COMM_WORLD_SIZE",
                                 "TPU_WORKER_HOSTNAMES", "MEGASCALE_COORDINATOR_ADDRESS",
                                 "JAX_COORDINATOR_ADDRESS"]:
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SLURM_JOB_ID", "12345")

    def fail(**kw):
        raise AssertionError(f"initialize called with {kw}")

    monkeypatch.setattr(jax.distributed, "initialize", fail)
    S.init_distributed()
