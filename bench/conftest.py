"""Report each benchmark's mean as a ratio of its group's reference, in one run."""

from __future__ import annotations

from typing import Any

import pytest


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    session = getattr(config, "_benchmarksession", None)
    if session is None or not session.benchmarks:
        return
    groups: dict[str, list[Any]] = {}
    for bench in session.benchmarks:
        groups.setdefault(bench.group or "", []).append(bench)
    terminalreporter.section(
        "poolhouse ratios (mean / reference mean; throughput is the inverse)"
    )
    for group, benches in sorted(groups.items()):
        refs = [b for b in benches if b.extra_info.get("reference")]
        if not refs:
            continue
        ref = refs[0]
        ref_mean = ref.stats.mean
        terminalreporter.write_line(f"[{group}] reference: {ref.name}")
        for bench in sorted(benches, key=lambda b: b.stats.mean):
            mean = bench.stats.mean
            terminalreporter.write_line(
                f"  {bench.name:<48} {mean * 1e6:9.3f} us  {mean / ref_mean:6.3f}x"
                f"  (throughput {ref_mean / mean:5.2f}x)"
            )
    waited = [b for b in session.benchmarks if "wait_median_ms" in b.extra_info]
    if waited:
        terminalreporter.section("poolhouse acquire waits (all timed rounds)")
        for bench in waited:
            info = bench.extra_info
            terminalreporter.write_line(
                f"  {bench.name:<48} median {info['wait_median_ms']:8.3f} ms  "
                f"p99 {info['wait_p99_ms']:8.3f} ms  max {info['wait_max_ms']:8.3f} ms"
                f"  max/median {info['wait_max_over_median']:8.2f}"
                f"  no wait {info['no_wait_share']:4.0%}"
            )
    spikes = [b for b in session.benchmarks if "spike_role" in b.extra_info]
    if spikes:
        terminalreporter.section("spike: connections opened and duration")
        for bench in spikes:
            info = bench.extra_info
            terminalreporter.write_line(
                f"  {info['spike_role']:<14} opened {info['connects']:3d}  "
                f"done in {info['elapsed_ms']:7.1f} ms"
            )
    kills = [b for b in session.benchmarks if "kills_role" in b.extra_info]
    if kills:
        _kills_summary(terminalreporter, kills)


def _kills_summary(terminalreporter: Any, benches: list[Any]) -> None:
    """Pair each poolhouse run of ``bench_kills.py`` with its peer's, by group."""
    terminalreporter.section("connections opened under kills")
    pairs: dict[str, dict[str, Any]] = {}
    for bench in benches:
        pairs.setdefault(bench.group or "", {})[bench.extra_info["kills_role"]] = bench
    for group, pair in sorted(pairs.items()):
        terminalreporter.write_line(f"[{group}]")
        for role in ("poolhouse", "peer"):
            if role in pair:
                info = pair[role].extra_info
                terminalreporter.write_line(
                    f"  {info['library']:<10} connects {info['connects']:6d}"
                    f"  failures {info['failures']:6d}  ops {info['ops']:7d}"
                    f"  kills {info['kills']:4d}  peak backends"
                    f" {info['peak_backends']:3d}"
                )
                for kind, count in info["errors"].items():
                    terminalreporter.write_line(
                        f"    {count:6d} x {kind}: {info['error_samples'][kind]!r}"
                    )
        if "poolhouse" not in pair or "peer" not in pair:
            terminalreporter.write_line("  (no pair: run both variants for a ratio)")
            continue
        ours, peer = pair["poolhouse"].extra_info, pair["peer"].extra_info
        target = ours["target_ratio"]
        if peer["connects"]:
            ratio = ours["connects"] / peer["connects"]
            verdict = "meets" if ratio <= target else "MISSES"
            terminalreporter.write_line(
                f"  connects poolhouse/{peer['library']} {ratio:6.2f}x"
                f"  ({verdict} the target of <= {target:g}x)"
            )
        else:
            terminalreporter.write_line(f"  {peer['library']} opened no connection")
