"""The published profile schema means the same to msgspec (what the service decodes with) and
to a JSON Schema validator (what schemathesis and clients check against).

The contract once wrote its email pattern with ``\\s``, which Python's ``re`` and ECMAScript
read differently (``\\x1c``, ``\\x85``, ``\\ufeff``), and ended with ``$``, which in Python
also matches before a final newline: strings the schema allowed were refused and the other
way round. ``jsonschema_rs`` validates with ECMAScript semantics; every string here must get
the same answer from both.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs
import msgspec
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from stockflow.contracts.profiles import Address, Email, ProfileUpdate
from stockflow_kit.http.openapi import json_schema

TRICKY = "@. \t\r\n\x0b\x0c\x1c\x1f\x85\xa0\u2028\ufeffaZ9"
strings = st.text(alphabet=st.sampled_from(TRICKY), max_size=12) | st.text(max_size=12)


def _accepted(value: Any, kind: Any) -> bool:
    try:
        msgspec.convert(value, kind)
    except msgspec.ValidationError:
        return False
    return True


EMAIL_SCHEMA = jsonschema_rs.validator_for(msgspec.json.schema(Email))
UPDATE_SCHEMA = jsonschema_rs.validator_for(json_schema(ProfileUpdate))
ADDRESS_SCHEMA = jsonschema_rs.validator_for(json_schema(Address))


@given(strings)
@example("a@b.c")
@example("a@b.c\n")
@example("a\x1c@b.c")
@example("a\ufeff@b.c")
@example("a\x85@b.c")
def test_an_email_is_valid_to_both_or_to_neither(value: str) -> None:
    assert _accepted(value, Email) == EMAIL_SCHEMA.is_valid(value)


@given(strings)
@example("GB")
@example("GB\n")
def test_a_country_is_valid_to_both_or_to_neither(value: str) -> None:
    address = {"line1": "1 Main St", "city": "X", "postal_code": "1", "country": value}
    assert _accepted(address, Address) == ADDRESS_SCHEMA.is_valid(address)


@pytest.mark.parametrize(
    "document",
    [
        {"name": "A", "email": "a@b.c"},
        {"name": "A", "email": "a@b.c", "preferences": {"x": True, "y": 1, "z": "s"}},
        {"name": "A", "email": "a@b.c", "addresses": [{"line1": "l", "city": "c"}]},
        {"name": "", "email": "a@b.c"},
        {"name": "A", "email": "a@b.c", "extra": 1},
        {"name": "A", "email": "a@b.c", "preferences": {"": 1}},
        {"name": "A", "email": "a@b.c", "preferences": {"x": 1.5}},
        {"name": "A", "email": "a@b.c", "preferences": {"x": None}},
    ],
)
def test_a_whole_update_is_valid_to_both_or_to_neither(document: dict[str, Any]) -> None:
    assert _accepted(document, ProfileUpdate) == UPDATE_SCHEMA.is_valid(document)
