"""``tagger eval`` and ``tagger simulate`` end to end on real audio files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from tagger_gui.cli import main


def _tone(kind: str, seed: int, seconds: float = 4.0, sr: int = 22050) -> np.ndarray:
    """'dark' pieces are low sustained chords, 'bright' ones high, busy and noisy."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    if kind == "dark":
        f = rng.uniform(60, 120)
        y = sum(np.sin(2 * np.pi * f * r * t) for r in (1, 1.5, 2))
        y = y + rng.normal(0, 0.01, len(t))
    else:
        f = rng.uniform(1500, 3000)
        y = np.sin(2 * np.pi * f * t) * (np.mod(t, 0.125) < 0.05)
        y = y + rng.normal(0, 0.3, len(t))
    return (0.5 * y / np.max(np.abs(y))).astype(np.float32)


@pytest.fixture(scope="module")
def tagged_library(tmp_path_factory) -> tuple[Path, Path]:
    """8 'albums' of 3 clips each, half dark and half bright, embedded with handcrafted."""
    root = tmp_path_factory.mktemp("eval") / "Corpus ünïcode"
    rows = []
    for album in range(8):
        kind = "dark" if album % 2 == 0 else "bright"
        for clip in range(3):
            rel = f"album {album}/clip {clip}.flac"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(root / rel, _tone(kind, album * 10 + clip), 22050)
            rows.append((rel, kind))
            if clip == 0:
                rows.append((rel, "first"))
    labels = root / "labels.csv"
    with open(labels, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["path", "tag"])
        w.writerows(rows)
    assert main(["embed", str(root), "--backend", "handcrafted", "--workers", "0", "--quiet"]) == 0
    return root, labels


def test_eval_writes_figures_that_separate_the_tags(tagged_library, tmp_path, capsys):
    _, labels = tagged_library
    out = tmp_path / "results"
    code = main(
        [
            "eval",
            str(labels),
            "--features",
            "handcrafted",
            "--k",
            "1",
            "2",
            "all",
            "--seeds",
            "2",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| paper | handcrafted:features |" in printed or "| paper | handcrafted |" in printed
    payload = json.loads((out / "eval.json").read_text())
    summary = {(r["protocol"], r["k"]): r for r in payload["summary"]}
    assert set(payload["tags"]) == {"dark", "bright", "first"}
    # dark vs bright is easy from spectral features; 'first' is arbitrary (near chance)
    dark = [r["auc"] for r in payload["records"] if r["tag"] == "dark" and r["k"] == 2]
    assert np.mean(dark) > 0.9
    assert 0 <= summary[("paper", "all")]["ap_mean"] <= 1
    assert (out / "eval.png").stat().st_size > 1000


def test_simulate_writes_curves(tagged_library, tmp_path, capsys):
    _, labels = tagged_library
    out = tmp_path / "sim"
    code = main(
        [
            "simulate",
            str(labels),
            "--features",
            "handcrafted",
            "--k0",
            "1",
            "--batch",
            "2",
            "--budget",
            "6",
            "--seeds",
            "1",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert code == 0
    payload = json.loads((out / "simulate.json").read_text())
    assert payload["curves"]["top"]["labels"] == [0, 2, 4, 6]
    assert "| random |" in capsys.readouterr().out


def test_eval_without_embeddings_says_how_to_get_them(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    sf.write(tmp_path / "a" / "x.flac", _tone("dark", 1), 22050)
    labels = tmp_path / "labels.csv"
    labels.write_text("path,tag\na/x.flac,dark\n", encoding="utf-8")
    assert main(["eval", str(labels), "--features", "handcrafted", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no embedding cache" in err and "tagger embed" in err


def test_eval_with_an_unknown_output_names_the_choices(tagged_library, capsys):
    _, labels = tagged_library
    assert main(["eval", str(labels), "--features", "handcrafted:nope", "--quiet"]) == 2
    assert "no output 'nope'" in capsys.readouterr().err


def test_bad_probe_option_is_a_usage_error(tagged_library, capsys):
    _, labels = tagged_library
    with pytest.raises(SystemExit):
        main(["eval", str(labels), "--probe", "x:Cee=1"])
    assert "expected key=value" in capsys.readouterr().err


def test_project_export_with_predictions(tmp_path, capsys):
    """Label 2 dark pieces; the export scores every track and predicts the other dark ones."""
    root = tmp_path / "Music"
    kinds = {}
    for i in range(10):
        kind = "dark" if i % 2 == 0 else "bright"
        rel = f"album {i // 2}/{kind} {i}.flac"
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        sf.write(root / rel, _tone(kind, 100 + i), 22050)
        kinds[rel] = kind
    assert main(["embed", str(root), "--backend", "handcrafted", "--workers", "0", "--quiet"]) == 0
    assert main(["project", "init", str(root)]) == 0
    dark = sorted(r for r, k in kinds.items() if k == "dark")
    assert (
        main(["label", str(root), "dark", "--create-tag", *(str(root / r) for r in dark[:2])]) == 0
    )
    assert (
        main(["label", str(root), "dark", "--negative", str(root / "album 0/bright 1.flac")]) == 0
    )
    capsys.readouterr()
    out = tmp_path / "pred.csv"
    code = main(
        [
            "export",
            str(root),
            "-o",
            str(out),
            "--predictions",
            "--features",
            "handcrafted",
            "--threshold",
            "0.5",
        ]
    )
    assert code == 0, capsys.readouterr().err
    with open(out, encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(line for line in fh if not line.startswith("#"))]
    assert len(rows) == 10 and {r["tag"] for r in rows} == {"dark"}
    by_path = {r["path"]: r for r in rows}
    assert by_path[dark[0]]["decision"] == "positive"
    assert by_path["album 0/bright 1.flac"]["decision"] == "negative"
    assert all(r["feature"].startswith("handcrafted@") for r in rows)
    assert all(r["threshold"] == "0.5" and r["probe_version"] for r in rows)
    unlabeled = [r for r in rows if not r["decision"]]
    assert len(unlabeled) == 7
    scores = {r["path"]: float(r["score"]) for r in unlabeled}
    dark_rest = [scores[r] for r in dark[2:]]
    bright = [s for r, s in scores.items() if kinds[r] == "bright"]
    assert min(dark_rest) > max(bright)  # the ranking separates the unlabeled tracks
    for r in unlabeled:
        assert r["predicted"] == ("1" if float(r["score"]) >= 0.5 else "0")


def test_predictions_save_each_probe_with_its_provenance(tmp_path):
    from tagger_gui.core.fewshot.probe import LinearProbe
    from tagger_gui.core.project import Project
    from tagger_gui.core.tasks import run_task
    from tagger_gui.core.usecases.predicting import predict_task

    root = tmp_path / "Music"
    for i in range(6):
        kind = "dark" if i % 2 == 0 else "bright"
        (root / f"a{i}").mkdir(parents=True)
        sf.write(root / f"a{i}" / f"{kind}.flac", _tone(kind, 200 + i), 22050)
    assert main(["embed", str(root), "--backend", "handcrafted", "--workers", "0", "--quiet"]) == 0
    assert main(["project", "init", str(root)]) == 0
    assert main(["label", str(root), "dark", "--create-tag", "a0/dark.flac", "a2/dark.flac"]) == 0
    assert main(["tag", "add", str(root), "empty"]) == 0
    with Project.open(root) as project:
        preds = run_task(predict_task(project, features="handcrafted"))
        assert set(preds) == {"dark"}  # a tag without positives is not fitted
        saved = project.load_probe("dark")
        assert saved is not None
        assert saved.meta["labels"] == project.label_snapshot("dark")
        assert saved.meta["features"].startswith("handcrafted@")
        probe, meta = LinearProbe.from_bytes(saved.blob)
        assert meta["features"] == saved.meta["features"] and probe.n_positive_ == 2
        assert project.load_probe("empty") is None
