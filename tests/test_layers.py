"""Apps import downward only (DESIGN.md, "Layers and imports"): portal above
donations and cooperatives (which do not import each other), above
households, above the base package sun_commune. The contract is
pyproject.toml's [tool.importlinter]; `make test` runs `lint-imports` too.
No database."""

import subprocess
import sys
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def test_no_app_imports_upward():
    result = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=BASE_DIR, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 1 kept, 0 broken." in result.stdout
