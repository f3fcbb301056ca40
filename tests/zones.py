"""IANA zones that break naive time arithmetic, named after the edge case each one tests."""

from __future__ import annotations

# Skipped Friday 2011-12-30 entirely when it crossed the date line (-10 to +14); DST until 2021.
APIA = "Pacific/Apia"
# UTC+12/+13, first to see a new day; southern-hemisphere DST (forward in Sep, back in Apr).
AUCKLAND = "Pacific/Auckland"
# UTC+05:45: a quarter-hour offset that no whole- or half-hour rounding survives.
KATHMANDU = "Asia/Kathmandu"
# UTC+05:30, no DST: half-hour offset, the usual "is the offset a whole number of hours" bug.
KOLKATA = "Asia/Kolkata"
# DST moves the clock by only 30 minutes, so gaps and folds are half an hour long.
LORD_HOWE = "Australia/Lord_Howe"
# North-American DST at 02:00 local, on different Sundays from Europe's.
LOS_ANGELES = "America/Los_Angeles"
# Same rules as Los Angeles three hours east: the classic cross-coast pairing.
NEW_YORK = "America/New_York"
# European DST, switching at 01:00 UTC (02:00 -> 03:00 in spring, 03:00 -> 02:00 in autumn).
BERLIN = "Europe/Berlin"
# UTC+00 in winter: an offset of zero hides bugs that mix local time and UTC.
LONDON = "Europe/London"
# UTC+03, no DST, with a Friday-Saturday weekend (country SA).
RIYADH = "Asia/Riyadh"
# UTC+09, no DST: local dates run a day ahead of the Americas for most of their working day.
TOKYO = "Asia/Tokyo"
# Southern-hemisphere DST: summer straddles the new year, opposite to Europe.
SYDNEY = "Australia/Sydney"
# Changed clocks at local midnight until 2019, so some dates had no 00:00; no DST since.
SAO_PAULO = "America/Sao_Paulo"

ALL = (
    APIA,
    AUCKLAND,
    KATHMANDU,
    KOLKATA,
    LORD_HOWE,
    LOS_ANGELES,
    NEW_YORK,
    BERLIN,
    LONDON,
    RIYADH,
    TOKYO,
    SYDNEY,
    SAO_PAULO,
)
