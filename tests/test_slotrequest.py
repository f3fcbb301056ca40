from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from rich.console import Console

from agent.errors import UserError
from agent.slotrequest import answer_json, load_request, render_text
from agent.slots import propose

EXAMPLE = Path(__file__).parent.parent / "agent" / "demo" / "slots_request.json"


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "request.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def minimal(**changes: object) -> dict[str, object]:
    data: dict[str, object] = {
        "duration_minutes": 30,
        "window": {"start": "2026-03-02T00:00:00Z", "end": "2026-03-07T00:00:00Z"},
        "now": "2026-03-01T00:00:00Z",
        "attendees": [
            {"name": "C", "email": "c@client.example", "role": "client", "zone": "Europe/London"},
            {"name": "R", "email": "r@example.com", "zone": "Europe/Berlin"},
        ],
    }
    data.update(changes)
    return data


def test_example_request_loads_and_normalises_zones() -> None:
    req = load_request(EXAMPLE)
    assert [p.calendar.zone for p in req.parties] == [
        "Asia/Kolkata",
        "Europe/Berlin",
        "America/New_York",
    ]
    assert req.duration == timedelta(minutes=45)
    assert req.buffer_after == timedelta(minutes=15)
    assert req.client.name == "Priya Raman"
    dana = req.parties[2]
    assert not dana.required
    # The standup fixture is read relative to the request file: 13:00Z on 23 and 30 March.
    assert [b.start for b in dana.busy] == [
        datetime(2026, 3, 23, 13, tzinfo=UTC),
        datetime(2026, 3, 30, 13, tzinfo=UTC),
    ]


def test_answer_json_gives_utc_and_every_attendees_local_time() -> None:
    req = load_request(EXAMPLE)
    answer = answer_json(req, propose(req))
    json.dumps(answer)  # plain data only
    assert len(answer["slots"]) == 3
    slot = answer["slots"][0]
    assert slot["start"].endswith("Z")
    start = datetime.fromisoformat(slot["start"])
    for local in slot["local"]:
        assert datetime.fromisoformat(local["start"]) == start
    kolkata = slot["local"][0]
    assert kolkata["zone"] == "Asia/Kolkata"
    assert kolkata["start"].endswith("+05:30")
    assert isinstance(slot["score"], float)
    assert slot["reasons"]
    assert any("Europe/Berlin" in w for w in answer["warnings"])


def test_now_from_the_caller_when_the_file_has_none(tmp_path: Path) -> None:
    data = minimal()
    del data["now"]
    with pytest.raises(UserError, match="now"):
        load_request(write(tmp_path, data))
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    assert load_request(write(tmp_path, data), now=now).now == now


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    data = minimal(
        duration_minutes=0,
        colour="blue",
        window={"start": "2026-03-02T00:00:00", "end": "2026-03-07T00:00:00Z"},
        attendees=[
            {"name": "C", "role": "client", "zone": "Asia/Kolkata", "hours": "9-5"},
            {"name": "R", "zone": "Mars/Base", "weekend": ["funday"]},
            {"name": "S", "zone": "UTC", "busy_ics": ["missing.ics"], "role": "boss"},
            {"name": "T", "zone": "UTC", "busy": [{"start": "2026-03-03T10:00:00Z"}]},
        ],
    )
    with pytest.raises(UserError) as caught:
        load_request(write(tmp_path, data))
    where = {p.where: p.message for p in caught.value.problems}
    assert (
        where["attendees[1].zone"]
        == "unknown time zone 'Mars/Base'; use an IANA name such as Asia/Kolkata"
    )
    assert "duration_minutes" in where
    assert "colour" in where
    assert "has no offset" in where["window.start"]
    assert "attendees[0].hours" in where
    assert "attendees[1].weekend" in where
    assert "cannot read" in where["attendees[2].busy_ics[0]"]
    assert "attendees[2].role" in where
    assert "attendees[3].busy[0]" in where
    assert all(p.file.endswith("request.json") for p in caught.value.problems)


def test_broken_ics_is_a_problem_with_its_path(tmp_path: Path) -> None:
    (tmp_path / "broken.ics").write_bytes(
        (Path(__file__).parent / "ics" / "broken.ics").read_bytes()
    )
    data = minimal()
    attendees = data["attendees"]
    assert isinstance(attendees, list)
    attendees[1]["busy_ics"] = ["broken.ics"]
    with pytest.raises(UserError) as caught:
        load_request(write(tmp_path, data))
    [problem] = caught.value.problems
    assert problem.where == "attendees[1].busy_ics[0]"
    assert "DTSTART" in problem.message


@pytest.mark.parametrize("content", ["{", "[]", "not json"])
def test_unreadable_json(tmp_path: Path, content: str) -> None:
    path = tmp_path / "request.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(UserError):
        load_request(path)


def test_render_text_shows_local_times_and_near_misses(tmp_path: Path) -> None:
    data = minimal(
        attendees=[
            {"name": "Yuki", "role": "client", "zone": "Asia/Tokyo", "hours": "10:00-17:00"},
            {"name": "Sam", "zone": "Pacific Standard Time", "hours": "06:00-16:30"},
        ],
        window={"start": "2026-04-06T00:00:00Z", "end": "2026-04-11T00:00:00Z"},
        now="2026-04-01T00:00:00Z",
    )
    req = load_request(write(tmp_path, data))
    proposal = propose(req)
    out = StringIO()
    Console(file=out, width=160).print(render_text(req, proposal))
    text = out.getvalue()
    assert "No slot suits every required attendee" in text
    assert "Near misses" in text
    assert "America/Los_Angeles" in text
    assert "would have to" in text
    answer = answer_json(req, proposal)
    assert answer["slots"] == []
    assert answer["near_misses"][0]["stretch_minutes"] == 120
