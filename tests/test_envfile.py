"""The .env reader that the settings and `make run` share."""

import pytest

from controlpanel.envfile import EnvFileError, load_env_file, read_env_file


def test_values_comments_and_quotes(tmp_path):
    path = tmp_path / ".env"
    path.write_text("# comment\n\nA=1\nB = \"two words\"\nC='x=y'\nD=\n")
    assert read_env_file(path) == {"A": "1", "B": "two words", "C": "x=y", "D": ""}


def test_a_line_without_equals_names_its_line(tmp_path):
    path = tmp_path / ".env"
    path.write_text("A=1\nnonsense\n")
    with pytest.raises(EnvFileError, match=":2:"):
        read_env_file(path)


def test_the_environment_wins_over_the_file(tmp_path, monkeypatch):
    path = tmp_path / ".env"
    path.write_text("PANEL_TEST_X=from-file\nPANEL_TEST_Y=from-file\n")
    monkeypatch.setenv("PANEL_TEST_X", "from-env")
    monkeypatch.delenv("PANEL_TEST_Y", raising=False)
    load_env_file(path)
    import os

    assert os.environ["PANEL_TEST_X"] == "from-env"
    assert os.environ["PANEL_TEST_Y"] == "from-file"
    monkeypatch.delenv("PANEL_TEST_Y")
