"""Request validation: texts and order of API-CREATE-3/4/5/6/12/13."""

from __future__ import annotations

import pytest

from lb.metadata.errors import ErrorCode, MetadataError
from lb.metadata.validation import (
    PARTITIONS_MAX,
    STREAM_NAME_LENGTH_MAX,
    check_not_reserved,
    is_safe_stream_name,
    is_valid_subject,
    normalize_create_counts,
    validate_create_stream,
)


def _err(name: str, subject: str, partitions: int = 1, group: str = "") -> MetadataError:
    with pytest.raises(MetadataError) as info:
        validate_create_stream(name, subject, partitions, group)
    assert info.value.code is ErrorCode.INVALID_ARGUMENT
    return info.value


def test_defaults_zero_to_one() -> None:
    assert normalize_create_counts(0, 0) == (1, 1)
    assert normalize_create_counts(3, -1) == (3, -1)
    assert normalize_create_counts(-2, 2) == (-2, 2)


def test_empty_name() -> None:
    assert _err("", "foo").message == "Name cannot be empty"


@pytest.mark.parametrize(
    "subject", ["", " ", "foo bar", "foo\tbar", "a\r", "a\n", ".a", "a.", "a..b"]
)
def test_invalid_subject(subject: str) -> None:
    assert not is_valid_subject(subject)
    assert _err("s", subject).message == "Subject is invalid"


@pytest.mark.parametrize("subject", ["foo", "foo.bar", "foo.*", "foo.>", ">", "*.x.>", "a-b_c.d"])
def test_valid_subject_wildcards_accepted(subject: str) -> None:
    assert is_valid_subject(subject)
    validate_create_stream("s", subject, 1)


@pytest.mark.parametrize("name", ["__activity", "__cursors"])
def test_reserved(name: str) -> None:
    assert _err(name, "foo").message == "Stream is reserved"
    with pytest.raises(MetadataError, match="Stream is reserved"):
        check_not_reserved(name)


@pytest.mark.parametrize(
    "name", ["foo-stream", "my_stream", "bar-stream", "Stream42", "a", "x" * STREAM_NAME_LENGTH_MAX]
)
def test_common_names_stay_valid(name: str) -> None:
    assert is_safe_stream_name(name)
    validate_create_stream(name, "foo", 1)


@pytest.mark.parametrize(
    "name",
    [".", "..", "a/b", "a\\b", "a\0b", "a b", "a\tb", "a.b", "a*", "a>", "x" * 250, "ü", "a:b"],
)
def test_unsafe_names(name: str) -> None:
    assert not is_safe_stream_name(name)
    err = _err(name, "foo")
    assert err.message.startswith(f"Stream name {name!r} is invalid")


@pytest.mark.parametrize("partitions", [-1, -100, 0])
def test_non_positive_partitions(partitions: int) -> None:
    assert _err("s", "foo", partitions).message == (
        f"Invalid partitions {partitions}: must be at least 1"
    )


def test_too_many_partitions() -> None:
    validate_create_stream("s", "foo", PARTITIONS_MAX)
    assert _err("s", "foo", PARTITIONS_MAX + 1).message == (
        f"Invalid partitions {PARTITIONS_MAX + 1}: must be at most {PARTITIONS_MAX}"
    )


def test_group_whitespace() -> None:
    validate_create_stream("s", "foo", 1, "workers")
    assert _err("s", "foo", 1, "bad group").message == "Group is invalid"


def test_check_order() -> None:
    # name before subject before reserved before partitions (API-CREATE-12).
    assert _err("", "", -1).message == "Name cannot be empty"
    assert _err("a/b", "", -1).message.startswith("Stream name")
    assert _err("__cursors", "", -1).message == "Subject is invalid"
    assert _err("__cursors", "foo", -1).message == "Stream is reserved"
