"""Does a custom mapping still fit the team's priorities? What the integration pages show.

The mapping is keyed by the Zenduty priority's id, so a renamed priority keeps
its impact (the pages show its new name). A team's priorities change in
Zenduty without any webhook, so the pages compare the mapping with the team's
priorities as last read (``integrations.team_priorities``), never live:

* a priority the team has and the mapping lacks: incidents with it get the
  default impact (``syncengine.mapping.impact_for_priority``) until the mapping
  gives it one;
* a priority the mapping names and the team no longer has: its row is no
  longer used for incidents, but the reverse rule (impact → priority,
  ``syncengine.mapping``) may still pick it for a request's incident, which
  Zenduty cannot accept.

Saving the mapping again (the form lists the team's priorities live) ends both.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from integrations.models import Impact, OutgoingIntegration, TeamPriorities

MAPPED, MISSING, GONE = "mapped", "missing", "gone"


@dataclass(frozen=True)
class Row:
    """One line of the mapping table: a priority by its current name, and the impact it gets."""

    priority_id: str
    name: str
    impact: str  # "" when the mapping gives it none
    state: str  # MAPPED, MISSING (the team has it, the mapping lacks it), GONE (the reverse)

    @property
    def impact_label(self) -> str:
        return Impact(self.impact).label if self.impact in Impact.values else ""


@dataclass
class MappingCheck:
    """The custom mapping of one integration against its team's priorities as last read."""

    custom: bool
    team_name: str
    default_impact: str
    rows: list[Row] = field(default_factory=list)
    read_at: datetime | None = None
    read_error: str = ""
    # Whether requests create incidents, so the reverse rule (impact → priority) is used.
    reverse: bool = False

    @property
    def default_impact_label(self) -> str:
        return Impact(self.default_impact).label if self.default_impact in Impact.values else self.default_impact

    @property
    def missing(self) -> list[Row]:
        return [r for r in self.rows if r.state == MISSING]

    @property
    def gone(self) -> list[Row]:
        return [r for r in self.rows if r.state == GONE]

    @property
    def drifted(self) -> bool:
        return bool(self.missing or self.gone)

    def flags(self) -> list[str]:
        """What no longer fits, each with what applies meanwhile, in sentences."""
        team = f"the {self.team_name} team" if self.team_name else "the team"
        sentences = []
        for row in self.missing:
            sentences.append(f"{row.name} is a priority of {team} in Zenduty that the mapping lacks: incidents "
                             f"with it get the Default Impact, {self.default_impact_label}, until the mapping "
                             f"gives it one.")
        for row in self.gone:
            reverse = (" A request whose impact maps back to it would ask Zenduty for a priority it no longer "
                       "has." if self.reverse else "")
            sentences.append(f"The mapping names {row.name} ({row.impact_label or 'no impact'}), which {team} no "
                             f"longer has in Zenduty: no incident can have it, so its row is not used for "
                             f"incidents.{reverse}")
        return sentences

    def drift_summary(self) -> str:
        """A few words for the list of integrations, e.g. "1 unmapped, 1 gone" ('' when it fits)."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} unmapped")
        if self.gone:
            parts.append(f"{len(self.gone)} gone")
        return ", ".join(parts)


def check(integration: OutgoingIntegration, snapshot: TeamPriorities | None) -> MappingCheck:
    """Compare the integration's stored mapping with its team's priorities as last read."""
    result = MappingCheck(custom=integration.use_custom_mapping, team_name=integration.zenduty_team_name,
                          default_impact=integration.default_impact, reverse=integration.receives_from_xurrent,
                          read_at=snapshot.read_at if snapshot else None,
                          read_error=snapshot.error if snapshot else "")
    stored = {str(k): v for k, v in (integration.priority_mapping or {}).items() if isinstance(v, dict)}
    if not integration.use_custom_mapping:
        return result
    if snapshot is None or snapshot.read_at is None:
        # Not read yet: the mapping as saved, by the names it was saved with.
        ordered = sorted(stored.items(), key=lambda item: (item[1].get("rank", float("inf")), str(item[0])))
        result.rows = [Row(pid, str(entry.get("name") or pid), str(entry.get("impact") or ""), MAPPED)
                       for pid, entry in ordered]
        return result
    current = [(str(p.get("id")), str(p.get("name") or p.get("id"))) for p in snapshot.priorities
               if isinstance(p, dict) and p.get("id")]
    current_ids = {pid for pid, _ in current}
    for pid, name in current:
        impact = str(stored.get(pid, {}).get("impact") or "")
        result.rows.append(Row(pid, name, impact, MAPPED if impact in Impact.values else MISSING))
    gone = sorted(((pid, entry) for pid, entry in stored.items() if pid not in current_ids),
                  key=lambda item: (item[1].get("rank", float("inf")), item[0]))
    result.rows += [Row(pid, str(entry.get("name") or pid), str(entry.get("impact") or ""), GONE)
                    for pid, entry in gone]
    return result


def check_integration(integration: OutgoingIntegration) -> MappingCheck:
    """:func:`check` with the integration's team snapshot read from the database (one query)."""
    from integrations.team_priorities import snapshot_of

    return check(integration, snapshot_of(integration))
