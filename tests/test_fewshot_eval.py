"""The few-shot protocol, the simulation, and the datasets they read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tagger_gui.core.fewshot.datasets import DatasetError, read_magnatagatune, read_tag_csv
from tagger_gui.core.fewshot.evaluate import (
    ALL,
    draw_positives,
    few_shot_eval,
    grouped_split,
    write_report,
)
from tagger_gui.core.fewshot.simulate import simulate
from tagger_gui.core.fewshot.simulate import write_report as write_sim_report
from tagger_gui.core.tasks import run_task

from .fewshot_data import synthetic_set


def test_grouped_split_keeps_groups_whole_and_tags_on_both_sides():
    data, _ = synthetic_set()
    train, test = grouped_split(data, np.random.default_rng(0), test_fraction=0.3)
    assert not set(data.groups[train]) & set(data.groups[test])
    assert len(train) + len(test) == len(data.relpaths)
    for j in range(len(data.tags)):
        assert data.Y[train, j].any() and data.Y[test, j].any()


def test_draw_positives_prefers_distinct_groups():
    rng = np.random.default_rng(0)
    rows = np.arange(100, 120)
    groups = (rows - 100) // 4  # 5 groups of 4, aligned with rows
    got = draw_positives(rows, groups, 5, rng)
    assert len(got) == 5 and len(set(groups[got - 100])) == 5
    got = draw_positives(rows, groups, 7, rng)
    assert len(got) == 7 and len(set(groups[got - 100])) == 5
    assert draw_positives(rows, groups, ALL, rng).tolist() == rows.tolist()


def test_protocol_figures_grow_with_k_and_beat_chance(tmp_path):
    data, X = synthetic_set(n_groups=80, seed=1)
    noise = np.random.default_rng(9).normal(size=X.shape).astype(np.float32)
    result = run_task(
        few_shot_eval(
            data,
            {"signal": X, "noise": noise},
            ks=(1, 5, ALL),
            seeds=3,
            protocols=("paper", "newtag"),
        )
    )
    summary = {(r["feature"], r["protocol"], r["k"]): r for r in result.summary()}
    for protocol in ("paper", "newtag"):
        assert summary[("signal", protocol, "5")]["auc_mean"] > 0.8
        assert (
            summary[("signal", protocol, "all")]["auc_mean"]
            >= (summary[("signal", protocol, "1")]["auc_mean"])
        )
        assert abs(summary[("noise", protocol, "5")]["auc_mean"] - 0.5) < 0.1
    n_records = 2 * 3 * 2 * 3 * len(data.tags)
    assert len(result.records) == n_records
    paper_k1 = [r for r in result.records if r["protocol"] == "paper" and r["k"] == 1]
    assert all(r["n_pos"] >= 1 for r in paper_k1)
    newtag_k5 = [r for r in result.records if r["protocol"] == "newtag" and r["k"] == 5]
    assert all(r["n_pos"] == 5 and r["n_neg"] == 25 for r in newtag_k5)
    paths = write_report(result, tmp_path)
    payload = json.loads(paths["json"].read_text())
    assert payload["summary"] and payload["format"] == 1
    md = paths["md"].read_text()
    assert "| paper | signal |" in md
    assert "## Per tag: signal, paper protocol" in md and "| tag0 |" in md
    assert paths["png"].read_bytes()[:4] == b"\x89PNG"


def test_variants_are_compared_on_the_same_draws():
    data, X = synthetic_set(seed=3)
    result = run_task(
        few_shot_eval(
            data,
            {"x": X},
            ks=(5,),
            seeds=2,
            variants={"a": {"C": 0.1}, "b": {"C": 0.1}},
        )
    )
    a = [r["auc"] for r in result.records if r["variant"] == "a"]
    b = [r["auc"] for r in result.records if r["variant"] == "b"]
    assert a == b


def test_simulation_top_finds_more_positives_than_random(tmp_path):
    data, X = synthetic_set(n_groups=120, n_tags=3, seed=6)
    result = run_task(simulate(data, X, k0=3, batch=10, budget=40, seeds=2, feature="synthetic"))
    at = result.at_labels(40)
    assert at["top"]["found"] > 1.5 * at["random"]["found"]
    curves = result.curves()
    assert curves["random"]["labels"] == [0, 10, 20, 30, 40]
    # the test side is never offered: found can not exceed the pool's positives
    assert all(r["found"] <= r["pool_positives"] for r in result.records)
    needed = result.labels_to_target()
    assert set(needed) == {"top", "uncertain", "diverse", "random"}
    paths = write_sim_report(result, tmp_path)
    assert "| top |" in paths["md"].read_text()
    assert json.loads(paths["json"].read_text())["curves"]["top"]["labels"][-1] == 40


def _write(path, text, encoding="utf-8"):
    path.write_text(text, encoding=encoding)
    return path


def test_tag_csv_reads_groups_absolute_paths_and_drops_thin_tags(tmp_path):
    for name in ("a/1.flac", "a/2.flac", "b/3.flac", "c/4.flac", "d/5.flac"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    csv_path = _write(
        tmp_path / "labels.csv",
        "path,tag\n"
        "a/1.flac,brass\nb/3.flac,brass\n"
        f"{tmp_path / 'c/4.flac'},brass\n"
        "a/2.flac,rare\n"
        "d/5.flac,other\n",
    )
    data = read_tag_csv(csv_path, tmp_path)
    assert data.tags == ["brass"]  # 'rare' and 'other' have one group each
    assert "c/4.flac" in data.relpaths
    assert (
        data.groups[data.relpaths.index("a/1.flac")] == data.groups[data.relpaths.index("a/2.flac")]
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("file,label\nx,y\n", "line 1: the header"),
        ("path,tag\na/1.flac\n", "line 2: 1 columns"),
        ("path,tag\na/1.flac,\n", "line 2: empty path or tag"),
        ("path,tag\nmissing.flac,x\n", "not under"),
        ("path,tag,group\na/1.flac,x,g1\na/1.flac,y,g2\n", "line 3: a/1.flac is in group"),
        ("", "empty file"),
    ],
)
def test_tag_csv_errors_name_the_line(tmp_path, text, message):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/1.flac").write_bytes(b"")
    with pytest.raises(DatasetError, match=message):
        read_tag_csv(_write(tmp_path / "l.csv", text), tmp_path)


def test_tag_csv_not_utf8_says_so(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a/é.flac").write_bytes(b"")
    path = _write(tmp_path / "l.csv", "path,tag\na/é.flac,x\n", encoding="latin-1")
    with pytest.raises(DatasetError, match="not UTF-8"):
        read_tag_csv(path, tmp_path)


def test_magnatagatune_layout(tmp_path):
    tags = ["guitar", "classical", "slow", "techno"]
    header = "\t".join(['"clip_id"', *[f'"{t}"' for t in tags], '"mp3_path"'])
    rows = []
    files = [
        ("0/a-song1-01-x-0-29.mp3", [1, 0, 1, 0]),
        ("0/a-song1-01-x-30-59.mp3", [1, 0, 0, 0]),
        ("c/b-song2-02-y-0-29.mp3", [0, 1, 1, 0]),
        ("d/c-song3-03-z-0-29.mp3", [1, 1, 0, 0]),
        ("f/d-song4-04-w-0-29.mp3", [0, 0, 1, 1]),
    ]
    for i, (p, v) in enumerate(files):
        (tmp_path / p).parent.mkdir(exist_ok=True)
        (tmp_path / p).write_bytes(b"")
        rows.append("\t".join([f'"{i}"', *[f'"{x}"' for x in v], f'"{p}"']))
    rows.append('"9"\t"1"\t"0"\t"0"\t"0"\t""')  # a clip without audio
    _write(tmp_path / "annotations_final.csv", header + "\n" + "\n".join(rows) + "\n")
    data = read_magnatagatune(tmp_path, n_tags=3)
    assert data.tags == ["guitar", "classical", "slow"]  # the 3 most frequent, file order
    assert data.split.tolist() == ["train", "train", "valid", "test", "test"]
    assert data.groups[0] == data.groups[1] != data.groups[2]
    train, test = grouped_split(data, np.random.default_rng(0))
    assert train.tolist() == [0, 1] and test.tolist() == [3, 4]
    with pytest.raises(DatasetError, match=r"annotations_final\.csv"):
        read_magnatagatune(tmp_path / "0")
