"""Generate poolhouse's thread code from its asyncio source, token by token.

Each :data:`PAIRS` entry names a source folder and its destination: the
library (:data:`SRC` ``lib/poolhouse/_async/`` to :data:`DST` ``_sync/``) and
the shared tests (``test/_async/`` to ``test/_sync/``).  Each ``*.py`` in a
source but :data:`SKIP` (each side writes its own ``_acompat.py``) becomes a
thread module of the same name in the destination, under a "do not edit"
header, with its imports sorted and formatted by ruff.  The rules apply to
:mod:`tokenize` tokens, not text; a pair adds its own :class:`Rules` (renames,
module paths, dropped statements) to the shared ones:

- ``async`` before ``def``/``with``/``for``, and ``await``, are dropped with
  the blanks after them.
- A NAME token in :data:`RENAMES` is replaced as a whole (``AsyncPoolX`` and
  ``my_await`` stay).  A ``def`` is never renamed from or to a public name,
  dunders (``__aenter__``) aside: a public method has one name on both sides.
- A NAME in :data:`UNWRAP` followed by ``[`` goes, with any dotted prefix and
  the brackets, keeping what is inside: ``_acompat.Checkout[Fairy[_C]]``
  becomes ``Fairy[_C]``.
- A dotted name in a pair's :attr:`Rules.modules` (``poolhouse.aio``) is
  replaced as a whole, also as the start of a longer one.
- A statement in a pair's :attr:`Rules.drop` (``pytestmark =
  pytest.mark.asyncio``) goes, with its line.
- STRING tokens (an f-string is one string) and COMMENT tokens get only the
  :data:`TEXT_RULES` and the class-name (CapWords) renames, as words.

Each token is written back with the source text that preceded it, so the
layout (indentation, comments, blank lines) stays as written.

``--check`` writes nothing: it prints a unified diff and exits 1 if an output
is stale or missing, or if a destination holds a generated file whose source
is gone (a module without the header, like ``singleton.py``, is fine); it also
fails on a rule that matched nothing: the shared rules in the library pair,
each pair's own rules in that pair.  Run: ``python tools/unasync.py [--check]``
(``--src``/``--dst`` convert one folder with the shared rules only).
"""

from __future__ import annotations

import argparse
import difflib
import io
import re
import subprocess
import sys
import tokenize
from collections.abc import Callable
from collections.abc import Mapping
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "lib" / "poolhouse" / "_async"  # the hand-written asyncio source
DST = ROOT / "lib" / "poolhouse" / "_sync"  # the generated thread modules
#: Source modules that are not converted: each side writes its own.
SKIP = frozenset({"__init__.py", "_acompat.py"})
HEADER = "# generated from _async/{name} by tools/unasync.py: do not edit\n"


class TextRule(NamedTuple):
    """A regex substitution for STRING and COMMENT tokens."""

    pattern: str
    repl: str
    in_literals: bool = False  # only inside ``double-backtick`` literals


# -- the rules ---------------------------------------------------------------
# Keep them minimal and edit freely: a rule that matches nothing in the
# sources makes ``--check`` fail ("unused rule"), so this list must match
# what the modules in _async/ actually use.

#: Whole NAME-token renames.  CapWords ones (class names) also apply, as whole
#: words, in strings and comments.
RENAMES = {
    "AsyncPool": "Pool",
    "AsyncQueuePool": "QueuePool",
    "AsyncNullPool": "NullPool",
    "AsyncStaticPool": "StaticPool",
    "AsyncAssertionPool": "AssertionPool",
    "AsyncConnectionRecord": "ConnectionRecord",
    "AsyncConnectionFairy": "ConnectionFairy",
    "AsyncCreator": "Creator",
    "AsyncDialectLike": "DialectLike",
    "AsyncDialect": "Dialect",
    "async_dialect_for": "dialect_for",
    "__aenter__": "__enter__",
    "__aexit__": "__exit__",
}

#: ``Name[X]`` (or ``module.Name[X]``) becomes ``X``.  None is needed today:
#: ``connect()`` is made by ``_acompat.connect_method`` on each side.
UNWRAP: frozenset[str] = frozenset()

#: Prose rules for strings and comments, applied in order.
TEXT_RULES = (
    TextRule(r"\bawait ", "", in_literals=True),  # ``await conn.close()``
    TextRule(r"\basync with\b", "with"),
)

_KEYWORD_TARGETS = frozenset({"def", "with", "for"})  # what ``async`` may precede
_LITERAL = re.compile(r"``[^`]+``")
#: Tokens after which a new statement starts.
_LINE_STARTS = frozenset(
    {tokenize.NEWLINE, tokenize.NL, tokenize.INDENT, tokenize.DEDENT, tokenize.COMMENT}
)
_STR_START = {getattr(tokenize, n, -1) for n in ("FSTRING_START", "TSTRING_START")}
_STR_END = {getattr(tokenize, n, -1) for n in ("FSTRING_END", "TSTRING_END")}


class Rules(NamedTuple):
    """The rules one pair adds to the shared ones; labelled ``name: ...``."""

    name: str
    #: Whole NAME-token renames, on top of :data:`RENAMES`.
    renames: Mapping[str, str] = {}
    #: Dotted names (``poolhouse.aio``) replaced as a whole, or as the start
    #: of a longer dotted name.
    modules: Mapping[str, str] = {}
    #: Statements (one logical line, as written) dropped with their line.
    drop: frozenset[str] = frozenset()


class Pair(NamedTuple):
    """A hand-written asyncio folder and the folder generated from it."""

    src: Path
    dst: Path
    #: This pair's own rules, added to the shared ones.
    extra: Rules | None = None
    #: Whether the shared rules must all be used here (the library pair).
    owns_shared_rules: bool = True


#: The shared tests: written once, as asyncio tests, in test/_async/.
TEST_RULES = Rules(
    name="tests",
    renames={
        "FakeAsyncDBAPI": "FakeDBAPI",
        "FakeAsyncDialect": "FakeDialect",
        "FakeAsyncConnection": "FakeConnection",
    },
    modules={"poolhouse.aio": "poolhouse"},
    drop=frozenset({"pytestmark = pytest.mark.asyncio"}),
)

#: What ``python tools/unasync.py`` generates: the library, then the tests.
PAIRS = (
    Pair(SRC, DST),
    Pair(
        ROOT / "test" / "_async",
        ROOT / "test" / "_sync",
        TEST_RULES,
        owns_shared_rules=False,
    ),
)


class UnasyncError(Exception):
    """A source that the rules cannot convert."""


def rule_labels(extra: Rules | None = None) -> set[str]:
    """Name every rule, as :func:`convert` records it in *used*: the shared
    ones, or with *extra*, only that pair's own."""
    if extra is not None:
        return (
            {f"{extra.name}: RENAMES[{old!r}]" for old in extra.renames}
            | {f"{extra.name}: modules[{old!r}]" for old in extra.modules}
            | {f"{extra.name}: drop {line!r}" for line in extra.drop}
        )
    return (
        {f"RENAMES[{old!r}]" for old in RENAMES}
        | {f"UNWRAP {name!r}" for name in UNWRAP}
        | {f"TEXT_RULES {rule.pattern!r}" for rule in TEXT_RULES}
    )


def _tokens(source: str) -> list[tokenize.TokenInfo]:
    """Tokenize *source*; an f-string is one STRING token, as on Python 3.11."""
    out: list[tokenize.TokenInfo] = []
    depth = 0
    try:
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type in _STR_START:
                depth += 1
                if depth == 1:
                    first = tok
            elif depth and tok.type in _STR_END:
                depth -= 1
                if not depth:
                    out.append(tok._replace(type=tokenize.STRING, start=first.start))
            elif not depth:
                out.append(tok)
    except (tokenize.TokenError, SyntaxError) as err:
        raise UnasyncError(f"cannot tokenize: {err}") from err
    return out


def _apply(rule: TextRule, text: str) -> str:
    sub = re.compile(rule.pattern).sub
    if rule.in_literals:
        return _LITERAL.sub(lambda m: sub(rule.repl, m[0]), text)
    return sub(rule.repl, text)


def _after_blanks(source: str, pos: int) -> int:
    while source[pos : pos + 1] in (" ", "\t"):
        pos += 1
    return pos


def _renames(extra: Rules | None) -> dict[str, tuple[str, str]]:
    """Each renamed NAME -> (its new name, the rule's label); a pair's own
    rename wins over a shared one."""
    found = {old: (new, f"RENAMES[{old!r}]") for old, new in RENAMES.items()}
    if extra is not None:
        for old, new in extra.renames.items():
            found[old] = (new, f"{extra.name}: RENAMES[{old!r}]")
    return found


def _rewrite_text(
    text: str, used: set[str], renames: dict[str, tuple[str, str]]
) -> str:
    """Apply the class-name renames and :data:`TEXT_RULES` to a string or comment."""
    for rule in TEXT_RULES:
        new = _apply(rule, text)
        if new != text:
            used.add(f"TEXT_RULES {rule.pattern!r}")
            text = new
    classes = sorted((old for old in renames if old[:1].isupper()), key=len)[::-1]
    if not classes:
        return text

    def rename(match: re.Match[str]) -> str:
        new, label = renames[match[0]]
        used.add(label)
        return new

    return re.sub(rf"\b(?:{'|'.join(map(re.escape, classes))})\b", rename, text)


def _unwrap_at(toks: list[tokenize.TokenInfo], i: int) -> int | None:
    """The index of the ``[`` if ``toks[i]`` starts ``[a.]Name[`` with Name in
    :data:`UNWRAP`, else ``None``."""
    if i and toks[i - 1].string == ".":
        return None
    j = i
    while toks[j].type == tokenize.NAME and toks[j + 1].string == ".":
        j += 2
    if toks[j].type == tokenize.NAME and toks[j].string in UNWRAP:
        if toks[j + 1].string == "[":
            return j + 1
    return None


def _closing(toks: list[tokenize.TokenInfo], i: int) -> int:
    """The index of the bracket that closes the one at ``toks[i]``."""
    depth = 0
    for j in range(i, len(toks)):
        op = toks[j].string if toks[j].type == tokenize.OP else ""
        depth += (op in ("(", "[", "{")) - (op in (")", "]", "}"))
        if not depth:
            return j
    raise UnasyncError(f"line {toks[i].start[0]}: unclosed {toks[i].string!r}")


def _dotted_at(
    toks: list[tokenize.TokenInfo], i: int, modules: Mapping[str, str]
) -> tuple[str, int] | None:
    """The longest key of *modules* spelled by ``toks[i:]`` as ``a.b[.c]``
    (not after a dot), and the index of its last NAME; else ``None``."""
    if not modules or toks[i].type != tokenize.NAME:
        return None
    if i and toks[i - 1].string == ".":
        return None
    found = None
    name, j = toks[i].string, i
    while True:
        if name in modules:
            found = (name, j)
        if toks[j + 1].string != "." or toks[j + 2].type != tokenize.NAME:
            return found
        name, j = f"{name}.{toks[j + 2].string}", j + 2


def _dropped_at(
    toks: list[tokenize.TokenInfo],
    i: int,
    text: Callable[[int, int], str],
    drop: frozenset[str],
) -> tuple[str, int] | None:
    """If a statement in *drop* starts at ``toks[i]``, it and the index of its
    NEWLINE token; *text* gives the source between two tokens."""
    if not drop or (i and toks[i - 1].type not in _LINE_STARTS):
        return None
    j = i
    while toks[j].type not in (tokenize.NEWLINE, tokenize.ENDMARKER):
        j += 1
    statement = text(i, j).strip()
    return (statement, j) if statement in drop else None


def convert(source: str, used: set[str], extra: Rules | None = None) -> str:
    """Return the thread version of the asyncio module *source* (unformatted).

    :param used: receives the label (see :func:`rule_labels`) of each rule
        that matched.
    :param extra: the pair's own rules, on top of the shared ones.
    :raises UnasyncError: *source* does not tokenize, or a rename would change
        the name of a public method.
    """
    renames = _renames(extra)
    modules: Mapping[str, str] = extra.modules if extra is not None else {}
    drop = extra.drop if extra is not None else frozenset()
    toks = _tokens(source)
    starts = [0]
    for line in io.StringIO(source).readlines():
        starts.append(starts[-1] + len(line))

    def offset(pos: tuple[int, int]) -> int:
        return starts[pos[0] - 1] + pos[1]

    def between(i: int, j: int) -> str:
        return source[offset(toks[i].start) : offset(toks[j].start)]

    out: list[str] = []
    pos = 0  # the source is copied up to here
    closers: dict[int, str] = {}  # index of an unwrapped "]" -> what replaces it
    i = 0
    while i < len(toks):
        tok = toks[i]
        start, end = offset(tok.start), offset(tok.end)
        gap, text = source[pos:start], source[start:end]
        pos = end
        bracket = _unwrap_at(toks, i)
        dotted = _dotted_at(toks, i, modules)
        dropped = _dropped_at(toks, i, between, drop)
        if dropped is not None and extra is not None:
            used.add(f"{extra.name}: drop {dropped[0]!r}")
            # The statement and its line go; the indentation before it too.
            out.append(gap.rstrip(" \t"))
            i = dropped[1]
            pos = offset(toks[i].end)
        elif dotted is not None and extra is not None:
            used.add(f"{extra.name}: modules[{dotted[0]!r}]")
            out.append(gap + extra.modules[dotted[0]])
            i = dotted[1]
            pos = offset(toks[i].end)
        elif tok.type == tokenize.NAME and (
            text == "await"
            or (text == "async" and toks[i + 1].string in _KEYWORD_TARGETS)
        ):
            out.append(gap)
            pos = _after_blanks(source, end)
        elif bracket is not None:
            used.add(f"UNWRAP {toks[bracket - 1].string!r}")
            close = _closing(toks, bracket)
            pos = offset(toks[bracket].end)
            if toks[close].start[0] == toks[bracket].start[0]:
                out.append(gap)
                pos = _after_blanks(source, pos)
                closers[close] = ""
            else:  # the line breaks inside the brackets: keep them, as parentheses
                out.append(gap + "(")
                closers[close] = ")"
            i = bracket
        elif i in closers:
            out.append((gap + closers[i]) if closers[i] else gap.rstrip(" \t"))
        elif tok.type == tokenize.NAME and text in renames:
            new, label = renames[text]
            public = not (text.startswith("_") and new.startswith("_"))
            dunders = all(n[:2] == n[-2:] == "__" for n in (text, new))
            if toks[i - 1].string == "def" and public and not dunders:
                raise UnasyncError(
                    f"line {tok.start[0]}: RENAMES would turn method {text!r} into "
                    f"{new!r}; a public method keeps its name on both sides"
                )
            used.add(label)
            out.append(gap + new)
        elif tok.type in (tokenize.STRING, tokenize.COMMENT):
            out.append(gap + _rewrite_text(text, used, renames))
        elif (
            tok.type == tokenize.NAME
            and text == "asyncio"
            and not (i > 0 and toks[i - 1].string == ".")  # pytest.mark.asyncio
        ):
            # asyncio.sleep() and the like would become un-awaited coroutines
            # in thread code: such primitives belong in _acompat.
            raise UnasyncError(
                f"line {tok.start[0]}: asyncio is used outside _acompat; "
                "move the primitive into _acompat.py on both sides"
            )
        else:
            out.append(gap + text)
        i += 1
    out.append(source[pos:])
    return "".join(out)


def formatted(text: str, target: Path) -> str:
    """Sort imports and format *text* as ruff would for *target*: renames move
    names in the import order, and lint must accept the output as it is."""
    for args in (["check", "--select", "I", "--fix"], ["format"]):
        command = [sys.executable, "-m", "ruff", *args, "--quiet"]
        command += ["--stdin-filename", str(target), "-"]
        result = subprocess.run(
            command, input=text, capture_output=True, text=True, cwd=ROOT
        )
        # 1 means lint findings (lint reports them), but also "no module
        # named ruff": an empty answer to a non-empty file is a failure.
        if result.returncode not in (0, 1) or (text.strip() and not result.stdout):
            raise RuntimeError(f"ruff {args[0]} failed on {target}: {result.stderr}")
        text = result.stdout
    return text


def _show(path: Path) -> str:
    return str(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


def generate(
    src: Path, dst: Path, used: set[str], extra: Rules | None = None
) -> dict[Path, str | None]:
    """Map each output file in *dst* to its new text (``None``: delete it, its
    source is gone); a module in *dst* without the header is not an output.

    :param extra: the pair's own rules, on top of the shared ones.
    """
    plan: dict[Path, str | None] = {}
    for source in sorted(src.glob("*.py")):
        if source.name not in SKIP:
            try:
                body = convert(source.read_text(encoding="utf-8"), used, extra)
            except UnasyncError as err:
                raise UnasyncError(f"{_show(source)}: {err}") from None
            target = dst / source.name
            plan[target] = formatted(HEADER.format(name=source.name) + body, target)
    prefix = HEADER.partition("{name}")[0]
    for path in sorted(dst.glob("*.py")):
        if path not in plan and path.read_text(encoding="utf-8").startswith(prefix):
            plan[path] = None
    return plan


def unused_rules(pair: Pair, used: set[str]) -> list[str]:
    """The labels of the rules *pair* must use and did not (*used*: what
    converting that pair matched)."""
    labels = rule_labels() if pair.owns_shared_rules else set()
    if pair.extra is not None:
        labels |= rule_labels(pair.extra)
    return sorted(labels - used)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Generate _sync/ from _async/.")
    parser.add_argument("--check", action="store_true", help="fail if stale")
    parser.add_argument(
        "--src", type=Path, help="one asyncio source folder (default: every pair)"
    )
    parser.add_argument("--dst", type=Path, help="its generated folder (with --src)")
    args = parser.parse_args(argv)
    check = bool(args.check)
    if (args.src is None) != (args.dst is None):
        print("unasync: --src and --dst go together", file=sys.stderr)
        return 1
    pairs = PAIRS if args.src is None else (Pair(Path(args.src), Path(args.dst)),)
    for pair in pairs:
        if not pair.src.is_dir():
            print(
                f"unasync: no source folder {_show(pair.src)} (see --src)",
                file=sys.stderr,
            )
            return 1
    plan: dict[Path, str | None] = {}
    unused: list[str] = []
    try:
        for pair in pairs:
            used: set[str] = set()
            plan |= generate(pair.src, pair.dst, used, pair.extra)
            unused += unused_rules(pair, used)
    except (UnasyncError, RuntimeError) as err:  # RuntimeError: ruff failed
        print(f"unasync: {err}", file=sys.stderr)
        return 1
    problems = []
    for target, new in plan.items():
        old = target.read_text(encoding="utf-8") if target.exists() else None
        if new == old:
            continue
        name = _show(target)
        if check:
            what = "missing" if old is None else "stale" if new else "source is gone"
            problems.append(f"{what}: {name}")
            lines = (old or "").splitlines(True), (new or "").splitlines(True)
            diff = difflib.unified_diff(*lines, name, f"{name} (generated)")
            sys.stdout.writelines(diff)
        elif new is None:
            target.unlink()
            print(f"removed {name}: its source is gone")
        else:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(new, encoding="utf-8")
            print(f"wrote {name}")
    if problems:
        problems.append("run python tools/unasync.py to regenerate")
    if unused:
        problems.append(f"unused rules in tools/unasync.py: {', '.join(unused)}")
    for problem in problems:
        print(f"unasync: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
