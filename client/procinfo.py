"""The one place that reads process trees and their memory from ``/proc`` (Linux), for the Flow launcher, the
tests and the benchmarks.

- :func:`process_tree`: a PID and all its descendants;
- :func:`memory_of`: (RSS, PSS, USS) summed over PIDs.

Example::

    rss, pss, uss = memory_of(process_tree(flow_pid))
"""
from __future__ import annotations

from pathlib import Path
from typing import Dict, List, Sequence, Tuple


def process_tree(root: int) -> List[int]:
    """``root`` and all its descendants (from every /proc/<pid>/stat, so children of any thread count)."""
    children: Dict[int, List[int]] = {}
    for entry in Path('/proc').iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / 'stat').read_text()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(')') + 2:].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    out, frontier = [], [root]
    while frontier:
        pid = frontier.pop()
        out.append(pid)
        frontier.extend(children.get(pid, []))
    return out


def memory_of(pids: Sequence[int]) -> Tuple[int, int, int]:
    """(sum of RSS, sum of PSS, sum of USS) in bytes over ``pids`` (a PID that is gone counts 0). RSS counts a
    shared page in every process that maps it; PSS splits it between them; USS counts private pages only."""
    rss = pss = uss = 0
    for pid in pids:
        try:
            for line in Path(f'/proc/{pid}/smaps_rollup').read_text().splitlines():
                key, _, rest = line.partition(':')
                if key in ('Rss', 'Pss', 'Private_Clean', 'Private_Dirty'):
                    value = int(rest.split()[0]) * 1024
                    if key == 'Rss':
                        rss += value
                    elif key == 'Pss':
                        pss += value
                    else:
                        uss += value
        except (OSError, ValueError, IndexError):
            continue
    return rss, pss, uss


__all__ = ['process_tree', 'memory_of']
