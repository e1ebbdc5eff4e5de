"""Thread settings (``loclip.core.threads``): the cores a process may use, the intra-op count chosen from them,
who overrides it, the OpenMP wait policy the commands set before torch loads, and the trainers applying it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from loclip.core.threads import (
    ThreadSettingError,
    available_cores,
    cgroup_cpus,
    plan_threads,
    use_threads,
)


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.mark.parametrize(
    ("files", "expected"),
    [
        ({"cpu.max": "150000 100000\n"}, 1.5),
        ({"cpu.max": "max 100000\n"}, None),
        ({"cpu/cpu.cfs_quota_us": "300000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 3.0),
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, None),
        ({"cpu.max": "garbage\n"}, None),
        ({}, None),
    ],
)
def test_cgroup_quota_v1_and_v2(tmp_path: Path, files: dict[str, str], expected: float | None) -> None:
    for name, text in files.items():
        write(tmp_path / name, text)
    assert cgroup_cpus(tmp_path, tmp_path / "no-proc-cgroup") == expected


def test_cgroup_quota_of_the_process_own_group_wins(tmp_path: Path) -> None:
    """Outside a container the quota sits in the process's nested group (``/proc/self/cgroup`` names it)."""
    write(tmp_path / "cpu.max", "max 100000\n")
    write(tmp_path / "user.slice" / "job" / "cpu.max", "50000 100000\n")
    write(tmp_path / "proc-cgroup", "0::/user.slice/job\n")
    assert cgroup_cpus(tmp_path, tmp_path / "proc-cgroup") == 0.5
    write(tmp_path / "cpu,cpuacct" / "batch" / "cpu.cfs_quota_us", "200000\n")
    write(tmp_path / "cpu,cpuacct" / "batch" / "cpu.cfs_period_us", "100000\n")
    write(tmp_path / "proc-cgroup", "4:memory:/batch\n3:cpu,cpuacct:/batch\n")
    assert cgroup_cpus(tmp_path, tmp_path / "proc-cgroup") == 2.0


def test_available_cores_caps_by_quota_and_shares_among_local_ranks(tmp_path: Path) -> None:
    affinity = len(os.sched_getaffinity(0))
    none = tmp_path / "none"
    assert available_cores({}, none, none) == affinity
    write(tmp_path / "cpu.max", "50000 100000\n")  # half a core: still one thread
    assert available_cores({}, tmp_path, none) == 1
    write(tmp_path / "cpu.max", f"{(affinity + 1) * 100000 + 50000} 100000\n")  # above affinity: affinity
    assert available_cores({}, tmp_path, none) == affinity
    assert available_cores({"LOCAL_WORLD_SIZE": str(affinity)}, none, none) == 1
    assert available_cores({"LOCAL_WORLD_SIZE": str(4 * affinity)}, none, none) == 1
    assert available_cores({"LOCAL_SIZE": str(affinity)}, none, none) == 1  # the deepspeed launcher's name
    with pytest.raises(ThreadSettingError, match="LOCAL_WORLD_SIZE must be a positive integer, got 'two'"):
        available_cores({"LOCAL_WORLD_SIZE": "two"}, none, none)


def test_plan_counts_loader_workers_against_the_cores() -> None:
    assert plan_threads(None, 1, env={}, cores=2).intra_op == 1
    assert plan_threads(None, 0, env={}, cores=2).intra_op == 2
    assert plan_threads(None, 4, env={}, cores=16).intra_op == 12
    assert plan_threads(None, 6, env={}, cores=2).intra_op == 1  # never below one
    plan = plan_threads(None, 1, env={}, cores=8)
    assert (plan.budget, plan.loader_workers, plan.source) == (8, 1, "the cores minus the loader workers")


def test_explicit_settings_are_honoured_field_first() -> None:
    assert plan_threads(None, 1, env={"OMP_NUM_THREADS": "3"}, cores=2).intra_op == 3
    plan = plan_threads(5, 1, env={"OMP_NUM_THREADS": "3"}, cores=2)
    assert (plan.intra_op, plan.source) == (5, "run.threads")


@pytest.mark.parametrize("bad", ["0", "-1", "two", ""])
def test_bad_omp_num_threads_is_named(bad: str) -> None:
    with pytest.raises(ThreadSettingError, match=f"OMP_NUM_THREADS must be a positive integer, got '{bad}'"):
        plan_threads(None, env={"OMP_NUM_THREADS": bad}, cores=2)


@pytest.mark.parametrize("bad", [0, -2, True, 1.5])
def test_bad_requested_count_is_named(bad: object) -> None:
    with pytest.raises(ThreadSettingError, match="--threads must be a positive integer"):
        plan_threads(bad, env={}, cores=2, field="--threads")  # type: ignore[arg-type]


def test_wait_policy_is_reported() -> None:
    assert plan_threads(None, env={}, cores=1).wait.startswith("libgomp default")
    assert plan_threads(None, env={"OMP_WAIT_POLICY": "passive"}, cores=1).wait == "PASSIVE"
    assert plan_threads(None, env={"GOMP_SPINCOUNT": "1000"}, cores=1).wait.startswith("spin 1000")


def test_use_threads_sets_torch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert use_threads(1).intra_op == torch.get_num_threads() == 1
    expected = max(1, available_cores() - 1)
    assert use_threads(None, loader_workers=1).intra_op == torch.get_num_threads() == expected


ENV_PROBE = "import os, sys, {module}; print(os.environ.get('OMP_WAIT_POLICY'), 'torch' in sys.modules)"


@pytest.mark.parametrize(
    ("module", "given", "expected"),
    [
        ("loclip.cli.pretrain", {}, "PASSIVE"),
        ("loclip.cli.evaluate", {}, "PASSIVE"),
        ("loclip.demo.cli", {}, "PASSIVE"),
        ("loclip.cli.finetune", {"OMP_WAIT_POLICY": "ACTIVE"}, "ACTIVE"),
        ("loclip.cli.label", {"GOMP_SPINCOUNT": "1000"}, "None"),
    ],
)
def test_commands_set_the_wait_policy_before_torch_loads(module: str, given: dict, expected: str) -> None:
    """The policy only works if set before libgomp loads with torch: a command module imports torch, so the
    variable must already be there when its import finishes (the user's own choice left alone)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    env.update(given)
    probe = ENV_PROBE.format(module=module)
    out = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.split() == [expected, "True"]
