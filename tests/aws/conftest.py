"""One moto server for the AWS tests, with fake credentials in the environment while they run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.aws.moto_server import FAKE_CREDENTIALS, MotoServer, moto_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "moto" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.aws)


@pytest.fixture(scope="session")
def moto_session_server() -> Iterator[MotoServer]:
    with moto_server() as server:
        yield server


@pytest.fixture
def moto(moto_session_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> MotoServer:
    """A reset moto server; AWS credentials and config are the fake ones for this test only."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
    moto_session_server.reset()
    return moto_session_server
