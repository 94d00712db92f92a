"""`magbig prompts --source hub`: a pinned commit, the local cache, downloads only when asked.

huggingface_hub.snapshot_download is replaced by a recorder, so the tests see every lookup and
assert that nothing but local-cache lookups happen unless --download is given (and then only
at a commit hash).
"""

from __future__ import annotations

import signal

import pytest

from magbig import cli as magbig_cli
from magbig import prompts as P

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@pytest.fixture
def main(monkeypatch, capsys):
    from conftest import run_in_process

    old = signal.getsignal(signal.SIGTERM)
    yield run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)
    signal.signal(signal.SIGTERM, old)


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Records snapshot_download calls; `hub.cached` (a folder or None) is what the cache holds."""
    import huggingface_hub

    class Hub:
        calls: list[dict] = []
        cached = None

    def snapshot_download(**kw):
        Hub.calls.append(kw)
        if kw.get("local_files_only"):
            if Hub.cached is None:
                raise huggingface_hub.errors.LocalEntryNotFoundError("not in the cache")
            return str(Hub.cached)
        raise AssertionError(f"a download was attempted: {kw}")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    return Hub


def _snapshot(root):
    data = root / "snapshots" / COMMIT / "data"
    data.mkdir(parents=True)
    (data / "occupations_direct-00000-of-00001.csv").write_text(
        "name,english,german\ndoctor,A photo of the face of a doctor.,Ein Foto vom Gesicht eines Arztes.\n",
        encoding="utf-8")
    return data.parent


def _error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    return lines[0]


def test_hub_without_a_pin_refuses_and_says_how(main, hub, monkeypatch):
    monkeypatch.setattr(P.official, "HUB_REVISION", None)
    code, out, err = main("prompts", "--source", "hub")
    line = _error_line(err)
    assert code == 2 and out == ""
    assert "no pinned revision" in line and "hf:felfri/MAGBIG@COMMIT" in line and "--source PATH" in line
    assert hub.calls == []


def test_pinned_hub_offline_is_one_line_exit_2(main, hub, monkeypatch):
    monkeypatch.setattr(P.official, "HUB_REVISION", COMMIT)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    code, out, err = main("prompts", "--source", "hub", "--download")
    line = _error_line(err)
    assert code == 2 and out == ""
    assert "not cached and the Hub is offline" in line and COMMIT in line and "--source PATH" in line
    assert [c["revision"] for c in hub.calls] == [COMMIT] and all(c["local_files_only"] for c in hub.calls)


def test_not_cached_and_online_downloads_only_with_download(main, hub, monkeypatch):
    monkeypatch.setattr(P.official, "HUB_REVISION", COMMIT)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    code, _, err = main("prompts", "--source", "hub")
    assert code == 2 and "nothing is downloaded without --download" in _error_line(err)
    assert all(c["local_files_only"] for c in hub.calls)


def test_a_branch_is_never_downloaded(main, hub, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    code, _, err = main("prompts", "--source", "hf:felfri/MAGBIG@main", "--download")
    assert code == 2 and "'main' is not a commit hash" in _error_line(err)
    assert all(c["local_files_only"] for c in hub.calls)


def test_a_cached_pinned_snapshot_loads_and_names_its_commit(main, hub, monkeypatch, tmp_path):
    monkeypatch.setattr(P.official, "HUB_REVISION", COMMIT)
    hub.cached = _snapshot(tmp_path / "cache")
    ps = P.load_prompts("hub")
    assert ps.source == f"hf:felfri/MAGBIG@{COMMIT}" and ps.version.startswith(COMMIT[:12])
    assert set(ps.ids) == {"doctor/en/direct", "doctor/de/direct"}
    code, out, err = main("prompts", "--source", "hub", "--lang", "de")
    assert code == 0, err
    assert "Ein Foto vom Gesicht eines Arztes." in out
    assert all(c["local_files_only"] and c["revision"] == COMMIT for c in hub.calls)
