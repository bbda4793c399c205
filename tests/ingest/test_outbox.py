"""Each registered site's outbox gets its own query list and DQ summary after every ingest, and nothing else."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest

from pipeline.config import ConfigError, load_study, outbox_dir
from pipeline.ingest.outbox import site_folder, write_outboxes
from tests.ingest.helpers import Deployment, enrollment, make_deployment, symptom

FILES = {"query_list.csv", "query_list.html", "dq_summary.csv", "dq_summary.html"}
# landing folders crafted to reach another site's outbox, or outside the outbox
CRAFTED = ["..NL02", "NL02%2F..", "NL01 ", "NL01\u2215..\u2215NL02", "...", "NL02\\..\\NL01"]


def rows(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))


def everything(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")}


@pytest.fixture
def dep(tmp_path: Path) -> Deployment:
    dep = make_deployment(tmp_path / "study")
    dep.deliver("NL01", "leiden.csv", [enrollment("E1"), symptom("E2", leg_pain_nrs=14)])
    dep.deliver("NL02", "hague.csv", [enrollment("E9", patient="P9", site="NL02"),
                                      symptom("E10", patient="P9", site="NL02", back_pain_nrs=-1),
                                      symptom("E11", patient="P9", site="NL02", leg_pain_nrs=42)])
    for n, name in enumerate(CRAFTED):
        dep.deliver(name, f"crafted{n}.csv", [enrollment(f"X{n}", patient=f"Q{n}", site="NL02"),
                                              symptom(f"Y{n}", patient=f"Q{n}", site="NL02", leg_pain_nrs=77)])
    return dep


def test_each_site_outbox_holds_its_own_rows_only_even_with_crafted_site_folders(dep: Deployment) -> None:
    outside_before = everything(dep.root) - everything(dep.root / "outbox")
    dep.ingest()
    root = dep.root / "outbox"
    assert outbox_dir(dep.paths, dep.study) == root.resolve()
    assert {p.name for p in root.iterdir()} == {"NL01", "NL02"}  # no folder for an unregistered site id
    for site in ("NL01", "NL02"):
        assert {p.name for p in (root / site).iterdir()} == FILES
    assert [r["file"] for r in rows(root / "NL01" / "query_list.csv")] == ["NL01/leiden.csv"]
    assert [r["event_id"] for r in rows(root / "NL02" / "query_list.csv")] == ["E10", "E11"]
    for site, other in (("NL01", "NL02"), ("NL02", "NL01")):
        for path in (root / site).iterdir():
            text = path.read_text(encoding="utf-8")
            assert other not in text.replace(f"site {site}", ""), (path, other)
            assert not any(f"crafted{n}" in text for n in range(len(CRAFTED))), path
            assert "Q0" not in text and "77" not in text
    summary = rows(root / "NL02" / "dq_summary.csv")
    assert len(summary) == 1
    assert (summary[0]["files"], summary[0]["received"], summary[0]["rejected"]) == ("1", "3", "2")
    # nothing was written beside the outbox except the warehouse
    new_outside = everything(dep.root) - everything(root) - {root} - outside_before
    assert all(dep.paths.warehouse in p.parents or p == dep.paths.warehouse for p in new_outside), new_outside
    # the warehouse still lists every folder's queries, under a safe name
    assert (dep.paths.queries_dir / "_unregistered").is_dir()


def test_outbox_files_are_replaced_when_the_site_corrects_its_rows(dep: Deployment) -> None:
    dep.ingest()
    path = dep.root / "outbox" / "NL02" / "query_list.csv"
    assert len(rows(path)) == 2
    dep.deliver("NL02", "hague-fix.csv", [symptom("E10", patient="P9", site="NL02")])
    dep.ingest()
    assert [r["event_id"] for r in rows(path)] == ["E11"]
    assert not list((dep.root / "outbox").rglob(".*.tmp"))


def test_a_folder_for_an_unregistered_or_escaping_site_id_is_refused(dep: Deployment, tmp_path: Path) -> None:
    study = dep.study
    root = tmp_path / "box"
    root.mkdir()
    for crafted in ("../NL02", "NL01/../NL02", "..", "NL03"):
        with pytest.raises(ConfigError, match="unregistered site"):
            site_folder(root, crafted, study)
    os.symlink(tmp_path, root / "NL01")  # a link planted in the outbox
    with pytest.raises(ConfigError, match="does not lie directly in"):
        site_folder(root, "NL01", study)


@pytest.mark.parametrize("outbox", ["landing", "landing/NL01", "."])
def test_an_outbox_that_the_ingest_would_read_is_refused(tmp_path: Path, outbox: str) -> None:
    dep = make_deployment(tmp_path / "s", extra_toml=f'outbox = "{outbox}"')
    with pytest.raises(ConfigError, match="must lie outside the landing zone"):
        write_outboxes(dep.paths, load_study(dep.paths.study), {})


def test_the_outbox_key_is_relative_to_the_study_file(tmp_path: Path) -> None:
    dep = make_deployment(tmp_path / "s", extra_toml='outbox = "../for-sites"')
    assert outbox_dir(dep.paths, load_study(dep.paths.study)) == (tmp_path / "for-sites").resolve()
