"""Profile one case of bench_web.py: where does a request through sitewarden spend its time?

Builds exactly the applications, scopes and sanity checks of ``bench_web.py``, warms the
case up, then runs it under ``cProfile`` and prints the top functions. cProfile inflates
every Python call, so read the listing for proportions, not for microseconds.

Run::

    uv run --group bench python bench/bench_web_profile.py                # sw.get
    uv run --group bench python bench/bench_web_profile.py sw.post_token  # any case key
    uv run --group bench python bench/bench_web_profile.py sw.get --sort cumulative
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_web  # a sibling script, not a package


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("case", nargs="?", default="sw.get", help="a case key of bench_web.py")
    parser.add_argument("-n", type=int, default=20_000, help="requests profiled")
    parser.add_argument("--sort", default="tottime", help="pstats sort key (tottime, cumulative)")
    parser.add_argument("--top", type=int, default=30, help="rows printed")
    args = parser.parse_args(argv)

    cases, _extra = bench_web.build_cases()
    by_key = {c.key: c for c in cases}
    if args.case not in by_key:
        parser.error(f"unknown case {args.case!r}; one of: {', '.join(by_key)}")
    case = by_key[args.case]
    print(f"{case.key}: {case.label} — {case.stmt}, {args.n} requests")
    case.timer.timeit(2_000)  # warm-up: caches, specialised bytecode
    profiler = cProfile.Profile()
    profiler.enable()
    case.timer.timeit(args.n)
    profiler.disable()
    pstats.Stats(profiler).strip_dirs().sort_stats(args.sort).print_stats(args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
