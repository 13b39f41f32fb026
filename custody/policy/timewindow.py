"""`time_window`: days of the week and hours of the day, in a named time zone.

`hours: "08:00-18:00"` includes 08:00 and excludes 18:00; `"22:00-06:00"` runs past midnight
and then `days` names the day the window opens (Friday 22:00 to Saturday 06:00 is a Friday
window). The zone is required: "08:00" means nothing without one, and zoneinfo applies daylight
saving, so a Zurich window stays 08:00-18:00 on Zurich clocks all year.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import AfterValidator, BeforeValidator, PlainSerializer
from pydantic_core import PydanticCustomError

from custody.policy.model import PolicyModel, distinct, non_empty

_HOURS = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])-([01][0-9]|2[0-4]):([0-5][0-9])")
_MINUTES_PER_DAY = 24 * 60


class Weekday(StrEnum):
    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


_WEEK = tuple(Weekday)


def _parse_hours(value: object) -> tuple[int, int]:
    match = _HOURS.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise PydanticCustomError("not_hours", 'not hours like "08:00-18:00"')
    start = int(match[1]) * 60 + int(match[2])
    end = int(match[3]) * 60 + int(match[4])
    if end > _MINUTES_PER_DAY or start == end:
        raise PydanticCustomError("empty_hours", "an empty or impossible range of hours")
    return start, end


def _format_hours(minutes: tuple[int, int]) -> str:
    return "-".join(f"{m // 60:02d}:{m % 60:02d}" for m in minutes)


def _parse_zone(value: object) -> str:
    if not isinstance(value, str) or not value or ".." in value or value.startswith("/"):
        raise PydanticCustomError("not_zone", "not a time zone name like Europe/Zurich")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError(
            "unknown_zone", "unknown time zone {zone}", {"zone": value}
        ) from None
    return value


Hours = Annotated[
    tuple[int, int],
    BeforeValidator(_parse_hours),
    PlainSerializer(_format_hours, return_type=str),
]
Zone = Annotated[str, BeforeValidator(_parse_zone)]
Days = Annotated[tuple[Weekday, ...], AfterValidator(non_empty), AfterValidator(distinct)]


class TimeWindow(PolicyModel):
    days: Days | None = None
    hours: Hours | None = None
    tz: Zone

    def model_post_init(self, context: object) -> None:
        if self.days is None and self.hours is None:
            raise PydanticCustomError("empty_window", "a time window needs days or hours or both")

    def contains(self, moment: datetime) -> bool:
        local = moment.astimezone(ZoneInfo(self.tz))
        minute = local.hour * 60 + local.minute
        opened_on = local
        if self.hours is not None:
            start, end = self.hours
            if start < end:
                if not start <= minute < end:
                    return False
            elif minute < end:
                opened_on = local - timedelta(days=1)
            elif minute < start:
                return False
        return self.days is None or _WEEK[opened_on.weekday()] in self.days

    def describe(self) -> str:
        days = ",".join(self.days) if self.days else "any day"
        hours = _format_hours(self.hours) if self.hours else "all day"
        return f"{days} {hours} {self.tz}"
