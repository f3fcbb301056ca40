"""``followup init DIR``: a working starting set for a new team.

The config (the commented example, switched to shadow mode, so nothing is sent until the team
has looked), the shipped rules and templates to edit, and an empty clients CSV with its header.
Nothing that exists is overwritten: a file already there is reported and the set is not written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from agent.errors import ConfigError, Problem

CLIENTS_HEADER = (
    "name,emails,domains,company,language,zone,country,tier,owner,tags,"
    "first_name,last_name,honorific,gender\n"
)
SOURCE = Path(__file__).resolve().parent.parent  # a source checkout: the repository's root


def shipped(name: str) -> Path:
    """rules/, templates/ or config.example.toml as shipped: in the wheel, or the checkout."""
    parts = ("example", name) if name.endswith(".toml") else (name,)
    packaged = resources.files("agent").joinpath("bundled", *parts)
    if packaged.is_dir() or packaged.is_file():
        return Path(str(packaged))
    return SOURCE / name


@dataclass(frozen=True)
class Started:
    folder: Path
    written: list[Path]


def init(folder: Path) -> Started:
    """Write config.toml, rules/, templates/ and clients.csv into ``folder`` (made if need be).

    Raises ``ConfigError`` naming each file already there, and writes nothing then.
    """
    targets = {
        "config.toml": folder / "config.toml",
        "rules": folder / "rules",
        "templates": folder / "templates",
        "clients.csv": folder / "clients.csv",
    }
    there = [path for path in targets.values() if path.exists()]
    if there:
        raise ConfigError(
            [
                Problem(str(path), "", "exists already: init writes into a new or empty folder")
                for path in there
            ]
        )
    folder.mkdir(parents=True, exist_ok=True)
    example = shipped("config.example.toml").read_text(encoding="utf-8")
    # A new team starts in shadow mode: everything planned and recorded, nothing sent.
    config = example.replace('\nmode = "draft"\n', '\nmode = "shadow"\n', 1)
    targets["config.toml"].write_text(config, encoding="utf-8")
    shutil.copytree(shipped("rules"), targets["rules"], ignore=_not_data)
    shutil.copytree(shipped("templates"), targets["templates"], ignore=_not_data)
    targets["clients.csv"].write_text(CLIENTS_HEADER, encoding="utf-8")
    # The example's local mailbox: Maildirs a fetcher (mbsync, offlineimap) fills.
    for box in ("inbox", "sent", "drafts"):
        for sub in ("cur", "new", "tmp"):
            (folder / "mail" / "asha" / box / sub).mkdir(parents=True, exist_ok=True)
    return Started(folder, list(targets.values()))


def _not_data(_folder: str, names: list[str]) -> list[str]:
    return [n for n in names if n in ("__pycache__", "__init__.py") or n.endswith(".pyc")]
