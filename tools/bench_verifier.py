"""Benchmark tools/verify_ledger.py on a large synthetic ledger (run by hand, not a test).

    .venv/bin/python tools/bench_verifier.py 1000000 [--dir /tmp/ledger-bench] [--keep]

Writes ledger.jsonl (N realistic ~300-byte entries), checkpoint.json over all
N entries and checkpoint-old.json over the first N // 2, signed with an
Ed25519 key from `cryptography`; then runs the verifier in a stdlib-only
interpreter (python -I -S) with --previous and --public-key, and reports its
wall time and peak memory (max RSS of the child process).
"""

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey  # noqa: E402
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat  # noqa: E402

from donations.merkle import (  # noqa: E402
    CHECKPOINT_FORMAT,
    GENESIS_PREV,
    Frontier,
    canonical,
    checkpoint_message,
    leaf_hash,
)

PURPOSES = [
    "购买化肥和种子，用于春季播种",
    "修缮村小学教室屋顶，防止雨季漏水",
    "为五保户老人购买冬季棉被和取暖用品",
    "村道硬化工程第二期材料款",
    "留守儿童暑期营养午餐补助",
    "饮水工程水泵更换及管道维修",
    "大病救助：住院医疗费用自付部分",
    "茶园产业合作社技术培训费用",
]
KINDS = ["donation", "disbursement", "transfer", "refund"]
VILLAGES = ["510723101201", "510723102201", "510725101201", "510723101202", "510725101203"]


def make_entry(index, prev, rng):
    cents = rng.randrange(100, 5_000_000)
    amount = f"{cents // 100}.{cents % 100:02d}"
    legs = [
        {"account": f"donor:{rng.randrange(1, 200000)}", "amount": f"-{amount}"},
        {"account": f"fund:{rng.choice(VILLAGES)}", "amount": amount},
    ]
    if rng.random() < 0.3:
        legs.append({"account": "fee:bank", "amount": "0.00"})
    return {
        "index": index,
        "prev": prev,
        "id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "kind": rng.choice(KINDS),
        "amount": amount,
        "legs": legs,
        "need": rng.randrange(1, 50000),
        "village": rng.choice(VILLAGES),
        "purpose": rng.choice(PURPOSES),
    }


def sign_checkpoint(key, batch, tree_size, root, timestamp):
    root_hex = root.hex()
    return {
        "format": CHECKPOINT_FORMAT,
        "batch": batch,
        "tree_size": tree_size,
        "root_hash": root_hex,
        "timestamp": timestamp,
        "public_key": key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex(),
        "signature": key.sign(checkpoint_message(batch, tree_size, root_hex, timestamp)).hex(),
    }


def generate(directory, n, seed=1):
    rng = random.Random(seed)
    key = Ed25519PrivateKey.generate()
    frontier = Frontier()
    prev = GENESIS_PREV
    half = n // 2
    old_cp = None
    total_bytes = 0
    with open(directory / "ledger.jsonl", "wb") as f:
        for i in range(n):
            line = canonical(make_entry(i, prev, rng))
            f.write(line + b"\n")
            total_bytes += len(line) + 1
            digest = leaf_hash(line)
            frontier.append(digest)
            prev = digest.hex()
            if i + 1 == half:
                old_cp = sign_checkpoint(key, 1, half, frontier.root(), "2026-06-01T03:00:00Z")
    if old_cp is None:  # n < 2: the older checkpoint is the empty tree
        old_cp = sign_checkpoint(key, 1, 0, Frontier().root(), "2026-06-01T03:00:00Z")
    new_cp = sign_checkpoint(key, 2, n, frontier.root(), "2026-11-29T03:00:00Z")
    (directory / "checkpoint.json").write_text(json.dumps(new_cp, indent=1))
    (directory / "checkpoint-old.json").write_text(json.dumps(old_cp, indent=1))
    return new_cp["public_key"], total_bytes


WRAPPER = """
import runpy, sys
path = sys.argv[1]
sys.argv = sys.argv[1:]
try:
    runpy.run_path(path, run_name="__main__")
finally:
    sys.stdout.flush()
    with open("/proc/self/status") as f:
        print([l.strip() for l in f if l.startswith("VmHWM")][0], file=sys.stderr)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("n", type=int, help="number of entries")
    parser.add_argument("--dir", help="where to write the files (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    directory = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    directory.mkdir(parents=True, exist_ok=True)
    try:
        t0 = time.perf_counter()
        public_key, total_bytes = generate(directory, args.n)
        t1 = time.perf_counter()
        print(
            f"generated {args.n:,} entries, {total_bytes / 1e6:.1f} MB "
            f"({total_bytes / max(args.n, 1):.0f} bytes/line) in {t1 - t0:.1f} s -> {directory}"
        )

        verifier = ROOT / "tools" / "verify_ledger.py"
        verifier_args = [
            str(directory / "ledger.jsonl"),
            str(directory / "checkpoint.json"),
            "--previous",
            str(directory / "checkpoint-old.json"),
            "--public-key",
            public_key,
        ]
        # getrusage(RUSAGE_CHILDREN).ru_maxrss would include this (large) parent's RSS inherited
        # across fork/exec, so the child reports its own VmHWM (peak RSS of its own address space).
        cmd = [sys.executable, "-I", "-S", "-c", WRAPPER, str(verifier), *verifier_args]
        t2 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True)
        t3 = time.perf_counter()
        stderr_lines = proc.stderr.splitlines()
        peak = stderr_lines.pop() if stderr_lines and stderr_lines[-1].startswith("VmHWM") else "VmHWM: ?"
        print(proc.stdout, end="")
        for line in stderr_lines:
            print(line, file=sys.stderr)
        print(
            f"verifier: exit {proc.returncode}, {t3 - t2:.2f} s wall, peak RSS {peak.split(':', 1)[1].strip()} "
            f"({args.n / max(t3 - t2, 1e-9):,.0f} entries/s)"
        )
        return proc.returncode
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(directory, ignore_errors=True)
        elif not args.keep and args.dir:
            for name in ("ledger.jsonl", "checkpoint.json", "checkpoint-old.json"):
                try:
                    os.remove(directory / name)
                except OSError:
                    pass


if __name__ == "__main__":
    sys.exit(main())
