"""Print the packages whose installed version differs from the lock (.ci/dev-requirements.txt).

Run with the interpreter of an environment that took the newest releases: when its tests fail,
these are the releases to suspect.
"""

from __future__ import annotations

import re
import sys
from importlib import metadata
from pathlib import Path

PIN = re.compile(r"^([A-Za-z0-9._-]+)==([^\s;]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def main(lock: str) -> int:
    pinned = {}
    for line in Path(lock).read_text(encoding="utf-8").splitlines():
        m = PIN.match(line.strip())
        if m:
            pinned[canonical(m.group(1))] = m.group(2)
    installed = {canonical(d.metadata["Name"]): d.version for d in metadata.distributions()}
    newer = [
        f"  {name}: {pinned[name]} in the lock, {installed[name]} here"
        for name in sorted(pinned)
        if name in installed and installed[name] != pinned[name]
    ]
    if newer:
        print("Releases newer than the lock:")
        print("\n".join(newer))
    else:
        print("Every dependency is at the locked version.")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else ".ci/dev-requirements.txt"))
