import pytest


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory):
    """A data directory holding N-Digits, generated once per test session (never ~/.cache)."""
    from mambaspike.data.ndigits import ensure_ndigits

    root = tmp_path_factory.mktemp("data")
    ensure_ndigits(root)
    return root
