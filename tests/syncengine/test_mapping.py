"""The pure mapping rules (syncengine.mapping): no database, no HTTP."""
from __future__ import annotations

import pytest

from syncengine import mapping

# The demo's Operations mapping, stored in another key order (as PostgreSQL's jsonb may return it).
MAPPING = {"p5": {"name": "P5", "impact": "low", "rank": 4}, "p2": {"name": "P2", "impact": "high", "rank": 1},
           "p4": {"name": "P4", "impact": "low", "rank": 3}, "p1": {"name": "P1", "impact": "top", "rank": 0},
           "p3": {"name": "P3", "impact": "medium", "rank": 2}}


@pytest.mark.parametrize("impact, priority", [("top", "p1"), ("high", "p2"), ("medium", "p3"), ("low", "p4")])
def test_the_reverse_rule_picks_the_highest_ranked_priority_mapped_to_the_impact(impact, priority):
    assert mapping.priority_for_impact(impact, use_custom_mapping=True, mapping=MAPPING) == priority


def test_without_rank_the_natural_order_of_the_names_decides():
    unranked = {"a": {"name": "P10", "impact": "low"}, "b": {"name": "P9", "impact": "low"}}
    assert mapping.priority_for_impact("low", use_custom_mapping=True, mapping=unranked) == "b"


def test_no_priority_when_none_is_mapped_or_the_mapping_is_off():
    only_top = {"p1": {"name": "P1", "impact": "top", "rank": 0}}
    assert mapping.priority_for_impact("low", use_custom_mapping=True, mapping=only_top) is None
    assert mapping.priority_for_impact("top", use_custom_mapping=False, mapping=only_top) is None


def test_impact_for_a_priority_falls_back_to_the_default():
    kwargs = {"use_custom_mapping": True, "mapping": MAPPING, "default_impact": "medium"}
    assert mapping.impact_for_priority("p1", **kwargs) == "top"
    assert mapping.impact_for_priority("unknown", **kwargs) == "medium"
    assert mapping.impact_for_priority("p1", **{**kwargs, "use_custom_mapping": False}) == "medium"


@pytest.mark.parametrize("zenduty, current, expected", [
    (2, "assigned", {"status": "in_progress"}),
    (2, "in_progress", None),
    (2, "completed", None),  # an acknowledgement never reopens a completed request
    (3, "completed", None),
    (1, "assigned", None),
])
def test_the_xurrent_change_for_a_zenduty_status(zenduty, current, expected):
    assert mapping.xurrent_change_for(zenduty, current) == expected


def test_resolving_completes_as_solved_with_a_note_naming_the_assignee():
    change = mapping.xurrent_change_for(3, "in_progress", assignee="Dwight Schrute")
    assert change == {"status": "completed", "completion_reason": "solved",
                      "internal_note": "Resolved in Zenduty (assignee: Dwight Schrute)."}


def test_statuses_only_move_forward():
    assert mapping.is_stale_zenduty_status(2, 3) and not mapping.is_stale_zenduty_status(3, 2)
    assert not mapping.is_stale_zenduty_status(1, None)


def test_the_marker_survives_truncation_and_is_found_again():
    body = mapping.incident_body_for_request({"id": 42, "subject": "x" * 1000}, first_note="", request_url="u",
                                             service_id="s", team_priority=None)
    assert len(body["title"]) == mapping.TITLE_MAX and body["title"].startswith("[Xurrent #42] ")
    assert mapping.request_id_in_title(body["title"]) == "42"
    assert mapping.request_id_in_title("Checkout [Xurrent #42]") is None  # a prefix, not anywhere


def test_the_request_body_names_the_incident():
    incident = {"unique_id": "abc", "incident_number": 7, "title": "Down", "summary": "5xx"}
    body = mapping.request_body_for_incident(incident, service_instance_id="3", impact="top", incident_url="L")
    assert body == {"subject": "Down", "category": "incident", "impact": "top", "service_instance_id": 3,
                    "source": "Zenduty", "sourceID": "abc", "internal_note": "5xx\n\nZenduty incident #7: L"}
