from __future__ import annotations

import zoneinfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent import zones
from tests.zones import KATHMANDU, KOLKATA, LOS_ANGELES


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("India Standard Time", KOLKATA),
        ("Nepal Standard Time", KATHMANDU),
        ("Pacific Standard Time", LOS_ANGELES),
        ("W. Europe Standard Time", "Europe/Berlin"),
        ("Tokyo Standard Time", "Asia/Tokyo"),
        ("Lord Howe Standard Time", "Australia/Lord_Howe"),
        ("Argentina Standard Time", "America/Argentina/Buenos_Aires"),
        ("Asia/Calcutta", KOLKATA),
        ("Asia/Katmandu", KATHMANDU),
        ("US/Pacific", LOS_ANGELES),
        ("  asia/kolkata ", KOLKATA),
        ("UTC", "UTC"),
        ("Etc/UTC", "UTC"),
        ("Z", "UTC"),
        ("/freeassociation.sourceforge.net/Tzfile/Europe/Berlin", "Europe/Berlin"),
        # A location the tz database merged with another keeps the name a person chose.
        ("Europe/Amsterdam", "Europe/Amsterdam"),
    ],
)
def test_to_iana_normalises(name: str, expected: str) -> None:
    assert expected == zones.to_iana(name)


@pytest.mark.parametrize("name", ["Mars/Base", "", "Standard Time", "Asia/Kolkata/Extra"])
def test_unknown_zone_is_refused_by_name(name: str) -> None:
    with pytest.raises(ValueError, match="unknown time zone"):
        zones.to_iana(name)


def test_same_zone_sees_through_spellings() -> None:
    assert zones.same_zone("Asia/Calcutta", "India Standard Time")
    assert zones.same_zone("Asia/Katmandu", "Nepal Standard Time")
    assert zones.same_zone("Europe/Amsterdam", "Europe/Brussels")
    assert not zones.same_zone("Europe/Berlin", "Europe/London")
    assert not zones.same_zone(KOLKATA, KATHMANDU)


def test_zoneinfo_uses_the_canonical_key() -> None:
    assert zones.zoneinfo("India Standard Time").key == KOLKATA


_INSTALLED = sorted(zoneinfo.available_timezones() - {"localtime"})


@given(st.sampled_from(_INSTALLED))
def test_every_installed_zone_maps_to_a_loadable_canonical_name(name: str) -> None:
    canonical = zones.to_iana(name)
    assert canonical == zones.to_iana(canonical)
    assert zones.same_zone(name, canonical)
    zoneinfo.ZoneInfo(canonical)
