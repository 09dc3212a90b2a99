"""bench/sampler.py and its modules: a measurement process on a tiny dataset, and the report's
two sections (read modes, image checks) rewritten apart."""

from __future__ import annotations

import argparse
import sys

import pytest
from bench_modules import load_bench


@pytest.fixture(scope="module")
def sampler():
    return load_bench("sampler")


def test_a_worker_process_samples_a_written_dataset(sampler, tmp_path) -> None:
    data = sys.modules["sampler_data"]
    worker = sys.modules["sampler_worker"]
    info = data.make_dataset(tmp_path / "ds", 300, 16)
    assert info["frames"] == 300 and info["episodes"] >= 2
    w = worker.Worker(tmp_path / "ds", "pread" + worker.NO_CHECK, 8)
    first = w.ask("first 2")
    assert first["checked"] == 0.0  # this reader skips the image checks
    w.run(0.05)
    row = w.finish()
    assert row["rate"] > 0 and row["rss"] > 0 and w.proc.returncode == 0


def _row(frames: int, mode: str, rate: float) -> dict:
    return {"frames": frames, "episodes": frames // 100, "mode": mode, "cache": "warm",
            "rate": rate, "batch_ms": 1.0, "disk_mib": 0.0, "rss": 900.0, "rss_anon": 500.0,
            "rss_file": 400.0, "rss_peak": 950.0, "rss_before_open": 800.0, "open_s": 0.01,
            "load": 1.0}


def test_report_rewrites_the_read_modes_and_keeps_the_image_check_section(sampler,
                                                                          tmp_path) -> None:
    check = sys.modules["sampler_image_check"]
    out = tmp_path / "sampler.md"
    args = argparse.Namespace(quick=True, batch_size=256, image_size=64, seconds=2.0, rounds=4,
                              first_batches=50)
    gen = [{"frames": 1000, "episodes": 10, "bytes": 2**30, "write_s": 1.0}]
    sampler.write_report(out, [_row(1000, "pread", 30_000.0)], gen, args)
    assert check.CHECK_BEGIN not in out.read_text()
    rows = [{**_row(1000, mode, 25_000.0), "first_s": 0.2, "checked": 1.0, "verify_s": 0.1}
            for mode in ("pread", "pread-nocheck")]
    check.write_image_check_section(out, check.image_check_section(rows, args))
    out.write_text(out.read_text() + "A note after the section.\n")
    sampler.write_report(out, [_row(1000, "pread", 12_345.0)], gen, args)
    text = out.read_text()
    assert "| 12,345 |" in text and "| 30,000 |" not in text  # the read-mode rows are new
    assert text.count(check.CHECK_BEGIN) == 1 and "| 1,000 | 10 | no | 0.200 |" in text
    assert text.endswith("A note after the section.\n")  # and what follows the section stays
    section = check.image_check_section(rows[:1], args)
    check.write_image_check_section(out, section)  # a rerun replaces the section in place
    text = out.read_text()
    assert text.count(check.CHECK_BEGIN) == 1 and "| no |" not in text
    assert "| 12,345 |" in text and text.endswith("A note after the section.\n")
