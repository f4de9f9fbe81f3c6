import pytest

from noether.core.utils.bidict import Bidict


def test_lookups_both_ways() -> None:
    b: Bidict[int, str] = Bidict({0: "a", 1: "b"})
    assert b.get_value_by_key(1) == "b"
    assert b.get_key_by_value("a") == 0
    assert len(b) == 2 and list(b) == [0, 1] and 1 in b
    assert b.to_forward() == {0: "a", 1: "b"}
    assert b.to_backward() == {"a": 0, "b": 1}


def test_missing_raises_keyerror() -> None:
    b: Bidict[int, str] = Bidict()
    with pytest.raises(KeyError):
        b.get_key_by_value("x")
    with pytest.raises(KeyError):
        b.get_value_by_key(3)


def test_duplicate_value_is_refused_and_nothing_changes() -> None:
    b: Bidict[int, str] = Bidict({0: "a", 1: "b"})
    with pytest.raises(ValueError, match="'a'"):
        b.set(1, "a")
    assert b.to_forward() == {0: "a", 1: "b"}
    assert b.to_backward() == {"a": 0, "b": 1}


def test_reassigning_a_key_drops_its_old_value() -> None:
    b: Bidict[int, str] = Bidict({0: "a"})
    b.set(0, "z")
    assert not b.has_value("a")
    assert b.get_key_by_value("z") == 0
    b.set(1, "a")  # "a" is free again
    assert b.get_key_by_value("a") == 1


def test_equality_and_copies_are_independent() -> None:
    b: Bidict[int, str] = Bidict({0: "a"})
    forward = b.to_forward()
    forward[5] = "q"
    assert 5 not in b
    assert b == Bidict({0: "a"}) and b != Bidict({0: "b"})
