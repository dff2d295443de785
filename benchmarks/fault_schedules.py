"""Many seeded fault schedules against the conservation law (tests/fault_schedule.py).

    .venv/bin/python benchmarks/fault_schedules.py [--seeds 200] [--first 1]
        [--mode standalone|distributed|both] [--keep DIR]
    .venv/bin/python benchmarks/fault_schedules.py --mode standalone --seed 17

Each seed serves 60 real corpus pages from three nginx mirrors, each article answered on
each mirror as the seed picks (the article, notices, errors, timeouts, resets, truncated
bodies, redirects, a cookie gate), and crawls it: ``crawler crawl`` (standalone), or
``crawler schedule`` and two ``crawler worker`` processes on a private redis-server, some
seeds killing a worker, freezing one and restarting Redis (distributed). It prints one line
per seed, then per mode: seeds, documents crawled, documents unaccounted (listed, never
stored nor ended), documents stored from a non-article answer, dishonest exits, and the
failing seeds with the command that replays each.

A run's folder (outlet file, nginx configuration and logs, the crawler's logs, its SQLite
store, its outcome log) is removed unless the seed failed, ``--keep`` is given, or it is a
replay (``--seed``): then its path is printed.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from fault_schedule import MODES, Findings, replay_command, run  # noqa: E402
from nginx_outlet import CORPUS, has_corpus  # noqa: E402


@dataclass
class Tally:
    """The runs of one mode."""

    mode: str
    runs: list[Findings] = field(default_factory=list)

    def summary(self) -> str:
        failing = [found for found in self.runs if not found.ok]
        documents = sum(found.listed for found in self.runs)
        unaccounted = sum(len(found.unaccounted) for found in self.runs)
        from_notice = sum(len(found.from_notice) for found in self.runs)
        dishonest = sum(found.honest_exit is False for found in self.runs)
        # in how many seeds each kind of problem came up
        kinds = Counter(kind for found in self.runs for kind, n in found.kinds.items() if n)
        lines = [
            f"{self.mode}: {len(self.runs)} seeds, {documents} documents crawled, "
            f"{unaccounted} unaccounted, {from_notice} stored from a non-article, "
            f"{dishonest} dishonest exits, {len(failing)} failing seeds",
        ]
        lines += [f"  {kind}: in {n} seeds" for kind, n in kinds.most_common()]
        lines += [f"  seed {f.seed}: {len(f.problems())} problems; "
                  f"{replay_command(self.mode, f.seed)}" for f in failing]
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=20, help="how many seeds per mode")
    parser.add_argument("--first", type=int, default=1, help="the first seed")
    parser.add_argument("--seed", type=int, help="replay this one seed, keeping its folder")
    parser.add_argument("--mode", choices=(*MODES, "both"), default="both")
    parser.add_argument("--keep", type=Path, help="keep every run's folder under DIR")
    args = parser.parse_args(argv)
    # stopped from outside: leave through the runs' clean-up (nginx, Redis, workers)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if not has_corpus(CORPUS):
        print(f"no corpus at {CORPUS}", file=sys.stderr)
        return 2
    modes = MODES if args.mode == "both" else (args.mode,)
    seeds = [args.seed] if args.seed is not None else range(args.first,
                                                             args.first + args.seeds)
    parent = args.keep or Path(tempfile.mkdtemp(prefix="fault-schedules-"))
    keep = args.keep is not None or args.seed is not None
    tallies = {mode: Tally(mode) for mode in modes}
    for seed in seeds:
        for mode in modes:
            folder = parent / f"{mode}-{seed}"
            found = run(mode, seed, folder)
            tallies[mode].runs.append(found)
            print(found.report() if not found.ok or keep else
                  f"{mode} seed {seed}: ok ({found.stored} stored of {found.listed})",
                  flush=True)
            if found.ok and not keep:
                shutil.rmtree(folder, ignore_errors=True)
    print()
    for tally in tallies.values():
        print(tally.summary())
    if not keep and not any(parent.iterdir()):
        parent.rmdir()
    return 1 if any(not f.ok for t in tallies.values() for f in t.runs) else 0


if __name__ == "__main__":
    raise SystemExit(main())
