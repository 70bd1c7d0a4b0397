"""The one routine that builds cache folders (the reviews SFT policy, the converted SmolLM2)."""

import json

import pytest

from bpo.common.cachefolder import COMPLETE_MARKER, cached_folder


class Builder:
    """A build callback that records its calls and writes one file (or fails after writing it)."""

    def __init__(self, fail: bool = False):
        self.calls, self.fail = 0, fail

    def __call__(self, folder):
        self.calls += 1
        assert folder.is_dir() and not any(folder.iterdir())  # an empty temporary folder, not the final one
        (folder / "weights").write_text(f"build {self.calls}")
        if self.fail:
            raise RuntimeError("interrupted")


def test_failed_build_leaves_nothing_and_a_later_call_rebuilds(tmp_path):
    final = tmp_path / "cache" / "model"
    with pytest.raises(RuntimeError, match="interrupted"):
        cached_folder(final, Builder(fail=True))
    assert not final.exists() and list((tmp_path / "cache").iterdir()) == []  # no temporary folder either

    builder = Builder()
    assert cached_folder(final, builder, stamp={"source": "x"}) == final
    assert builder.calls == 1 and (final / "weights").read_text() == "build 1"
    assert json.loads((final / COMPLETE_MARKER).read_text()) == {"source": "x"}
    assert [p.name for p in (tmp_path / "cache").iterdir()] == ["model"]


def test_finished_folder_is_reused_without_building(tmp_path):
    final = cached_folder(tmp_path / "model", Builder())

    def must_not_build(folder):
        raise AssertionError("a complete folder must be reused")

    assert cached_folder(final, must_not_build) == final
    assert (final / "weights").read_text() == "build 1"


def test_incomplete_final_folder_is_replaced(tmp_path):
    """A folder without the marker (left by older code or by hand) is not trusted."""
    final = tmp_path / "model"
    final.mkdir()
    (final / "half-written").write_text("")
    builder = Builder()
    cached_folder(final, builder)
    assert builder.calls == 1 and sorted(p.name for p in final.iterdir()) == [COMPLETE_MARKER, "weights"]


def test_a_concurrent_builder_that_finished_first_wins(tmp_path):
    """Another process renames its complete folder into place while we build: theirs is kept, ours dropped."""
    final = tmp_path / "model"

    def racing_build(folder):
        (folder / "weights").write_text("ours")
        final.mkdir()  # the other process finishes first
        (final / "weights").write_text("theirs")
        (final / COMPLETE_MARKER).write_text("{}\n")

    assert cached_folder(final, racing_build) == final
    assert (final / "weights").read_text() == "theirs"
    assert [p.name for p in tmp_path.iterdir()] == ["model"]
