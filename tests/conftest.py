import pytest

pytest_plugins = ["tests.simulator_control", "tests.servers"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that touches the database also runs on PostgreSQL (`make postgres-tests`)."""
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if item.get_closest_marker("django_db") or {"db", "transactional_db"} & set(fixtures):
            item.add_marker(pytest.mark.postgres)
