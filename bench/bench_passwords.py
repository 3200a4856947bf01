"""Time sitewarden.accounts.passwords with the configured parameters (a report, not a gate).

Argon2id is slow on purpose: the figures show what one sign-in (``verify``) and one
sign-up or password change (``hash`` + ``check``) cost a worker with the policy's
parameters (OWASP's m=19456 KiB, t=2, p=1 unless a settings file says otherwise), and that
an unknown user costs the same as a known one. ``check()`` is timed on typical inputs and
on the worst case for zxcvbn (a long password full of l33t symbols), which the estimate's
work budget bounds.

Run::

    uv run python bench/bench_passwords.py                 # about 20 s
    uv run python bench/bench_passwords.py --quick         # about 5 s
    uv run python bench/bench_passwords.py --file sitewarden.toml --json

Method: each case is a ``timeit`` statement calibrated to about ``--target-time`` seconds
per repeat, the cases run in rotated, interleaved rounds (``harness.py``), and the table
shows the best and the median time per operation. The exit status is always 0.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from harness import Case, machine_info, run_interleaved
from sitewarden.accounts import passwords as passwords_module
from sitewarden.accounts.passwords import Passwords
from sitewarden.policy import load_policy

PASSPHRASE = "purple cactus 9"  # 15 characters: the NIST/OWASP minimum without 2FA
LONG = ("the quick brown fox jumps over the lazy dog while the cat naps " * 2)[:64]
L33T = ("4@8({[<3691!|70$5%2+7" * 7)[:128]  # zxcvbn's worst case: 736 l33t readings
USER = ("jbloggs", "joe.bloggs@example.org", "Joe Bloggs")


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations (smoke run)")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--file", help="a sitewarden.toml to take the policy from")
    parser.add_argument("--repeats", type=int, help="repeats per case (default 7, quick 3)")
    parser.add_argument(
        "--target-time", type=float, help="seconds per repeat per case (default 0.3, quick 0.1)"
    )
    args = parser.parse_args(argv)
    args.repeats = args.repeats or (3 if args.quick else 7)
    args.target_time = args.target_time or (0.1 if args.quick else 0.3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    policy = load_policy(file=args.file) if args.file else load_policy()
    pw = Passwords(policy)

    # One-off costs, measured once each: the first check builds the common-password set,
    # the first refusal makes the dummy hash.
    start = time.perf_counter()
    passwords_module._common_passwords.cache_clear()
    pw.check(PASSPHRASE)
    first_check = time.perf_counter() - start
    start = time.perf_counter()
    pw.verify(None, PASSPHRASE)
    first_unknown = time.perf_counter() - start

    stored = pw.hash(PASSPHRASE)
    # Sanity: every case takes the path its label says.
    assert pw.verify(stored, PASSPHRASE).ok
    assert not pw.verify(stored, "wrong guess").ok
    assert not pw.verify(None, PASSPHRASE).ok
    assert pw.check(PASSPHRASE, USER) == [] and pw.check(LONG, USER) == []
    assert [p.code for p in pw.check("Password1!", USER)] == ["too_short", "common", "weak"]
    assert pw.check(L33T) == []

    ns: dict[str, Any] = {
        "pw": pw,
        "stored": stored,
        "PASSPHRASE": PASSPHRASE,
        "LONG": LONG,
        "L33T": L33T,
        "USER": USER,
    }
    hashing = [
        Case("hash", "hash()", "pw.hash(PASSPHRASE)", ns, "argon2"),
        Case("verify_ok", "verify() right password", "pw.verify(stored, PASSPHRASE)", ns),
        Case("verify_bad", "verify() wrong password", "pw.verify(stored, 'wrong guess')", ns),
        Case("verify_unknown", "verify() unknown user", "pw.verify(None, PASSPHRASE)", ns),
    ]
    checking = [
        Case("check_15", "check() 15-char passphrase", "pw.check(PASSPHRASE, USER)", ns),
        Case("check_common", "check() 'Password1!'", "pw.check('Password1!', USER)", ns),
        Case("check_64", "check() 64-char passphrase", "pw.check(LONG, USER)", ns),
        Case("check_l33t", "check() 128-char l33t worst case", "pw.check(L33T)", ns),
        Case("strength_15", "strength() 15-char passphrase", "pw.strength(PASSPHRASE)", ns),
    ]
    for group in (hashing, checking):
        run_interleaved(group, args.repeats, args.target_time)
    cases = hashing + checking

    params = pw.parameters
    result = {
        "machine": machine_info(("argon2-cffi", "zxcvbn", "httpx")),
        "argon2": {
            "memory_kib": params.memory_cost,
            "time_cost": params.time_cost,
            "parallelism": params.parallelism,
        },
        "once": {
            "first_check_ms": first_check * 1e3,
            "first_unknown_verify_ms": first_unknown * 1e3,
        },
        "cases": {
            c.key: {"label": c.label, "best_ms": c.best_us / 1e3, "median_ms": c.median_us / 1e3}
            for c in cases
        },
        "unknown_over_known": (
            min(cases[3].samples) / min(cases[2].samples),
            sorted(cases[3].samples)[len(cases[3].samples) // 2]
            / sorted(cases[2].samples)[len(cases[2].samples) // 2],
        ),
    }
    if args.json:
        json.dump(result, sys.stdout, indent=2)
        print()
        return 0
    m = result["machine"]
    print(f"{m['cpu']} ({m['nproc']} CPUs), Python {m['python']}, {m['date']}")
    print(
        f"Argon2id m={params.memory_cost} KiB, t={params.time_cost}, p={params.parallelism}; "
        f"argon2-cffi {m['versions']['argon2-cffi']}, zxcvbn {m['versions']['zxcvbn']}"
    )
    print(f"\n{'case':36} {'best':>10} {'median':>10}")
    for c in cases:
        print(f"{c.label:36} {c.best_us / 1e3:8.2f}ms {c.median_us / 1e3:8.2f}ms")
    best, median = result["unknown_over_known"]
    print(f"\nunknown user / wrong password: {best:.2f} (best), {median:.2f} (median)")
    print(
        f"first check() (builds the common-password set): {first_check * 1e3:.1f} ms; "
        f"first unknown-user verify() (makes the dummy hash): {first_unknown * 1e3:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
