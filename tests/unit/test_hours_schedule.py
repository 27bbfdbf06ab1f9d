"""Business hours as a pure function of a schedule and a clock (presence/hours.py)."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import msgspec
import pytest

from presence import hours
from presence.center import parse_center
from presence.hours import DAY_MS, Range, Schedule
from presence.schema import Invalid, convert
from presence.schema.admin import QueueSettings

TOKYO = ZoneInfo("Asia/Tokyo")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")
OFFICE = Schedule("Asia/Tokyo", (Range(WEEKDAYS, 9 * 60, 18 * 60),), frozenset({date(2026, 12, 31)}))


def ms(tz: ZoneInfo, *args: int) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp() * 1000)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        ((2026, 12, 1, 8, 59), False),  # a Tuesday, before opening
        ((2026, 12, 1, 9, 0), True),
        ((2026, 12, 1, 17, 59), True),
        ((2026, 12, 1, 18, 0), False),  # closing time is closed
        ((2026, 12, 5, 12, 0), False),  # Saturday
        ((2026, 12, 31, 12, 0), False),  # a holiday (a Thursday)
        ((2027, 1, 1, 12, 0), True),  # the day after (a Friday)
    ],
)
def test_open_by_the_queues_own_clock(at: tuple[int, ...], expected: bool) -> None:
    assert hours.is_open(OFFICE, ms(TOKYO, *at)) is expected


def test_the_plan_flips_at_opening_and_closing_and_agrees_with_is_open() -> None:
    now = ms(TOKYO, 2026, 12, 1, 12, 0)
    p = hours.plan(OFFICE, now)
    assert p[0] in (0, 1) and p[1] == now - hours.PLAN_BEHIND
    flips = p[2:]
    assert flips == sorted(flips) and all(p[1] < t < now + hours.PLAN_AHEAD for t in flips)
    assert ms(TOKYO, 2026, 12, 1, 9, 0) in flips and ms(TOKYO, 2026, 12, 1, 18, 0) in flips
    # every 7 minutes over three weeks: the plan says what the schedule says
    for t in range(now - 7 * DAY_MS, now + 14 * DAY_MS, 7 * 60_000):
        open_, _ = hours.state_at(p, t)
        assert open_ is hours.is_open(OFFICE, t), datetime.fromtimestamp(t / 1000, TOKYO)
    assert hours.state_at(p, now) == (True, ms(TOKYO, 2026, 12, 1, 18, 0))
    assert hours.plan(Schedule("UTC"), now) == [] and hours.state_at([], now) == (True, 0)


def test_closed_time_between_two_instants() -> None:
    p = hours.plan(OFFICE, ms(TOKYO, 2026, 12, 1, 12, 0))
    # an email at 20:00 on Monday, answered at 9:05 on Tuesday: closed 13 hours of it
    t0, t1 = ms(TOKYO, 2026, 11, 30, 20, 0), ms(TOKYO, 2026, 12, 1, 9, 5)
    assert hours.closed_ms(p, t0, t1) == 13 * 3600_000
    # within opening hours: nothing
    assert hours.closed_ms(p, ms(TOKYO, 2026, 12, 1, 10, 0), ms(TOKYO, 2026, 12, 1, 11, 0)) == 0
    # Friday 17:00 to Monday 10:00: the weekend and both nights
    friday, monday = ms(TOKYO, 2026, 12, 4, 17, 0), ms(TOKYO, 2026, 12, 7, 10, 0)
    assert hours.closed_ms(p, friday, monday) == (monday - friday) - 2 * 3600_000
    assert hours.closed_ms(p, t1, t0) == 0 and hours.closed_ms([], t0, t1) == 0


def test_daylight_saving_changes_move_the_opening_in_utc() -> None:
    paris = ZoneInfo("Europe/Paris")
    s = Schedule("Europe/Paris", (Range(hours.DAYS, 9 * 60, 17 * 60),))
    p = hours.plan(s, ms(paris, 2026, 3, 27, 12, 0))
    # 9:00 in Paris is 8:00 UTC before the change of 29 March and 7:00 after it
    assert ms(ZoneInfo("UTC"), 2026, 3, 27, 8, 0) in p
    assert ms(ZoneInfo("UTC"), 2026, 3, 30, 7, 0) in p


def test_a_night_shift_closes_the_next_morning() -> None:
    night = Schedule("Asia/Tokyo", (Range(("fri",), 22 * 60, 6 * 60),))
    assert hours.is_open(night, ms(TOKYO, 2026, 12, 4, 23, 0))  # Friday night
    assert hours.is_open(night, ms(TOKYO, 2026, 12, 5, 5, 59))  # Saturday morning
    assert not hours.is_open(night, ms(TOKYO, 2026, 12, 5, 6, 0))
    assert not hours.is_open(night, ms(TOKYO, 2026, 12, 4, 5, 0))  # Friday morning: Thursday had none
    day_and_night = Schedule("Asia/Tokyo", (Range(("mon",), 9 * 60, 9 * 60),))  # the same time: 24 hours
    assert hours.is_open(day_and_night, ms(TOKYO, 2026, 11, 30, 9, 0))
    assert hours.is_open(day_and_night, ms(TOKYO, 2026, 12, 1, 8, 59))
    assert not hours.is_open(day_and_night, ms(TOKYO, 2026, 12, 1, 9, 0))


def test_holidays_alone_close_whole_days() -> None:
    s = Schedule("Asia/Tokyo", (), frozenset({date(2026, 1, 1)}))
    assert not hours.is_open(s, ms(TOKYO, 2026, 1, 1, 0, 0))
    assert not hours.is_open(s, ms(TOKYO, 2026, 1, 1, 23, 59))
    assert hours.is_open(s, ms(TOKYO, 2026, 1, 2, 0, 0))


def queue(**settings: object) -> QueueSettings:
    return msgspec.convert(settings, QueueSettings)


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"time_zone": "Mars/Olympus"}, "time_zone"),
        ({"hours": [{"days": ["monday"], "open": "09:00", "close": "18:00"}]}, "hours[0].days[0]"),
        ({"hours": [{"days": [], "open": "09:00", "close": "18:00"}]}, "hours[0].days"),
        ({"hours": [{"days": ["mon"], "open": "9:00", "close": "18:00"}]}, "hours[0].open"),
        ({"hours": [{"days": ["mon"], "open": "09:00", "close": "24:30"}]}, "hours[0].close"),
        ({"holidays": ["2026-02-30"]}, "holidays[0]"),
        ({"holidays": ["31/12/2026"]}, "holidays[0]"),
        ({"after_hours": "overflow"}, "after_hours_queue"),
        ({"after_hours": "hangup"}, "after_hours"),
        ({"crm_url": "https://crm.example/c/{customer.idd}"}, "crm_url"),
        ({"crm_url": "javascript:alert(1)"}, "crm_url"),
        ({"closed_message": "x" * 501}, "closed_message"),
    ],
)
def test_bad_hours_are_refused_naming_the_field(settings: dict[str, object], field: str) -> None:
    with pytest.raises(Invalid) as err:
        convert(settings, QueueSettings)
    assert err.value.field == field, err.value


def test_good_settings_and_the_center_file() -> None:
    q = queue(
        time_zone="Asia/Tokyo",
        hours=[{"days": ["mon", "tue"], "open": "09:00", "close": "24:00"}],
        holidays=["2026-12-31"],
        after_hours="refuse",
        closed_message="本日の受付は終了しました",
        crm_url="https://crm.example/customers/{customer.id}?case={case.id}",
    )
    assert q.hours[0].close == "24:00"
    center = parse_center(
        {
            "queues": [
                {"name": "day", "after_hours": "overflow", "after_hours_queue": "night", "hours": q.hours},
                {"name": "night"},
            ]
        }
    )
    day = center.queues["day"]
    assert day.after_hours_queue == "night" and day.hours[0].open == 540
    assert day.to_json()["hours"] == [{"days": ["mon", "tue"], "open": "09:00", "close": "24:00"}]
    with pytest.raises(Invalid) as err:
        parse_center({"queues": [{"name": "day", "after_hours": "overflow", "after_hours_queue": "nowhere"}]})
    assert err.value.field == "queues[0].after_hours_queue"
