"""Generate the thread versions of poolhouse's asyncio modules.

The lifecycle and the pool classes are written once, for asyncio, in
``lib/poolhouse/aio/``; this script writes their thread twins by dropping
``async``/``await`` and applying the renames below.  ``--check`` rewrites
nothing and fails if an output is stale or a rename rule matched nothing.

Run: ``python3 tools/unasync.py`` (write) or ``python3 tools/unasync.py --check``.
"""

from __future__ import annotations

import argparse
import difflib
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "lib" / "poolhouse"

#: (async source, generated thread module) pairs.
FILES = [
    (PACKAGE / "aio" / "_lifecycle.py", PACKAGE / "_lifecycle.py"),
    (PACKAGE / "aio" / "_impl.py", PACKAGE / "_impl.py"),
]

#: Whole-word renames, applied after the keyword rules.
RENAMES = {
    "_AsyncPoolLifecycle": "_PoolLifecycle",
    "_AsyncRecordLifecycle": "_RecordLifecycle",
    "_AsyncFairyLifecycle": "_FairyLifecycle",
    "_acquire": "connect",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
    "AsyncPool": "Pool",
    "AsyncQueuePool": "QueuePool",
    "AsyncNullPool": "NullPool",
    "AsyncStaticPool": "StaticPool",
    "AsyncAssertionPool": "AssertionPool",
    "_AsyncWaiter": "_Waiter",
    "AsyncCreator": "Creator",
}

#: Keyword rules: (pattern, replacement).
KEYWORDS = [
    (re.compile(r"\bawait "), ""),
    (re.compile(r"\basync (def|with|for)\b"), r"\1"),
    # The source sits in poolhouse.aio; its twin in poolhouse itself.
    (re.compile(r"^from \.\.", re.MULTILINE), "from ."),
    (re.compile(r"^from \.\. import", re.MULTILINE), "from . import"),
]


def header(source: Path) -> str:
    rel = source.relative_to(PACKAGE).as_posix()
    return f"# generated from {rel} by tools/unasync.py: do not edit\n"


def convert(text: str, used: set[str]) -> str:
    for pattern, replacement in KEYWORDS:
        text = pattern.sub(replacement, text)
    for old, new in RENAMES.items():
        text, count = re.subn(rf"\b{re.escape(old)}\b", new, text)
        if count:
            used.add(old)
    return text


def _ruff(args: list[str], text: str, target: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "ruff", *args, "--stdin-filename", str(target), "-"],
        input=text,
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )
    if result.returncode not in (0, 1):  # 1: lint findings remain (reported by lint)
        raise RuntimeError(f"ruff {' '.join(args)} failed: {result.stderr}")
    return result.stdout


def formatted(text: str, target: Path) -> str:
    """Sort imports and format *text* as ruff would for *target*: renames move
    names in the import order, and lint must accept the output as it is."""
    text = _ruff(["check", "--select", "I", "--fix", "--quiet"], text, target)
    return _ruff(["format", "--quiet"], text, target)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if stale")
    args = parser.parse_args(argv)
    used: set[str] = set()
    stale = []
    for source, target in FILES:
        generated = formatted(
            header(source) + convert(source.read_text(), used), target
        )
        current = target.read_text() if target.exists() else ""
        if generated == current:
            continue
        if args.check:
            stale.append(target)
            sys.stdout.writelines(
                difflib.unified_diff(
                    current.splitlines(keepends=True),
                    generated.splitlines(keepends=True),
                    str(target),
                    f"{target} (regenerated)",
                )
            )
        else:
            target.write_text(generated)
            print(f"wrote {target.relative_to(ROOT)}")
    unused = sorted(set(RENAMES) - used)
    if unused:
        print(f"unused rename rules: {', '.join(unused)}", file=sys.stderr)
        return 1
    if stale:
        print(
            f"stale: {', '.join(str(t.relative_to(ROOT)) for t in stale)}; "
            "run python3 tools/unasync.py",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
