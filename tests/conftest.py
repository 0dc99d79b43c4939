"""Test-wide settings. Under CI (CI=true) hypothesis is derandomized: every CI run tries the
same examples, so a submission cannot fail on an example no one has seen before; developer
runs keep drawing new ones, which is where new bugs are found."""
import os

import pytest
from hypothesis import settings

import tinymeta as tm

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")


@pytest.fixture
def f64():
    """Run the test with float64 as the default dtype, then put the previous one back."""
    prev = tm.get_default_dtype()
    tm.set_default_dtype("float64")
    yield
    tm.set_default_dtype(prev)
