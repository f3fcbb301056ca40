"""Values derived from unhashable objects, remembered by identity (agent/memo.py)."""

from __future__ import annotations

import gc

from agent.memo import PerObject


class _Box:  # unhashable, like loaded settings
    __hash__ = None  # type: ignore[assignment]

    def __init__(self, n: int) -> None:
        self.n = n


def test_each_object_is_built_once_and_an_evicted_one_again() -> None:
    built: list[int] = []

    def build(box: _Box) -> int:
        built.append(box.n)
        return box.n * 10

    memo: PerObject[_Box, int] = PerObject(build, size=2)
    a, b, c = _Box(1), _Box(2), _Box(3)
    assert (memo(a), memo(a), memo(b), memo(a)) == (10, 10, 20, 10)
    assert built == [1, 2]
    assert memo(c) == 30  # the oldest (a) makes room
    assert memo(b) == 20 and memo(a) == 10
    assert built == [1, 2, 3, 1]


def test_a_new_object_never_gets_the_value_of_one_that_had_its_id() -> None:
    """An entry keeps its object alive, and an object reusing a freed id is checked by
    identity: it gets its own value, never a stale one."""
    memo: PerObject[_Box, int] = PerObject(lambda box: box.n, size=1)
    for n in range(200):
        box = _Box(n)
        assert memo(box) == n
        del box
        gc.collect()
