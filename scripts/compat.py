"""Version bookkeeping for the compatibility runs of ``scripts/test.sh`` (standard library only).

    python scripts/compat.py oldest-constraints
        print requirements/lock.txt with every package of FLOORS pinned at pyproject's lower bound
    python scripts/compat.py record --mode latest|oldest --junit FILE
        (run with the venv's python) write that run's table and a history line into docs/compatibility.md

The tables list loclip's direct dependencies (every extra): the range pyproject allows, the locked version,
the version the run installed, the date and the test result read from pytest's JUnit XML.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import sys
import tempfile
import xml.etree.ElementTree as ET
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "lock.txt"
DOC = ROOT / "docs" / "compatibility.md"
# Packages whose lower bound in pyproject is tested (--oldest): the ones whose API loclip follows closely.
FLOORS = ("transformers",)


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_lock(path: Path = LOCK) -> dict[str, str]:
    """``{canonical name: version}`` of the ``name==version`` lines of a constraints file."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s;#]+)", line.strip())
        if match:
            pins[canonical(match[1])] = match[2]
    return pins


def floor(package: str, pyproject: Path = ROOT / "pyproject.toml") -> str:
    """The ``>=`` bound of ``package`` in pyproject's dependencies (a ValueError naming it when there is none)."""
    match = re.search(rf'"{re.escape(package)}\s*>=\s*([^,"\s;]+)', pyproject.read_text())
    if not match:
        raise ValueError(f"pyproject.toml gives no lower bound (>=) for {package!r}, listed in FLOORS")
    return match[1]


def oldest_constraints() -> str:
    floors = {canonical(p): floor(p) for p in FLOORS}
    lines = [
        f"# requirements/lock.txt with {', '.join(f'{p}=={v}' for p, v in floors.items())} "
        "(pyproject's floors); written by scripts/compat.py oldest-constraints"
    ]
    for line in LOCK.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.\-]+)==", line.strip())
        if not (match and canonical(match[1]) in floors):
            lines.append(line)
    lines += [f"{name}=={version}" for name, version in floors.items()]
    return "\n".join(lines) + "\n"


def direct_requirements(dist: str = "loclip") -> dict[str, str]:
    """``{canonical name: specifier}`` of the installed distribution's requirements, extras included."""
    found: dict[str, str] = {}
    for req in metadata.requires(dist) or []:
        match = re.match(r"^\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*([^;]*)", req)
        if not match or canonical(match[1]) == canonical(dist):
            continue
        found.setdefault(canonical(match[1]), match[3].strip() or "any")
    return dict(sorted(found.items()))


def setup_torch() -> str:
    """The torch version scripts/setup.sh installs first (its ``TORCH_VERSION`` default): torch is not in the lock."""
    match = re.search(r"TORCH_VERSION:-([^}]+)\}", (ROOT / "scripts" / "setup.sh").read_text())
    return match[1] if match else "—"


def public(version: str) -> str:
    """``2.13.0+cpu`` → ``2.13.0`` (a local build label is not a different release)."""
    return version.split("+", 1)[0]


def installed(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def junit_result(path: Path) -> str:
    """ "passed (460 passed, 1 skipped)" or "FAILED (3 failed, 457 passed)" from pytest's JUnit XML."""
    if not path.exists():
        return f"FAILED (no test report at {path.name}: the run did not finish)"
    root = ET.parse(path).getroot()
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    count = {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")}
    passed = count["tests"] - count["failures"] - count["errors"] - count["skipped"]
    parts = [
        f"{count['failures']} failed" if count["failures"] else "",
        f"{count['errors']} errors" if count["errors"] else "",
        f"{passed} passed",
        f"{count['skipped']} skipped" if count["skipped"] else "",
    ]
    ok = passed > 0 and not count["failures"] and not count["errors"]
    return f"{'passed' if ok else 'FAILED'} ({', '.join(p for p in parts if p)})"


def replace_block(text: str, name: str, body: str) -> str:
    begin, end = f"<!-- BEGIN {name} -->", f"<!-- END {name} -->"
    if begin not in text or end not in text:
        raise ValueError(f"{DOC.name} has no '{begin}' ... '{end}' block to write into")
    head, rest = text.split(begin, 1)
    return head + begin + "\n" + body.rstrip("\n") + "\n" + end + rest.split(end, 1)[1]


def write_atomic(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def record(mode: str, junit: Path) -> None:
    today = dt.datetime.now(dt.timezone.utc).date().isoformat()
    result = junit_result(junit)
    locked = {**read_lock(), "torch": setup_torch()}
    tried = "newest tried" if mode == "latest" else "oldest tried"
    rows = [f"| package | pyproject range | locked | {tried} | date | result |", "|---|---|---|---|---|---|"]
    for name, spec in direct_requirements().items():
        version = installed(name)
        lock = locked.get(name, "—")
        shown = version if public(version) == lock else f"**{version}**"
        rows.append(f"| {name} | `{spec}` | {lock} | {shown} | {today} | {result.split(' ')[0]} |")
    env = f"Python {platform.python_version()} ({platform.machine()}), torch {installed('torch')}"
    body = "\n".join([*rows, "", f"Run on {today}: {result}; {env}. Bold: differs from the lock."])
    text = replace_block(DOC.read_text(), mode, body)
    history = f"| {today} | `--{mode}` | {installed('transformers')} | {result} |"
    begin = "<!-- BEGIN history -->"
    old = text.split(begin, 1)[1].split("<!-- END history -->", 1)[0].strip("\n").splitlines()
    header, entries = old[:2], old[2:]
    text = replace_block(text, "history", "\n".join([*header, history, *entries]))
    write_atomic(DOC, text)
    print(f"scripts/compat.py: {mode} run {result}; recorded in {DOC.relative_to(ROOT)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("oldest-constraints", help="print the lock with FLOORS at pyproject's lower bounds")
    rec = sub.add_parser("record", help="write a run's versions and result into docs/compatibility.md")
    rec.add_argument("--mode", choices=("latest", "oldest"), required=True)
    rec.add_argument("--junit", type=Path, required=True, help="pytest's --junitxml report of the run")
    args = parser.parse_args(argv)
    if args.command == "oldest-constraints":
        sys.stdout.write(oldest_constraints())
    else:
        record(args.mode, args.junit)


if __name__ == "__main__":
    main()
