"""The local chain at rest (a benchmark, not a test): anvil's CPU and the chain-state writes while `make run`'s node
sits idle.

Run: python bench/devnet_idle.py [--seconds 60] [--state FILE] [--demo-cases 200] [--baseline]

Makes a small chain the way `make run` does (``ledger.dev.devnet --once`` with a small demo city, in a temporary
directory; not measured) — or copies FILE, e.g. data/chain/anvil-state.json of the full demo city — then starts the
devnet's node on it (``AnvilNode`` with the state file, as ``ledger.dev.devnet`` does), sends nothing for --seconds,
and prints ONE JSON line: anvil's CPU share (utime + stime from /proc/PID/stat over the wall time), this process's
(the state saver's looks at the head, and this benchmark's own looks at the file twice a second), the state file's
rewrites seen (changes of its mtime, inode or size), the saves the saver made, and bytes written to storage by
anvil and by this process (write_bytes of /proc/PID/io). --baseline runs anvil as `make run` did before the saver
(``--state FILE --state-interval 2``), for comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ledger.dev import devnet
from ledger.dev.node import AnvilNode, free_port

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int | str) -> float:
    """utime + stime of a process (proc(5): fields 14 and 15 of /proc/PID/stat, counted after the command's name)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def written_bytes(pid: int | str) -> int:
    """Bytes the process caused to be written to storage (proc(5): write_bytes of /proc/PID/io)."""
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("write_bytes:"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/{pid}/io has no write_bytes")


def file_version(path: Path) -> tuple[int, int, int] | None:
    try:
        stat = path.stat()
    except FileNotFoundError:
        return None
    return stat.st_mtime_ns, stat.st_ino, stat.st_size


def make_chain(data_dir: Path, source: Path | None, demo_cases: int) -> Path:
    """The state file of a small devnet chain (or a copy of `source`), under `data_dir`."""
    state = data_dir / "chain" / "anvil-state.json"
    if source is not None:
        state.parent.mkdir(parents=True)
        shutil.copyfile(source, state)
        return state
    with contextlib.redirect_stdout(sys.stderr):  # the start-up summary: stdout carries the one JSON line alone
        code = devnet.main(["--data-dir", str(data_dir), "--port", str(free_port()), "--once", "--quiet",
                            "--no-audit", "--demo-cases", str(demo_cases)])
    if code != 0 or not state.is_file():
        raise SystemExit(f"could not make the devnet chain in {data_dir} (exit status {code})")
    return state


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the node idles (measured)")
    parser.add_argument("--state", type=Path, help="a state file to copy and start from (default: a small demo city)")
    parser.add_argument("--demo-cases", type=int, default=200, help="cases in the small demo city made otherwise")
    parser.add_argument("--baseline", action="store_true",
                        help="anvil as before the saver: --state FILE --state-interval 2")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="devnet-idle-") as tmp:
        data_dir = Path(tmp)
        state = make_chain(data_dir, args.state, args.demo_cases)
        size = state.stat().st_size
        if args.baseline:
            node = AnvilNode(chain_id=devnet.CHAIN_ID, log_path=data_dir / "anvil.log",
                             extra_args=["--state", str(state), "--state-interval", "2"])
        else:
            node = AnvilNode(state_path=state, chain_id=devnet.CHAIN_ID, log_path=data_dir / "anvil.log")
        node.start(timeout=120)
        try:
            pid = node.pid
            assert pid is not None
            time.sleep(1.0)  # past start-up (anvil's load; the saver's first look)
            versions, version = 0, file_version(state)
            anvil_cpu, own_cpu = cpu_seconds(pid), cpu_seconds("self")
            anvil_written, own_written = written_bytes(pid), written_bytes("self")
            began = time.monotonic()
            while (left := args.seconds - (time.monotonic() - began)) > 0:
                time.sleep(min(0.5, left))
                now = file_version(state)
                versions, version = versions + (now != version), now
            wall = time.monotonic() - began
            out = {
                "bench": "devnet_idle",
                "mode": "baseline --state-interval 2" if args.baseline else "state saver",
                "idle_s": round(wall, 1),
                "state_bytes": size,
                "anvil_cpu_percent": round(100 * (cpu_seconds(pid) - anvil_cpu) / wall, 2),
                "owner_cpu_percent": round(100 * (cpu_seconds("self") - own_cpu) / wall, 2),
                "state_file_rewrites": versions,
                "saver_saves": node.saver.saves if node.saver is not None else None,
                "anvil_write_bytes": written_bytes(pid) - anvil_written,
                "owner_write_bytes": written_bytes("self") - own_written,
                "cpus": os.cpu_count(),
            }
        finally:
            node.stop()
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
