from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from pycontainerd.api import convert
from pycontainerd.content import Info, Status
from pycontainerd.images import Descriptor, Image
from pycontainerd.leases import Lease

times = st.datetimes(min_value=datetime(1970, 1, 2), max_value=datetime(2200, 1, 1), timezones=st.just(UTC))
labels = st.dictionaries(st.text(min_size=1, max_size=8), st.text(min_size=1, max_size=8), max_size=3)


@given(times)
def test_timestamps_round_trip_to_the_microsecond(t: datetime) -> None:
    assert convert.time_from_pb(convert.timestamp(t)) == t


def test_unset_times() -> None:
    assert convert.timestamp(None) is None
    empty = convert.info_from_pb(convert.info_to_pb(Info("sha256:" + "0" * 64, 1, convert.EPOCH, convert.EPOCH)))
    assert empty.created_at == convert.EPOCH
    naive = datetime(2020, 1, 1, 12)
    assert convert.time_from_pb(convert.timestamp(naive)) == naive.replace(tzinfo=UTC)


@given(times, times, labels)
def test_records_round_trip(a: datetime, b: datetime, lab: dict[str, str]) -> None:
    info = Info("sha256:" + "a" * 64, 7, a, b, lab)
    assert convert.info_from_pb(convert.info_to_pb(info)) == info
    status = Status("ref", 3, 9, "sha256:" + "b" * 64, a, b)
    assert convert.status_from_pb(convert.status_to_pb(status)) == status
    image = Image("n", Descriptor("m", "sha256:" + "c" * 64, 5, lab), lab, a, b + timedelta(0))
    assert convert.image_from_pb(convert.image_to_pb(image)) == image
    lease = Lease("l", a, lab)
    assert convert.lease_from_pb(convert.lease_to_pb(lease)) == lease
