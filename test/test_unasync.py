"""tools/unasync.py: the token rules, ``--check``, and the unused-rule check.

Every test works on small sources under ``tmp_path`` with a fixed rule set,
so that they do not depend on the real ``_async/`` package or on its rules.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path
from textwrap import dedent
from types import ModuleType
from typing import Any

import pytest

TOOL = Path(__file__).resolve().parent.parent / "tools" / "unasync.py"


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unasync_tool", TOOL)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


unasync = _load_tool()
REAL_RENAMES: dict[str, str] = dict(unasync.RENAMES)
TextRule = unasync.TextRule


@pytest.fixture(autouse=True)
def rules(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fixed rule set, used in full by :data:`POOL`."""
    monkeypatch.setattr(
        unasync,
        "RENAMES",
        {"AsyncPool": "Pool", "__aenter__": "__enter__", "aclose": "close"},
    )
    monkeypatch.setattr(unasync, "UNWRAP", frozenset({"Checkout"}))
    monkeypatch.setattr(
        unasync,
        "TEXT_RULES",
        (
            TextRule(r"\bawait ", "", in_literals=True),
            TextRule(r"\basync with\b", "with"),
            TextRule(r"\basync for\b", "for"),
        ),
    )


def convert(source: str) -> str:
    result: str = unasync.convert(dedent(source), set())
    return result


# -- the token rules ---------------------------------------------------------


def test_drops_async_and_await_with_the_blanks_after_them() -> None:
    source = """\
        class C:
            async def f(self, it):  # a comment
                async with self.lock:
                    async for x in it:
                        y = await  x  # aligned
                return [z async for z in it], await (await it)
        """
    assert convert(source) == dedent("""\
        class C:
            def f(self, it):  # a comment
                with self.lock:
                    for x in it:
                        y = x  # aligned
                return [z for z in it], (it)
        """)


def test_renames_whole_names_only() -> None:
    source = """\
        AsyncPool(AsyncPoolX, _AsyncPool, my_await, await_x, mod.AsyncPool)
        aclose(x.aclose, acloser)
        """
    assert convert(source) == dedent("""\
        Pool(AsyncPoolX, _AsyncPool, my_await, await_x, mod.Pool)
        close(x.close, acloser)
        """)


def test_strings_and_comments_get_class_renames_and_prose_rules() -> None:
    source = '''\
        """Use ``async with AsyncPool() as p`` or ``await p.aclose()``.

        ``x = await a(await b)``; to await AsyncPoolX, ``None`` and await ``c``,
        and async for.
        """
        # async with AsyncPool, aclose
        '''
    assert convert(source) == dedent('''\
        """Use ``with Pool() as p`` or ``p.aclose()``.

        ``x = a(b)``; to await AsyncPoolX, ``None`` and await ``c``,
        and for.
        """
        # with Pool, aclose
        ''')


def test_renames_class_names_inside_an_f_string() -> None:
    source = 'f"{AsyncPool.__name__}: use AsyncPool, not {p.aclose}"\n'
    expected = 'f"{Pool.__name__}: use Pool, not {p.aclose}"\n'
    assert convert(source) == expected


def test_asyncio_outside_acompat_is_refused() -> None:
    source = "async def f():\n    await asyncio.sleep(0)\n"
    with pytest.raises(unasync.UnasyncError, match="line 2: asyncio is used"):
        convert(source)
    # In prose it is only a word.
    assert convert('"""An asyncio pool."""\n') == '"""An asyncio pool."""\n'


def test_unwraps_checkout_keeping_nested_brackets() -> None:
    source = """\
        def f(self) -> Checkout[Fairy[_C]]: ...
        def g(self) -> _acompat.Checkout[ AsyncPool ] | None: ...
        def h(self) -> list[Checkout[int]]: ...
        x = Checkout(start)
        """
    assert convert(source) == dedent("""\
        def f(self) -> Fairy[_C]: ...
        def g(self) -> Pool | None: ...
        def h(self) -> list[int]: ...
        x = Checkout(start)
        """)


def test_unwrap_over_several_lines_keeps_parentheses() -> None:
    source = """\
        def f(self) -> Checkout[
            Fairy[_C]
        ]: ...
        """
    result = convert(source)
    assert result == "def f(self) -> (\n    Fairy[_C]\n): ...\n"
    ast.parse(result)


def test_a_public_method_keeps_its_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(unasync, "RENAMES", REAL_RENAMES)
    for old, new in REAL_RENAMES.items():
        if old[:1].isupper():
            continue  # a class: pools are renamed on purpose
        source = f"class C:\n    async def {old}(self): ...\n"
        if old.startswith("__") and new.startswith("__"):
            assert convert(source) == f"class C:\n    def {new}(self): ...\n"
        else:
            with pytest.raises(unasync.UnasyncError, match="public method"):
                convert(source)
    monkeypatch.setattr(unasync, "RENAMES", {"_acquire": "connect", "_a": "_b"})
    with pytest.raises(unasync.UnasyncError, match="'_acquire' into 'connect'"):
        convert("class C:\n    async def _acquire(self): ...\n")
    assert convert("async def _a(): ...\n") == "def _b(): ...\n"


def test_rules_are_used_by_name() -> None:
    used: set[str] = set()
    unasync.convert("AsyncPool\n", used)
    assert used == {"RENAMES['AsyncPool']"}
    assert used < unasync.rule_labels()


# -- the command -------------------------------------------------------------

POOL = '''\
"""The pool: ``async with AsyncPool() as p`` opens it, ``await p.close()`` ends it."""

from __future__ import annotations

from typing import Any

from . import _acompat


class AsyncPool:
    async def connect(self) -> _acompat.Checkout[int]:
        return await self._get()

    async def _get(self) -> int:
        async for x in self._rows():  # async for: one per row
            return x
        return 0

    async def __aenter__(self) -> AsyncPool:
        return self

    async def close(self, it: Any) -> None:
        await it.aclose()
'''


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    src, dst = tmp_path / "_async", tmp_path / "_sync"
    src.mkdir()
    (src / "pool.py").write_text(POOL)
    (src / "__init__.py").write_text('"""Hand-written."""\n')
    (src / "_acompat.py").write_text("async def sleep() -> None: ...\n")
    return src, dst


def run(tree: tuple[Path, Path], *args: str) -> int:
    src, dst = tree
    result: int = unasync.main(["--src", str(src), "--dst", str(dst), *args])
    return result


def test_writes_parseable_modules_then_check_passes(
    tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(tree, "--check") == 1  # nothing generated yet
    assert "missing: " in capsys.readouterr().err
    assert run(tree) == 0
    _, dst = tree
    assert sorted(p.name for p in dst.iterdir()) == ["pool.py"]
    text = (dst / "pool.py").read_text()
    ast.parse(text)
    assert text.startswith(
        "# generated from _async/pool.py by tools/unasync.py: do not edit\n"
        '"""The pool: ``with Pool() as p`` opens it, ``p.close()`` ends it."""\n'
    )
    assert "    def connect(self) -> int:\n        return self._get()\n" in text
    assert "for x in self._rows():  # for: one per row" in text
    assert "def __enter__(self) -> Pool:" in text
    assert "await" not in text
    capsys.readouterr()
    assert run(tree, "--check") == 0


def test_check_fails_on_a_stale_file(
    tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    src, dst = tree
    assert run(tree) == 0
    (src / "pool.py").write_text(POOL.replace("return 0", "return -1"))
    before = (dst / "pool.py").read_text()
    capsys.readouterr()
    assert run(tree, "--check") == 1
    out, err = capsys.readouterr()
    assert "-        return 0\n+        return -1\n" in out
    assert "stale: " in err
    assert (dst / "pool.py").read_text() == before


def test_check_fails_on_an_orphan_but_not_a_hand_written_module(
    tree: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    _, dst = tree
    assert run(tree) == 0
    (dst / "singleton.py").write_text('"""Hand-written, thread only."""\n')
    assert run(tree, "--check") == 0
    (dst / "old.py").write_text(unasync.HEADER.format(name="old.py") + "x = 1\n")
    capsys.readouterr()
    assert run(tree, "--check") == 1
    assert "source is gone: " in capsys.readouterr().err
    assert run(tree) == 0
    assert sorted(p.name for p in dst.iterdir()) == ["pool.py", "singleton.py"]


@pytest.mark.parametrize(
    ("name", "value", "label"),
    [
        ("RENAMES", {"AsyncNullPool": "NullPool"}, "RENAMES['AsyncNullPool']"),
        ("UNWRAP", frozenset({"Awaitable"}), "UNWRAP 'Awaitable'"),
        ("TEXT_RULES", (TextRule("an asyncio", "a"),), "TEXT_RULES 'an asyncio'"),
    ],
)
def test_check_fails_on_an_unused_rule(
    tree: tuple[Path, Path],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    value: Any,
    label: str,
) -> None:
    assert run(tree) == 0
    old = getattr(unasync, name)
    new = old + value if isinstance(old, tuple) else old | value
    monkeypatch.setattr(unasync, name, new)
    capsys.readouterr()
    assert run(tree, "--check") == 1
    assert f"unused rules in tools/unasync.py: {label}" in capsys.readouterr().err


def test_check_fails_clearly_without_the_source_folder(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    pair = unasync.Pair(tmp_path / "_async", tmp_path / "_sync")
    monkeypatch.setattr(unasync, "PAIRS", (pair,))
    assert unasync.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert f"no source folder {tmp_path / '_async'}" in err
    assert unasync.main(["--src", str(tmp_path / "other")]) == 1
    assert "--src and --dst go together" in capsys.readouterr().err


# -- pairs: the library and the tests, each with its own rules ----------------

EXTRA = unasync.Rules(
    name="tests",
    renames={"FakeAsyncDBAPI": "FakeDBAPI"},
    modules={"poolhouse.aio": "poolhouse", "poolhouse._async": "poolhouse._sync"},
    drop=frozenset({"pytestmark = pytest.mark.asyncio"}),
)


def test_a_pair_adds_its_renames_module_paths_and_dropped_statements() -> None:
    source = dedent('''\
        """Tests of AsyncPool on FakeAsyncDBAPI."""
        import pytest
        from poolhouse.aio import AsyncPool
        from poolhouse._async._acompat import x
        import poolhouse.aio
        from poolhouse.aiox import y
        from .poolhouse.aio import z

        pytestmark = pytest.mark.asyncio

        async def test_it(dbapi: FakeAsyncDBAPI) -> None:
            pytestmark = pytest.mark.asyncio
            await AsyncPool(dbapi.connect).dispose()  # FakeAsyncDBAPI
        ''')
    used: set[str] = set()
    assert unasync.convert(source, used, EXTRA) == dedent('''\
        """Tests of Pool on FakeDBAPI."""
        import pytest
        from poolhouse import Pool
        from poolhouse._sync._acompat import x
        import poolhouse
        from poolhouse.aiox import y
        from .poolhouse.aio import z

        def test_it(dbapi: FakeDBAPI) -> None:
            Pool(dbapi.connect).dispose()  # FakeDBAPI
        ''')
    assert used == unasync.rule_labels(EXTRA) | {"RENAMES['AsyncPool']"}
    assert unasync.rule_labels(EXTRA) == {
        "tests: RENAMES['FakeAsyncDBAPI']",
        "tests: modules['poolhouse.aio']",
        "tests: modules['poolhouse._async']",
        "tests: drop 'pytestmark = pytest.mark.asyncio'",
    }
    # Without the pair's rules, only the shared ones apply.
    plain = unasync.convert(source, set())
    assert "from poolhouse.aio import Pool" in plain
    assert "pytestmark = pytest.mark.asyncio" in plain
    assert "FakeAsyncDBAPI" in plain


TESTS = """\
import pytest

from poolhouse.aio import AsyncPool

pytestmark = pytest.mark.asyncio


async def test_it(dbapi: FakeAsyncDBAPI) -> None:
    await AsyncPool(dbapi.connect).dispose()
"""


@pytest.fixture
def pairs(
    tree: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Any, Any]:
    """The library tree of :func:`tree`, then a tests pair with :data:`EXTRA`."""
    src, dst = tmp_path / "test" / "_async", tmp_path / "test" / "_sync"
    src.mkdir(parents=True)
    (src / "test_it.py").write_text(TESTS)
    (src / "_acompat.py").write_text("async def checkpoint() -> None: ...\n")
    library = unasync.Pair(*tree)
    rules = EXTRA._replace(modules={"poolhouse.aio": "poolhouse"})
    tests = unasync.Pair(src, dst, rules, owns_shared_rules=False)
    monkeypatch.setattr(unasync, "PAIRS", (library, tests))
    return library, tests


def test_every_pair_is_generated_then_checked(
    pairs: tuple[Any, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    library, tests = pairs
    assert unasync.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "missing: " in err and "pool.py" in err and "test_it.py" in err
    assert unasync.main([]) == 0
    assert sorted(p.name for p in library.dst.iterdir()) == ["pool.py"]
    assert sorted(p.name for p in tests.dst.iterdir()) == ["test_it.py"]
    text = (tests.dst / "test_it.py").read_text()
    assert text.startswith(unasync.HEADER.format(name="test_it.py"))
    assert "\nfrom poolhouse import Pool\n" in text
    assert text.endswith(
        "\n\n\ndef test_it(dbapi: FakeDBAPI) -> None:\n"
        "    Pool(dbapi.connect).dispose()\n"
    )
    assert "pytestmark" not in text and "await" not in text
    ast.parse(text)
    capsys.readouterr()
    assert unasync.main(["--check"]) == 0
    (tests.dst / "test_it.py").write_text(text + "# edited\n")
    assert unasync.main(["--check"]) == 1
    assert "stale: " in capsys.readouterr().err


def test_a_pair_must_use_its_own_rules_not_the_shared_ones(
    pairs: tuple[Any, Any],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    library, tests = pairs
    assert unasync.main([]) == 0  # the tests use few of the shared rules: fine
    rules = tests.extra
    unused = rules._replace(renames={**rules.renames, "FakeAsyncGate": "FakeGate"})
    monkeypatch.setattr(unasync, "PAIRS", (library, tests._replace(extra=unused)))
    capsys.readouterr()
    assert unasync.main(["--check"]) == 1
    err = capsys.readouterr().err
    assert "unused rules in tools/unasync.py: tests: RENAMES['FakeAsyncGate']" in err
    # A rule the library uses is not enough: each pair's own rules are
    # checked against that pair alone.
    (library.src / "pool.py").write_text(POOL + "FakeAsyncGate = None\n")
    assert unasync.main([]) == 1
    assert "tests: RENAMES['FakeAsyncGate']" in capsys.readouterr().err
    # The shared rules are checked against the pair that owns them.
    monkeypatch.setattr(unasync, "PAIRS", (tests,))
    capsys.readouterr()
    assert unasync.main(["--check"]) == 0


def test_the_real_pairs_cover_the_library_and_the_tests() -> None:
    library, tests = unasync.PAIRS
    assert (library.src, library.dst) == (unasync.SRC, unasync.DST)
    assert library.owns_shared_rules and library.extra is None
    assert tests.src == TOOL.parent.parent / "test" / "_async"
    assert tests.dst == TOOL.parent.parent / "test" / "_sync"
    assert not tests.owns_shared_rules
    assert tests.extra is unasync.TEST_RULES
