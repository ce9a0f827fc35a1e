"""The benchmark runner finishes its report without the optional chart library."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parent.parent

WITHOUT_MATPLOTLIB = """
import asyncio, sys
sys.modules["matplotlib"] = None  # as if it were not installed: importing it fails
from benchmarks import __main__ as runner
runner.SECTIONS.clear()  # no timings: only the report is under test
sys.exit(asyncio.run(runner.main(["--out", sys.argv[1]])))
"""


def test_without_matplotlib_the_tables_are_written_and_the_chart_is_skipped(
    tmp_path: Path,
) -> None:
    (tmp_path / "latest.png").write_bytes(b"a chart of an older run")

    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_MATPLOTLIB, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode == 0, done.stderr
    assert "matplotlib is not installed, so no chart was drawn" in done.stderr
    assert "Traceback" not in done.stderr
    assert sorted(path.name for path in tmp_path.iterdir()) == ["latest.json", "latest.md"]
