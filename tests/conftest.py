"""Test-wide settings. Under CI (CI=true) hypothesis is derandomized: every CI run tries the
same examples, so a submission cannot fail on an example no one has seen before; developer
runs keep drawing new ones, which is where new bugs are found."""
import os

from hypothesis import settings

settings.register_profile("ci", derandomize=True, deadline=None, print_blob=True)
if os.environ.get("CI"):
    settings.load_profile("ci")
