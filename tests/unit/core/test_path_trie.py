"""Walking many paths at once finds, for each, what walking it alone finds."""

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from trigger_daemon.core.path_trie import PathTrie
from trigger_daemon.core.paths import walk

steps = st.sampled_from(["a", "b", "", 0, 1, -1, 2])
paths = st.lists(st.lists(steps, max_size=4).map(tuple), max_size=8)
scalars = st.sampled_from([None, True, 0, 1.5, "a", ""])
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", ""]), inner, max_size=3)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(paths=paths, document=documents)
def test_each_path_gets_the_value_walking_it_alone_finds(
    paths: list[tuple[str | int, ...]], document: Any
) -> None:
    found = PathTrie((path, n) for n, path in enumerate(paths)).values(document)

    assert sorted((n, value) for value, n in found) == sorted(
        ((n, walk(document, path)) for n, path in enumerate(paths)), key=lambda pair: pair[0]
    )


def test_paths_sharing_a_prefix_each_get_their_own_value() -> None:
    document = {"event": {"t": [{"p": [{"d": "x", "a": 5}], "r": "ref"}]}}
    trie = PathTrie(
        [
            (("event", "t", 0, "p", 0, "d"), "d"),
            (("event", "t", 0, "p", 0, "a"), "a"),
            (("event", "t", 0, "r"), "r"),
            (("event", "t", 1, "r"), "missing"),
            ((), "root"),
        ]
    )

    assert sorted(trie.values(document), key=lambda pair: pair[1]) == [
        (5, "a"),
        ("x", "d"),
        (None, "missing"),
        ("ref", "r"),
        (document, "root"),
    ]
