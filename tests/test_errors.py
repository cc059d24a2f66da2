"""Error plumbing: what counts as the target not answering, and values quoted in messages bounded."""

from __future__ import annotations

from tdetl.errors import TaosError, shown


def test_a_server_starting_up_is_unreachable_not_fatal() -> None:
    assert TaosError(0x80000130, "Database is starting up").unreachable  # retried, or cached
    assert not TaosError(0x80002600, "syntax error").unreachable


def test_quoted_values_are_bounded_with_their_length() -> None:
    assert shown("abc") == "'abc'" and shown("abc", quote=False) == "abc"
    big = shown("x" * 100_000_000)
    assert len(big) < 260 and big.endswith("… (100,000,000 characters)")
