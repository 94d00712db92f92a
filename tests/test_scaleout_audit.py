"""Scale-out of the audit: `magbig audit --shard I/N` + `magbig merge`, and `--engine ray` on
`magbig audit` and `magbig classify` (skipped without Ray).

A sharded-and-merged audit and a Ray audit must be the audit one process makes: the same PNG
bytes, manifest rows (timing aside), units, rejections, labels, audit_result and statistics.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import polars as pl
import pytest

AUDIT_YAML = """\
name: scale
model: world
subjects: [pilot, nurse, firefighter]
langs: [en, de]
formulations: [direct]
n: 3
steps: 3
face_policy: reject
max_tries: 2
batch_size: 2
classifiers: [{name: world, options: {batch_size: 2}}, {name: world, options: {alias: second, batch_size: 3}}]
n_boot: 100
"""


def _table(path: Path, drop: tuple[str, ...] = ()) -> pl.DataFrame:
    df = pl.read_parquet(path).drop(*drop)
    return df.sort(df.columns)


def _snapshot(run: Path) -> dict:
    info = json.loads((run / "run.json").read_text(encoding="utf-8"))
    return {
        "pngs": {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in (run / "images").glob("*.png")},
        "manifest": _table(run / "generations.parquet", ("seconds",)).to_dicts(),
        **{name: _table(run / f"{name}.parquet").to_dicts() for name in ("units", "labels", "rejections")},
        "audit_result": info["audit_result"], "audit_status": info["audit_status"], "specs": info["specs"],
    }


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("audit-scale")
    (root / "audit.yaml").write_text(AUDIT_YAML, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def single(root):
    """The reference: the whole audit in one process."""
    from magbig.audit import load_audit_config, run_audit

    run_audit(load_audit_config(root / "audit.yaml"), root / "single", progress=False, report_files=False)
    return root / "single"


@pytest.fixture
def magbig_cli(monkeypatch, capsys):
    from conftest import run_in_process

    from magbig import cli as magbig_cli

    return run_in_process(monkeypatch, capsys, "magbig", magbig_cli.main)


@pytest.mark.slow
def test_three_audit_shards_merged_equal_one_process(root, single, magbig_cli):
    shards = [root / f"shard{i}" for i in range(3)]
    for i, out in enumerate(shards):
        code, stdout, err = magbig_cli("audit", "--config", root / "audit.yaml", "--shard", f"{i}/3", "--out", out,
                                       "--no-progress")
        assert code == 0, err
        assert "magbig merge" in stdout and not (out / "report.html").exists()  # a shard is no audit yet
        assert json.loads((out / "run.json").read_text())["shard"] == {"index": i, "count": 3}
    parts = [pl.read_parquet(s / "units.parquet").filter(pl.col("attempt") == 0).height for s in shards]
    assert sum(parts) == 3 * 2 * 3 and all(parts)  # every slot in exactly one shard

    # some of the shards only, or one twice: refused, nothing written (it would look complete)
    code, out, err = magbig_cli("merge", root / "partial", *shards[:2])
    assert code == 2 and "2/3 missing" in err and not (root / "partial").exists(), err
    code, out, err = magbig_cli("merge", root / "partial", shards[0], shards[0], shards[1], shards[2])
    assert code == 2 and "given twice" in err and not (root / "partial").exists(), err

    code, out, err = magbig_cli("merge", root / "merged", *shards)
    assert code == 0, err
    assert _snapshot(root / "merged") == _snapshot(single)

    before = {p: p.read_bytes() for p in sorted((root / "merged").rglob("*")) if p.is_file()}
    code, out, err = magbig_cli("merge", root / "merged", *shards)
    assert code == 0 and "0 copied" in out, err
    assert {p: p.read_bytes() for p in sorted((root / "merged").rglob("*")) if p.is_file()} == before

    # the merged directory is an ordinary audit: the same statistics as the single run's
    from magbig.audit import report

    merged = report(root / "merged", n_boot=100)["report"].summary()
    reference = report(single, n_boot=100)["report"].summary()
    assert merged["groups"] == reference["groups"]


def test_merge_refuses_an_unfinished_or_foreign_shard(root, single, magbig_cli, tmp_path):
    info = json.loads((single / "run.json").read_text())
    half = tmp_path / "half"
    half.mkdir()
    for name in ("generations.parquet",):
        (half / name).write_bytes((single / name).read_bytes())
    (half / "run.json").write_text(json.dumps({**info, "audit_status": "interrupted"}))
    code, out, err = magbig_cli("merge", tmp_path / "m", single, half)
    assert code == 2 and "interrupted" in err and "rerun its command" in err
    assert not (tmp_path / "m").exists()

    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "generations.parquet").write_bytes((single / "generations.parquet").read_bytes())
    (plain / "run.json").write_text(json.dumps({k: v for k, v in info.items() if k != "audit"}))
    code, out, err = magbig_cli("merge", tmp_path / "m", plain)
    assert code == 2 and "neobabel merge" in err and not (tmp_path / "m").exists()


@pytest.mark.parametrize("args,needle", [
    (["--shard", "3/3"], "--shard"),
    (["--workers", "2"], "--engine ray"),
    (["--model", "oracle", "--engine", "ray"], "oracle runs in one process"),
])
def test_bad_scale_out_options_exit_2(root, magbig_cli, tmp_path, args, needle):
    code, out, err = magbig_cli("audit", "--config", root / "audit.yaml", "--out", tmp_path / "bad", "--no-progress",
                                *args)
    assert code == 2 and needle in err, err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "bad").exists()


# -- Ray -----------------------------------------------------------------------------------

@pytest.mark.slow
def test_ray_audit_and_classify_equal_one_process(root, single, magbig_cli, ray_cluster):
    code, out, err = magbig_cli("audit", "--config", root / "audit.yaml", "--engine", "ray", "--workers", "2",
                                "--out", root / "ray", "--no-progress")
    assert code == 0, err
    assert _snapshot(root / "ray") == _snapshot(single)
    info = json.loads((root / "ray" / "run.json").read_text())
    assert info["engine"] == "ray" and info["workers"] == 2 and info["torch_threads"] == 1

    # classify on Ray actors: the labels one process writes
    code, out, err = magbig_cli("classify", root / "ray", "--classifier", "world", "--option", "alias=third",
                                "--engine", "ray", "--workers", "2", "--no-progress")
    assert code == 0, err
    assert json.loads(out[:out.rindex("}") + 1])["labelled_now"] > 0
    from magbig.audit import relabel

    relabel(single, "world", {"alias": "third"}, progress=False)
    third = [_table(r / "labels.parquet").filter(pl.col("classifier") == "third").to_dicts()
             for r in (root / "ray", single)]
    assert third[0] == third[1] and third[0]
