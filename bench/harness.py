"""What the benchmarks share: a timed case, interleaved rounds, and the machine's identity.

Every benchmark here runs sitewarden and its peers in one process, calibrates each case to
about the same wall time per repeat, runs the repeats in rotated, interleaved rounds (so
machine load hits every case alike) and keeps the best time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import os
import platform
import ssl
import timeit
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Case:
    key: str
    label: str
    stmt: str
    namespace: dict[str, Any]
    section: str = ""
    number: int = 0
    samples: list[float] = field(default_factory=list)  # seconds per operation

    def __post_init__(self) -> None:
        self.timer = timeit.Timer(self.stmt, globals=self.namespace)

    @property
    def best_us(self) -> float:
        return min(self.samples) * 1e6

    @property
    def median_us(self) -> float:
        return sorted(self.samples)[len(self.samples) // 2] * 1e6

    def calibrate(self, target_time: float) -> None:
        """Choose a loop count so one repeat takes about *target_time* seconds."""
        number = 1
        while True:
            elapsed = self.timer.timeit(number)
            if elapsed >= 0.01 or number >= 10**8:
                break
            number *= 10
        self.number = max(1, round(number * target_time / elapsed))

    def run_once(self) -> None:
        self.samples.append(self.timer.timeit(self.number) / self.number)


def run_interleaved(cases: list[Case], repeats: int, target_time: float) -> None:
    """Calibrate (doubles as warm-up), then run *repeats* rotated, interleaved rounds."""
    for case in cases:
        case.calibrate(target_time)
    n = len(cases)
    for r in range(repeats):
        shift = r % n
        for case in cases[shift:] + cases[:shift]:
            case.run_once()


def machine_info(distributions: tuple[str, ...]) -> dict[str, Any]:
    """The machine, the interpreter and the versions of *distributions*."""
    cpu = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for dist in distributions:
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "cpu": cpu,
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "openssl": ssl.OPENSSL_VERSION,
        "versions": versions,
    }


def parse_options(description: str, argv: list[str] | None) -> argparse.Namespace:
    """Parse the options every benchmark takes: --quick, --json, --repeats, --target-time."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeats", type=int, help="repeats per case (default 7, quick 5)")
    parser.add_argument(
        "--target-time", type=float, help="seconds per repeat per case (default 0.2, quick 0.02)"
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 5 if args.quick else 7
    if args.target_time is None:
        args.target_time = 0.02 if args.quick else 0.2
    return args


def evaluate_ratio_targets(
    cases: list[Case], targets: list[tuple[str, str, str, float, bool]]
) -> list[dict[str, Any]]:
    """Compare best times: each target is ``(name, sitewarden case, peer case, limit, gating)``.

    A target whose cases were not measured (a group skipped, e.g. no redis-server) is left
    out rather than failed.
    """
    best = {c.key: c for c in cases}
    results = []
    for name, mine, peer, limit, gating in targets:
        if mine not in best or peer not in best:
            continue
        ratio = best[mine].best_us / best[peer].best_us
        results.append(
            {
                "name": name,
                "sitewarden": mine,
                "peer": peer,
                "sitewarden_us": best[mine].best_us,
                "peer_us": best[peer].best_us,
                "ratio": ratio,
                "limit": limit,
                "passed": ratio <= limit,
                "gating": gating,
            }
        )
    return results


def json_document(
    info: dict[str, Any], args: Any, elapsed: float, groups: list[Any], **extra: Any
) -> dict[str, Any]:
    """The ``--json`` report: machine, mode, every case of every group, then *extra*.

    *groups* are objects with ``key``, ``title``, ``baseline`` and ``cases`` (a list of
    :class:`Case`), as both grouped benchmarks define them.
    """
    return {
        "machine": info,
        "mode": "quick" if args.quick else "full",
        "repeats": args.repeats,
        "target_time": args.target_time,
        "elapsed_s": round(elapsed, 2),
        "groups": {
            g.key: {
                "title": g.title,
                "baseline": g.baseline,
                "cases": {
                    c.key: {
                        "label": c.label,
                        "best_us": c.best_us,
                        "median_us": c.median_us,
                        "loops": c.number,
                        "samples_us": [s * 1e6 for s in c.samples],
                    }
                    for c in g.cases
                },
            }
            for g in groups
        },
        **extra,
    }
