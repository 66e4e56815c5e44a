"""The profile's rules as pure values: versions, no-op writes, preconditions, limits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stockflow.contracts import profiles as contract
from stockflow.profiles.domain.model import (
    MAX_ADDRESSES,
    MAX_PREFERENCES,
    Address,
    Contents,
    InvalidProfileError,
    Precondition,
    PreconditionFailedError,
    replace_profile,
)

HOME = Address(line1="1 Main St", city="Springfield", postal_code="12345", country="US")
ALICE = Contents(name="Alice", email="alice@example.com", addresses=(HOME,))


def test_a_new_profile_starts_at_version_one() -> None:
    change = replace_profile(None, "alice", ALICE, now=10.0)
    assert change.changed
    assert change.created
    assert (change.profile.version, change.profile.updated_at) == (1, 10.0)
    assert change.profile.contents == ALICE


def test_each_change_adds_one_to_the_version() -> None:
    first = replace_profile(None, "alice", ALICE, now=10.0).profile
    renamed = Contents(name="Alice B", email=ALICE.email, addresses=ALICE.addresses)
    change = replace_profile(first, "alice", renamed, now=20.0)
    assert change.changed
    assert not change.created
    assert (change.profile.version, change.profile.updated_at) == (2, 20.0)


def test_writing_the_same_contents_again_changes_nothing() -> None:
    first = replace_profile(None, "alice", ALICE, now=10.0).profile
    again = replace_profile(first, "alice", ALICE, now=99.0)
    assert not again.changed
    assert again.profile is first


def test_a_preference_true_is_not_the_preference_one() -> None:
    ones = Contents(name="A", email="a@b.c", preferences={"x": 1})
    trues = Contents(name="A", email="a@b.c", preferences={"x": True})
    first = replace_profile(None, "a", ones, now=1.0).profile
    assert replace_profile(first, "a", trues, now=2.0).changed


def test_the_order_of_preferences_does_not_matter() -> None:
    one = Contents(name="A", email="a@b.c", preferences={"x": 1, "y": "z"})
    other = Contents(name="A", email="a@b.c", preferences={"y": "z", "x": 1})
    first = replace_profile(None, "a", one, now=1.0).profile
    assert not replace_profile(first, "a", other, now=2.0).changed


def test_a_stale_precondition_refuses_a_change() -> None:
    first = replace_profile(None, "alice", ALICE, now=10.0).profile
    renamed = Contents(name="Alice B", email=ALICE.email)
    with pytest.raises(PreconditionFailedError, match="version 1"):
        replace_profile(
            first, "alice", renamed, now=20.0, precondition=Precondition(frozenset({7}))
        )
    ok = replace_profile(
        first, "alice", renamed, now=20.0, precondition=Precondition(frozenset({1}))
    )
    assert ok.profile.version == 2


def test_a_stale_precondition_on_a_write_already_applied_succeeds_as_a_no_op() -> None:
    first = replace_profile(None, "alice", ALICE, now=10.0).profile
    renamed = Contents(name="Alice B", email=ALICE.email)
    second = replace_profile(
        first, "alice", renamed, now=20.0, precondition=Precondition(frozenset({1}))
    )
    replay = replace_profile(
        second.profile, "alice", renamed, now=30.0, precondition=Precondition(frozenset({1}))
    )
    assert not replay.changed
    assert replay.profile.version == 2


def test_any_version_matches_an_existing_profile_but_not_a_missing_one() -> None:
    with pytest.raises(PreconditionFailedError, match="does not exist"):
        replace_profile(None, "alice", ALICE, now=1.0, precondition=Precondition())
    first = replace_profile(None, "alice", ALICE, now=1.0).profile
    renamed = Contents(name="Alice B", email=ALICE.email)
    assert replace_profile(first, "alice", renamed, now=2.0, precondition=Precondition()).changed


def test_a_profile_holds_at_most_the_published_number_of_addresses() -> None:
    assert MAX_ADDRESSES == contract.MAX_ADDRESSES
    full = Contents(name="A", email="a@b.c", addresses=(HOME,) * MAX_ADDRESSES)
    assert replace_profile(None, "a", full, now=1.0).changed
    over = Contents(name="A", email="a@b.c", addresses=(HOME,) * (MAX_ADDRESSES + 1))
    with pytest.raises(InvalidProfileError, match="at most 10 addresses"):
        replace_profile(None, "a", over, now=1.0)


def test_a_profile_holds_at_most_the_published_number_of_preferences() -> None:
    many = {f"k{n}": n for n in range(MAX_PREFERENCES + 1)}
    with pytest.raises(InvalidProfileError, match="preferences"):
        replace_profile(None, "a", Contents(name="A", email="a@b.c", preferences=many), now=1.0)


@pytest.mark.parametrize(
    ("user_id", "contents"),
    [("", ALICE), ("a", Contents(name="", email="a@b.c")), ("a", Contents(name="A", email=""))],
)
def test_a_profile_needs_a_user_a_name_and_an_email(user_id: str, contents: Contents) -> None:
    with pytest.raises(InvalidProfileError):
        replace_profile(None, user_id, contents, now=1.0)


names = st.sampled_from(["Alice", "Alice B", "Bob"])
preferences = st.dictionaries(
    st.sampled_from(["a", "b"]), st.one_of(st.booleans(), st.integers(0, 2), st.just("1"))
)


@given(st.lists(st.tuples(names, preferences), min_size=1, max_size=20))
def test_the_version_counts_exactly_the_writes_that_changed_something(
    writes: list[tuple[str, dict[str, str | int | bool]]],
) -> None:
    profile = None
    changes = 0
    last: Contents | None = None
    for name, prefs in writes:
        contents = Contents(name=name, email="a@b.c", preferences=prefs)
        change = replace_profile(profile, "a", contents, now=1.0)
        changes += change.changed
        assert change.changed == (last is None or not last.same_as(contents))
        profile, last = change.profile, contents
    assert profile is not None
    assert profile.version == changes
