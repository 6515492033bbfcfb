#!/usr/bin/env python3
"""Where a cold build's time above the floor goes (bench/build.sh runs this).

Reads cargo's `--timings` reports of the floor's build and of the project's, and
the project's dependency graph (`cargo metadata`). Each compilation unit of the
project that the floor does not build is charged to what brings it: the
workspace's own crates, or the direct dependencies of theirs that pull it in
(one, or all of those that do: dropping any one of them alone keeps it). Seconds are the units' own durations summed
(compiler time, not wall time: two run at once on two cores).

Usage: breakdown.py FLOOR_TARGET_DIR PROJECT_TARGET_DIR PROJECT_DIR [ROWS]
"""

import glob
import json
import re
import subprocess
import sys
from collections import defaultdict


def units(target_dir):
    """The units of the newest timing report under `target_dir`."""
    reports = sorted(glob.glob(f"{target_dir}/cargo-timings/cargo-timing-*.html"))
    if not reports:
        sys.exit(f"breakdown: no cargo --timings report under {target_dir}")
    html = open(reports[-1], encoding="utf-8").read()
    match = re.search(r"const UNIT_DATA = (\[.*?\]);", html, re.S)
    if not match:
        sys.exit(f"breakdown: no UNIT_DATA in {reports[-1]}")
    return json.loads(match.group(1))


def graph(project_dir):
    """(members, direct dependencies of the members, package id -> its dependencies,
    package id -> (name, version)) for the host platform, dev-dependencies left out."""
    host = re.search(r"host: (\S+)", subprocess.run(
        ["rustc", "-vV"], capture_output=True, text=True, check=True).stdout).group(1)
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--filter-platform", host],
        cwd=project_dir, capture_output=True, text=True, check=True).stdout)
    names = {p["id"]: (p["name"], p["version"]) for p in meta["packages"]}
    members = set(meta["workspace_members"])
    deps = {}
    for node in meta["resolve"]["nodes"]:
        deps[node["id"]] = [
            d["pkg"] for d in node["deps"]
            if any(k["kind"] in (None, "build") for k in d["dep_kinds"])
        ]
    direct = {d for m in members for d in deps[m] if d not in members}
    return members, direct, deps, names


def reach(start, deps):
    seen, todo = set(), [start]
    while todo:
        for d in deps[todo.pop()]:
            if d not in seen:
                seen.add(d)
                todo.append(d)
    return seen | {start}


def main():
    floor_dir, project_target, project_dir = sys.argv[1:4]
    rows = int(sys.argv[4]) if len(sys.argv) > 4 else 12
    floor_units = units(floor_dir)
    project_units = units(project_target)
    in_floor = {(u["name"], u["version"]) for u in floor_units}
    members, direct, deps, names = graph(project_dir)
    brought_by = defaultdict(set)
    for d in direct:
        for pkg in reach(d, deps):
            brought_by[names[pkg]].add(names[d][0])
    member_names = {names[m] for m in members}

    charged = defaultdict(float)
    crates = defaultdict(set)
    for u in project_units:
        key = (u["name"], u["version"])
        if key in in_floor:
            continue
        if key in member_names:
            who = "the workspace's own crates"
        else:
            who = " + ".join(sorted(brought_by[key])) or "?"
        charged[who] += u["duration"]
        crates[who].add(u["name"])

    floor_s = sum(u["duration"] for u in floor_units)
    project_s = sum(u["duration"] for u in project_units)
    above = sum(charged.values())
    print(f"compiler time (units' durations summed): floor {floor_s:.1f} s, "
          f"project {project_s:.1f} s, of which {above:.1f} s in units the floor "
          f"does not build:")
    for who, secs in sorted(charged.items(), key=lambda kv: -kv[1])[:rows]:
        names_list = sorted(crates[who])
        shown = ", ".join(names_list[:6]) + (", ..." if len(names_list) > 6 else "")
        print(f"  {secs:6.1f} s  {who} ({len(names_list)} crate(s): {shown})")


if __name__ == "__main__":
    main()
