"""Which runs a replay can re-execute bit for bit here, and why not the others (exit 4, saying why).

A checkpoint's contents depend on more than the config and the data: the device and its kernels, and on the CPU
the thread count (a matmul splits its sums by thread) and the kernel set (AVX2 and AVX-512 round differently), and
the torch and transformers versions. The run logs these with every checkpoint (``numerics``) and in ``run.started``
(``environment``); the replay sets the thread count itself and refuses what it cannot match.

CUDA runs are refused for now. What a CUDA replay would do (Proof-of-Learning's calibration, Jia et al. 2021): on
the run's GPU model with ``training.deterministic``, re-execute the first drawn segment twice from the same start
and take the distance between the two end states (the L2 norm of the weight difference, per tensor) as the
device's reproduction noise; accept a segment whose distance to the logged checkpoint stays within a threshold
derived from it (PoL uses a multiple of it, well below the distance a step of training moves the weights), and state
the calibration and threshold in the ``run.replayed`` entry. That needs the logged end checkpoints' weights, so
kept checkpoints (``keep: all``) at every boundary; without ``training.deterministic`` the noise is large and the
test weak, so such runs stay refused.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from governance.errors import PolicyRefusal
from governance.run.config import RunConfig
from governance.run.replay_plan import Segment
from governance.trust.ledger import RunRecord


@dataclass(frozen=True)
class LocalNumerics:
    """What this process would re-execute on."""

    cuda: bool
    cpu_capability: str
    versions: Mapping[str, str]
    """``torch`` and ``transformers`` versions."""


def local_numerics() -> LocalNumerics:
    """This process's device, CPU kernel set and library versions."""
    from importlib import metadata

    import torch

    return LocalNumerics(torch.cuda.is_available(), torch.backends.cpu.get_cpu_capability(),
                         {name: metadata.version(name) for name in ("torch", "transformers")})


def check_replayable(record: RunRecord, config: RunConfig, plan: Sequence[Segment], *, evaluate: bool) -> None:
    """Refuse (exit 4) a run this process cannot re-execute bit for bit, naming the first reason."""
    problems = replay_problems(record, config, plan, local_numerics())
    if problems:
        raise PolicyRefusal(f"run {record.run_id} cannot be replayed here: {problems[0]}"
                            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""),
                            hint="a replay re-executes the run's own computation; these settings make that "
                                 "computation unreproducible here")
    if evaluate:
        from governance.run.replay_eval import check_eval_replayable

        check_eval_replayable(config)


def replay_problems(record: RunRecord, config: RunConfig, plan: Sequence[Segment], here: LocalNumerics) -> list[str]:
    """Every reason the run cannot be replayed bit for bit by a process with ``here``'s numerics."""
    assert record.started is not None and record.finished is not None
    problems: list[str] = []
    world_size = int(record.finished.get("world_size") or 1)
    if world_size != 1:
        problems.append(f"it trained with {world_size} processes (torchrun); replay re-executes single-process "
                        "runs only")
    if record.started.get("audit_run"):
        problems.append("it planted canaries in its training texts, whose secrets were never stored")
    numerics = [dict(s.end.numerics) for s in plan] + [dict(s.start.numerics) for s in plan if s.start]
    if any(n != numerics[0] for n in numerics):
        problems.append("its checkpoints were written with different devices, thread counts or kernels")
    logged: dict[str, Any] = numerics[0]
    if logged.get("device") != "cpu":
        if not logged.get("deterministic") or not config.training.deterministic:
            problems.append(f"it trained on {logged.get('name', logged.get('device'))} without "
                            "training.deterministic: its kernels need not repeat a computation")
        else:
            problems.append(f"it trained on {logged.get('name', logged.get('device'))}: CUDA runs are compared "
                            "within a calibrated distance, which this version does not implement")
    else:
        if here.cuda:
            problems.append("it trained on the CPU and this process sees a CUDA device; run the replay with "
                            "CUDA_VISIBLE_DEVICES= (empty)")
        if logged.get("cpu_capability") != here.cpu_capability:
            problems.append(f"it ran {logged.get('cpu_capability')} CPU kernels and this CPU runs "
                            f"{here.cpu_capability}; replay on a CPU with the same kernel set")
    environment = record.started.get("environment") or {}
    for name, version in here.versions.items():
        if environment.get(name) != version:
            problems.append(f"it trained with {name} {environment.get(name)} and this process has {version}")
    return problems
