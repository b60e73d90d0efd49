"""Episode files: round trip, errors that name the file, atomic writes that a kill cannot half-finish."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from worldmodels.checkpoint import atomic_write, atomic_write_text, remove_stale_temporaries
from worldmodels.data.episodes import (
    Episode,
    clean_directory,
    episode_index,
    episode_length,
    episode_path,
    list_episodes,
    read_arrays,
    read_episode,
    write_arrays,
    write_episode,
)
from worldmodels.errors import UserError


def make_episode(T: int = 37, A: int = 1, seed: int = 0) -> Episode:
    rng = np.random.default_rng(seed)
    return Episode(
        obs=rng.integers(0, 256, (T, 64, 64, 3), dtype=np.uint8),
        action=rng.uniform(-1, 1, (T, A)).astype(np.float32),
        reward=np.ones(T, np.float32),
        done=np.arange(T) == T - 1,
        meta={"env": "doom", "index": 3, "seed": 1234, "policy": "random", "tries": 1},
    )


def test_round_trip(tmp_path):
    episode = make_episode()
    path = write_episode(episode_path(tmp_path, 3), episode)
    assert path == tmp_path / "000003.npz"
    back = read_episode(path)
    for name in ("obs", "action", "reward", "done"):
        np.testing.assert_array_equal(getattr(back, name), getattr(episode, name))
    assert back.obs.dtype == np.uint8 and back.action.dtype == np.float32
    assert back.reward.dtype == np.float32 and back.done.dtype == bool
    assert back.meta == episode.meta
    assert episode_length(path) == 37  # from the header, without reading the frames
    assert episode_index(path) == 3


def test_round_trip_carracing_actions(tmp_path):
    episode = make_episode(T=5, A=3)
    back = read_episode(write_episode(tmp_path / "000000.npz", episode))
    np.testing.assert_array_equal(back.action, episode.action)
    assert back.action.shape == (5, 3)


def test_list_episodes_sorted_and_only_complete_files(tmp_path):
    for i in (10, 2, 1000000, 0):
        write_episode(episode_path(tmp_path, i), make_episode(T=2))
    # things that are not episodes: a temporary file, too few digits, other names
    (tmp_path / ".000005.npz.abc123.tmp").write_bytes(b"partial")
    (tmp_path / "12.npz").write_bytes(b"x")
    (tmp_path / "000007.npz.tmp").write_bytes(b"x")
    (tmp_path / "notes.txt").write_text("x")
    (tmp_path / "initial_z.npz").write_bytes(b"x")
    names = [p.name for p in list_episodes(tmp_path)]
    assert names == ["000000.npz", "000002.npz", "000010.npz", "1000000.npz"]
    assert list_episodes(tmp_path / "missing") == []


def _assert_names_file(excinfo, path):
    message = str(excinfo.value)
    assert str(path) in message
    assert "\n" not in message


@pytest.mark.parametrize("keep", [0.5, 0.9, 0.0])
def test_truncated_file_is_a_user_error_naming_it(tmp_path, keep):
    path = write_episode(episode_path(tmp_path, 1), make_episode())
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    with pytest.raises(UserError) as e:
        read_episode(path)
    _assert_names_file(e, path)
    assert "corrupt or truncated" in str(e.value)
    with pytest.raises(UserError) as e:
        episode_length(path)
    _assert_names_file(e, path)


def test_garbage_file_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "000004.npz"
    path.write_bytes(os.urandom(5000))
    with pytest.raises(UserError) as e:
        read_episode(path)
    _assert_names_file(e, path)
    with pytest.raises(UserError) as e:
        episode_length(path)
    _assert_names_file(e, path)


def test_foreign_npz_is_a_user_error_naming_it(tmp_path):
    path = tmp_path / "000001.npz"
    np.savez(path, something=np.zeros(3))
    with pytest.raises(UserError) as e:
        read_episode(path)
    _assert_names_file(e, path)
    assert "lacks obs" in str(e.value)
    # frames of the wrong shape
    write_arrays(path, obs=np.zeros((3, 32, 32, 3), np.uint8), action=np.zeros((3, 1)), reward=np.zeros(3),
                 done=np.zeros(3, bool), meta={})
    with pytest.raises(UserError) as e:
        read_episode(path)
    _assert_names_file(e, path)


def test_missing_file_is_a_user_error(tmp_path):
    with pytest.raises(UserError) as e:
        read_arrays(tmp_path / "000009.npz", ("obs",))
    _assert_names_file(e, tmp_path / "000009.npz")


def _killed_writer(path, before_kill: bytes) -> None:
    """In a forked child: start writing `path` atomically and die by SIGKILL half-way."""
    pid = os.fork()
    if pid == 0:  # child
        try:
            def write(f):
                f.write(before_kill)
                f.flush()
                os.kill(os.getpid(), signal.SIGKILL)

            atomic_write(path, write)
        finally:
            os._exit(1)  # never reached
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_a_killed_writer_leaves_only_a_temporary_that_is_never_listed(tmp_path):
    write_episode(episode_path(tmp_path, 0), make_episode(T=3))
    old = (tmp_path / "000000.npz").read_bytes()
    _killed_writer(tmp_path / "000001.npz", b"PK\x03\x04 half an episode")  # a new file
    _killed_writer(tmp_path / "000000.npz", b"PK\x03\x04 half a rewrite")  # over an existing one
    leftovers = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
    assert len(leftovers) == 2  # the kill really happened mid-write
    assert not (tmp_path / "000001.npz").exists()
    assert (tmp_path / "000000.npz").read_bytes() == old
    assert [p.name for p in list_episodes(tmp_path)] == ["000000.npz"]
    assert read_episode(tmp_path / "000000.npz").obs.shape == (3, 64, 64, 3)
    clean_directory(tmp_path)  # frees the disk; the episode stays
    assert sorted(p.name for p in tmp_path.iterdir()) == ["000000.npz"]
    assert remove_stale_temporaries(tmp_path) == 0


def test_atomic_write_leaves_the_old_file_if_the_writer_raises(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write_text(path, "old")

    def failing(f):
        f.write(b"new but incomplete")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(path, failing)
    assert path.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.bin"]  # the temporary is gone too
    atomic_write_text(path, "new")
    assert path.read_text() == "new"


def test_atomic_write_of_an_episode_that_fails_leaves_nothing(tmp_path):
    bad = make_episode(T=4)._replace(meta={"not json": object()})
    with pytest.raises(TypeError):
        write_episode(episode_path(tmp_path, 0), bad)
    assert list(tmp_path.iterdir()) == []
