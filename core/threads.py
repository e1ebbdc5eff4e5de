"""How many CPU threads a loclip process uses, and how its idle threads wait: chosen once, for the work at hand.

On a CPU shared with anything else (a browser, the demo, a second run), torch's defaults oversubscribe: one
intra-op thread per core, plus the data loader's worker processes, and OpenMP threads that spin for about 3 ms
after every parallel region (libgomp's default). Every parallel region waits for its slowest thread, so one
busy neighbour on a 2-core machine cut the pretraining quickstart to a fifth of its speed
(``docs/benchmarks.md``, *Shared CPU*). The rule, in one place:

- **budget**: the cores this process may use: its CPU affinity, capped by a cgroup CPU quota (containers,
  ``docker --cpus``), shared among the ranks on this node (``LOCAL_WORLD_SIZE`` from torchrun, ``LOCAL_SIZE``
  from the ``deepspeed`` launcher);
- **intra-op threads**: ``run.threads`` (or a command's ``--threads``) when given; else ``OMP_NUM_THREADS``
  when set; else the budget minus the data loader's worker processes (each counted as one core), at least 1;
- **wait policy**: ``OMP_WAIT_POLICY=PASSIVE`` (idle threads sleep instead of spinning against a neighbour)
  unless ``OMP_WAIT_POLICY`` or ``GOMP_SPINCOUNT`` is set. libgomp reads it once, when torch loads, so the
  commands set it before importing torch (``prepare_process``); a script using the library sets it itself.
"""

from __future__ import annotations

import logging
import math
import os
import sys
from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("loclip.threads")

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")
WAIT_VARS = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")
RANK_VARS = ("LOCAL_WORLD_SIZE", "LOCAL_SIZE")  # processes on this node: torchrun's, the deepspeed launcher's


def prepare_process(env: MutableMapping[str, str] = os.environ) -> None:
    """Set the passive OpenMP wait policy for this process, unless the user chose one or torch is already
    loaded (then it would have no effect; ``ThreadPlan.wait`` says what is in force). Commands call it before
    their first import of torch."""
    if "torch" in sys.modules or any(name in env for name in WAIT_VARS):
        return
    env["OMP_WAIT_POLICY"] = "PASSIVE"


def wait_policy(env: Mapping[str, str] = os.environ) -> str:
    """The OpenMP wait policy in force, in words (as far as the environment tells)."""
    if "GOMP_SPINCOUNT" in env:
        return f"spin {env['GOMP_SPINCOUNT']} (GOMP_SPINCOUNT)"
    if "OMP_WAIT_POLICY" in env:
        return env["OMP_WAIT_POLICY"].upper()
    return "libgomp default (spins about 3 ms)"


def _cgroup_dirs(root: Path, proc_cgroup: Path) -> list[tuple[Path, Path | None]]:
    """(quota file, period file or ``None`` for v2's one-line ``cpu.max``) candidates, most specific first:
    this process's own cgroup (from ``/proc/self/cgroup``), then the root a container sees."""
    own: list[tuple[Path, Path | None]] = []
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        lines = []
    for line in lines:
        _, controllers, path = line.split(":", 2) if line.count(":") >= 2 else ("", "", "")
        rel = path.lstrip("/")
        if controllers == "" and path:
            own.append((root / rel / "cpu.max", None))
        elif "cpu" in controllers.split(","):
            base = root / controllers
            own.append((base / rel / "cpu.cfs_quota_us", base / rel / "cpu.cfs_period_us"))
    v1 = root / "cpu"
    return [*own, (root / "cpu.max", None), (v1 / "cpu.cfs_quota_us", v1 / "cpu.cfs_period_us")]


def cgroup_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """The CPU quota of this process's cgroup in cores (``cpu.max`` of cgroup v2, ``cpu.cfs_quota_us`` /
    ``cpu.cfs_period_us`` of v1), or ``None`` when there is none or it cannot be read."""
    for quota_file, period_file in _cgroup_dirs(root, proc_cgroup):
        try:
            if period_file is None:
                quota_text, _, period_text = quota_file.read_text().strip().partition(" ")
            else:
                quota_text, period_text = quota_file.read_text().strip(), period_file.read_text().strip()
            if quota_text in ("max", "-1"):
                return None
            quota, period = float(quota_text), float(period_text)
        except (OSError, ValueError):
            continue
        if quota > 0 and period > 0:
            return quota / period
    return None


def available_cores(
    env: Mapping[str, str] = os.environ, root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP
) -> int:
    """This process's share of the cores it may run on: affinity, capped by the cgroup quota (rounded down: a
    thread on a fraction of a core waits for the rest), divided among the node's ranks (``RANK_VARS``); at
    least 1."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpus(root, proc_cgroup)
    if quota is not None:
        cores = min(cores, max(1, math.floor(quota)))
    name = next((n for n in RANK_VARS if n in env), None)
    ranks = _positive_int(env[name], name) if name else 1
    return max(1, cores // ranks)


class ThreadSettingError(ValueError):
    """A thread setting (a field or an environment variable) that is not a positive integer."""


@dataclass(frozen=True)
class ThreadPlan:
    """What a process uses: ``intra_op`` torch threads, beside ``loader_workers`` worker processes, within
    ``budget`` cores; ``source`` says who chose the count, ``wait`` the OpenMP wait policy."""

    intra_op: int
    loader_workers: int
    budget: int
    source: str
    wait: str

    def describe(self) -> str:
        workers = f" + {self.loader_workers} loader worker(s)" if self.loader_workers else ""
        return (
            f"{self.intra_op} intra-op thread(s){workers} on {self.budget} available core(s) "
            f"(from {self.source}); OpenMP wait: {self.wait}"
        )


def plan_threads(
    requested: int | None,
    loader_workers: int = 0,
    env: Mapping[str, str] = os.environ,
    cores: int | None = None,
    field: str = "run.threads",
) -> ThreadPlan:
    """The thread plan (rule in the module docstring). ``requested`` is the recipe's or command's setting
    (``field`` names it in messages), ``None`` for automatic; ``cores`` overrides ``available_cores()``."""
    budget = available_cores(env) if cores is None else cores
    if requested is not None:
        if isinstance(requested, bool) or not isinstance(requested, int) or requested < 1:
            raise ThreadSettingError(f"{field} must be a positive integer, got {requested!r}")
        intra, source = requested, field
    elif "OMP_NUM_THREADS" in env:
        intra, source = _positive_int(env["OMP_NUM_THREADS"], "OMP_NUM_THREADS"), "OMP_NUM_THREADS"
    else:
        intra, source = max(1, budget - loader_workers), "the cores minus the loader workers"
    return ThreadPlan(intra, loader_workers, budget, source, wait_policy(env))


def use_threads(
    requested: int | None, loader_workers: int = 0, field: str = "run.threads", logger: logging.Logger = log
) -> ThreadPlan:
    """Plan (``plan_threads``) and apply: set torch's intra-op threads for this process, and say so."""
    import torch

    plan = plan_threads(requested, loader_workers, field=field)
    torch.set_num_threads(plan.intra_op)
    logger.info("threads: %s", plan.describe())
    if plan.source.startswith("the cores") and loader_workers >= plan.budget:
        logger.warning(
            "data.num_workers=%d loader worker(s) alone fill the %d available core(s); fewer would leave the "
            "training step room",
            loader_workers,
            plan.budget,
        )
    return plan


def _positive_int(text: str, name: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ThreadSettingError(f"{name} must be a positive integer, got {text!r}")
    return value
