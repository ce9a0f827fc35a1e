"""The README's code runs as shown: its test file, and the extra that file needs."""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parent.parent
EXAMPLE = ROOT / "examples" / "test_dashboard.py"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", markdown, re.DOTALL | re.MULTILINE)


def test_the_readme_test_file_is_the_example_file() -> None:
    readme = (ROOT / "README.md").read_text()
    [shown] = [block for block in python_blocks(readme) if block.startswith('"""test_dashboard')]
    assert shown == EXAMPLE.read_text()


def test_the_readme_test_file_passes_under_pytest_on_its_own(tmp_path: Path) -> None:
    """Copied where no conftest or pytest settings of this project apply, as in a user's repo."""
    (tmp_path / EXAMPLE.name).write_text(EXAMPLE.read_text())
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", EXAMPLE.name]

    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=120)

    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed" in done.stdout


def test_the_testing_extra_brings_what_asgi_sessions_testing_imports() -> None:
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    names = {re.split(r"[<>=\[ ]", requirement)[0] for requirement in extras["testing"]}
    assert names == {"pytest", "anyio", "httpx"}
    assert "testing" not in extras["all"][0]  # test tools stay out of production installs
