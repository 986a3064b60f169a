"""Test-wide settings: shape checking on, hypothesis profiles, and the installed-package guard."""

import os
import sys
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, settings

import rmreg

# Every test runs with jaxtyping shape/dtype checking of rmreg's public functions switched on.
rmreg.set_typechecking(True)
torch.use_deterministic_algorithms(True, warn_only=True)
# Tiny models gain nothing from intra-op threads and lose a lot when other processes share the cores.
torch.set_num_threads(1)

settings.register_profile(
    "ci", max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.register_profile("dev", max_examples=60, deadline=None)
settings.register_profile("thorough", max_examples=1000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

REPO_ROOT = Path(__file__).resolve().parents[1]
# Shared test helpers (naive references) live beside the tests; the repository root stays off sys.path so that
# `import rmreg` finds the installed package.
sys.path.insert(0, str(Path(__file__).resolve().parent))


def pytest_report_header(config: pytest.Config) -> str:
    return f"rmreg {rmreg.__version__} from {Path(rmreg.__file__).parent}; torch {torch.__version__}"


@pytest.fixture(autouse=True, scope="session")
def _installed_package_under_test() -> None:
    """With RMREG_TEST_INSTALLED=1 (set by CI), fail unless rmreg was imported from the installed wheel."""
    if os.environ.get("RMREG_TEST_INSTALLED") == "1":
        package_dir = Path(rmreg.__file__).resolve().parent
        assert package_dir != REPO_ROOT / "rmreg", f"tests imported the checkout {package_dir}, not the install"


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
