"""The fault suite's table: each fault test records how many tries it made, how many the
product survived and how much was lost (points, surviving processes, bytes served from outside a
run, answers of 500, whatever the fault counts). ``pytest_terminal_summary`` prints it at the end
of the session, so CI's log shows ``fault | tries | survived | lost`` for every fault."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Row:
    fault: str
    tries: int = 0
    survived: int = 0
    lost: int = 0
    unit: str = ""  # what ``lost`` counts: "points", "processes", "bytes", "500s", ...
    notes: list[str] = field(default_factory=list)


ROWS: dict[str, Row] = {}


class Recorder:
    """``fault.record("name", survived=True, lost=0, unit="points")`` once per try."""

    def record(self, fault: str, *, survived: bool, lost: int = 0, unit: str = "", note: str = "") -> None:
        row = ROWS.setdefault(fault, Row(fault, unit=unit))
        row.tries += 1
        row.survived += int(bool(survived))
        row.lost += int(lost)
        row.unit = row.unit or unit
        if note:
            row.notes.append(note)


def render() -> str:
    if not ROWS:
        return ""
    head = ("fault", "tries", "survived", "lost", "unit")
    body = [(r.fault, str(r.tries), str(r.survived), str(r.lost), r.unit) for r in ROWS.values()]
    widths = [max(len(x[i]) for x in [head, *body]) for i in range(len(head))]
    fmt = " | ".join(f"{{:{'<' if i in (0, 4) else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*head), "-+-".join("-" * w for w in widths)]
    lines += [fmt.format(*b) for b in body]
    total_lost = sum(r.lost for r in ROWS.values())
    total = sum(r.tries for r in ROWS.values())
    ok = sum(r.survived for r in ROWS.values())
    lines.append(f"{len(ROWS)} faults, {total} tries, {ok} survived, {total_lost} lost in all")
    return "\n".join(lines)
