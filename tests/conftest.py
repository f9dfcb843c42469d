"""Every test belongs to one group, by module (see pyproject.toml's markers), so that a part runs alone:

    ./course test -m unit                 the check library, the channel, the tooling (seconds)
    ./course test -m "not slow"           a developer's quick loop (about a minute)
    ./course test -m catalog              every catalog entry, in-process
    ./course test -m e2e                  real kernels and real nbgrader
"""
import pytest

GROUPS = {
    "test_graders": ("unit",),
    "test_cli": ("unit",),
    "test_limits": ("unit",),
    "test_layout": ("unit",),
    "test_notebooks": ("unit",),
    "test_catalogs": ("catalog",),
    "test_student_side": ("catalog",),
    "test_student_kernel": ("e2e", "slow"),
    "test_demo": ("e2e", "slow"),
    "test_resume": ("e2e", "slow"),
    "test_attacks": ("e2e", "slow"),
    "test_attack_catalog": ("e2e", "slow"),
    "test_bundle": ("e2e", "slow"),
    "test_exchange": ("e2e",),
    "test_gradebook_backends": ("e2e", "slow"),
    "test_nbgrader_native": ("e2e", "slow"),
    "test_distributed": ("e2e", "slow"),
    "test_browser": ("browser", "slow"),
    "test_watch": ("e2e", "slow"),
    "test_report": ("browser", "slow"),
}
GROUP_MARKS = {"unit", "catalog", "e2e", "browser"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if any(item.get_closest_marker(name) for name in GROUP_MARKS):
            continue  # the module or the test chose its own group
        for name in GROUPS.get(item.module.__name__.rsplit(".", 1)[-1], ("e2e", "slow")):
            item.add_marker(getattr(pytest.mark, name))
