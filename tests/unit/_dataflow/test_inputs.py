"""Inputs, input groups and input lists (algorithms-and-execution.md §4)."""

from __future__ import annotations

import pickle

import pytest

from beat_backend.inputs import Input, InputGroup, InputList, first
from beat_backend.outputs import SynchronizationListener
from beat_backend.testing import CountingDataSource, MemoryDataSource

OVER = (
    "User algorithm asked for more data for channel `{}' on input `{}', but it is over "
    "(no more data). This normally indicates a programming error on the user side."
)


def source(units):
    """A source whose unit ``i`` holds the value ``i``."""
    return MemoryDataSource(list(range(len(units))), units)


def units_of(*ends, start=0):
    result = []
    for end in ends:
        result.append((start, end))
        start = end + 1
    return result


# -- first ------------------------------------------------------------------------


def test_first():
    assert first([3, 4]) == 3
    assert first(x for x in [5]) == 5
    assert first([]) is None
    assert first([], default=7) == 7
    assert first(iter(())) is None


# -- Input --------------------------------------------------------------------------


def test_input_initial_attributes():
    src = source(units_of(0, 1))
    i = Input("in", "user/format/1", src)
    assert i.group is None
    assert i.name == "in"
    assert i.data_format == "user/format/1"
    assert i.data_source is src
    assert i.data is None
    assert (i.data_index, i.data_index_end) == (-1, -1)
    assert i.next_data_index == 0
    assert i.data_same_as_previous is True
    assert i.nb_data_blocks_read == 0
    assert i.hasMoreData() is True
    assert i.hasDataChanged() is False


def test_input_is_data_unit_done_before_any_read():
    group = InputGroup("ch", restricted_access=False)
    i = Input("in", "f", source(units_of(0)))
    group.add(i)
    assert i.group is group
    assert i.isDataUnitDone() is True  # -1 == -1


def test_input_next_reads_units_in_order():
    group = InputGroup("ch", restricted_access=False)
    i = Input("in", "f", source(units_of(1, 4)))
    group.add(i)
    i.next()
    assert (i.data, i.data_index, i.data_index_end) == (0, 0, 1)
    assert i.data_same_as_previous is False and i.hasDataChanged() is True
    assert i.next_data_index == 1 and i.nb_data_blocks_read == 1
    i.next()
    assert (i.data, i.data_index, i.data_index_end) == (1, 2, 4)
    assert i.nb_data_blocks_read == 2
    assert i.hasMoreData() is False
    with pytest.raises(RuntimeError) as info:
        i.next()
    assert str(info.value) == OVER.format("ch", "in")
    assert i.nb_data_blocks_read == 2


def test_input_next_in_a_restricted_group_is_not_authorized():
    group = InputGroup("main")  # restricted by default
    i = Input("in", "f", source(units_of(0)))
    group.add(i)
    with pytest.raises(RuntimeError) as info:
        i.next()
    assert str(info.value) == "Not authorized"
    assert i.nb_data_blocks_read == 0


def test_input_without_group():
    i = Input("in", "f", source(units_of(0)))
    i.next()
    assert i.data_index_end == 0
    assert i.isDataUnitDone() is True
    with pytest.raises(RuntimeError, match="channel `None' on input `in'"):
        i.next()


def test_is_data_unit_done_when_group_interval_is_unset():
    group = InputGroup("ch", restricted_access=False)
    i = Input("in", "f", source(units_of(0)))
    group.add(i)
    i.next()  # the group was not advanced: last_data_index stays -1
    assert group.last_data_index == -1
    assert i.isDataUnitDone() is True


def test_input_next_reads_each_unit_once():
    src = CountingDataSource(list(range(50)))
    group = InputGroup("ch", restricted_access=False)
    i = Input("in", "f", src)
    group.add(i)
    while i.hasMoreData():
        i.next()
    assert src.getitem_calls == 50 and src.lookups == 0


# -- InputGroup ------------------------------------------------------------------------


def test_group_initial_attributes():
    listener = SynchronizationListener()
    g = InputGroup("ch", listener)
    assert g.channel == "ch"
    assert g.synchronization_listener is listener
    assert g.restricted_access is True
    assert (g.data_index, g.data_index_end, g.first_data_index, g.last_data_index) == (
        -1,
        -1,
        -1,
        -1,
    )
    assert len(g) == 0 and list(g) == []
    assert g.hasMoreData() is False


def test_group_access_by_name_position_and_slice():
    g = InputGroup("ch", restricted_access=False)
    a, b, b2 = (Input(n, "f", source(units_of(0))) for n in ("a", "b", "b"))
    for x in (a, b, b2):
        g.add(x)
    assert g["a"] is a
    assert g["b"] is b  # the first input with that name
    assert g["zz"] is None
    assert g[0] is a and g[2] is b2
    assert g[3] is None
    assert g[-1] is b2 and g[-4] is None
    assert g[0:2] == [a, b]
    assert g[::2] == [a, b2]
    assert g[1.5] is None
    assert list(g) == [a, b, b2]
    assert len(g) == 3


def test_group_next_restricted():
    g = InputGroup("ch")
    g.add(Input("a", "f", source(units_of(0))))
    with pytest.raises(RuntimeError) as info:
        g.next()
    assert str(info.value) == "Not authorized"
    g._next()  # the executor's way in
    assert g.data_index_end == 0


def test_group_next_reports_over_with_the_channel_name():
    g = InputGroup("chan", restricted_access=False)
    g.add(Input("a", "f", source(units_of(0))))
    g.next()
    with pytest.raises(RuntimeError) as info:
        g.next()
    assert str(info.value) == OVER.format("chan", "a")


def test_empty_group_next_is_a_no_op():
    g = InputGroup("ch", restricted_access=False)
    g.next()
    assert g.data_index == -1


# The worked example of §4.2: (input1 unit, value, input2 unit, value,
# (data_index, data_index_end), (first, last), isDataUnitDone 1/2, hasDataChanged 1/2)
WORKED = [
    ((0, 2), 0, (0, 4), 0, (0, 4), (0, 2), (True, False), (True, True)),
    ((3, 5), 1, (0, 4), 0, (0, 5), (3, 4), (False, True), (True, False)),
    ((3, 5), 1, (5, 10), 1, (3, 10), (5, 5), (True, False), (False, True)),
    ((6, 8), 2, (5, 10), 1, (5, 10), (6, 8), (True, False), (True, False)),
    ((9, 11), 3, (5, 10), 1, (5, 11), (9, 10), (False, True), (True, False)),
    ((9, 11), 3, (11, 17), 2, (9, 17), (11, 11), (True, False), (False, True)),
    ((12, 14), 4, (11, 17), 2, (11, 17), (12, 14), (True, False), (True, False)),
    ((15, 17), 5, (11, 17), 2, (11, 17), (15, 17), (True, True), (True, False)),
]


def test_group_next_worked_example():
    listener = SynchronizationListener()
    group = InputGroup("channel1", listener, restricted_access=False)
    input1 = Input("input1", "f", source(units_of(2, 5, 8, 11, 14, 17)))
    input2 = Input("input2", "f", source(units_of(4, 10, 17)))
    group.add(input1)
    group.add(input2)
    assert group.hasMoreData()

    for call, row in enumerate(WORKED, start=1):
        unit1, value1, unit2, value2, interval, common, done, changed = row
        group.next()
        assert (input1.data_index, input1.data_index_end) == unit1, call
        assert input1.data == value1, call
        assert (input2.data_index, input2.data_index_end) == unit2, call
        assert input2.data == value2, call
        assert (group.data_index, group.data_index_end) == interval, call
        assert (group.first_data_index, group.last_data_index) == common, call
        assert (listener.data_index_start, listener.data_index_end) == common, call
        assert (input1.isDataUnitDone(), input2.isDataUnitDone()) == done, call
        assert (input1.hasDataChanged(), input2.hasDataChanged()) == changed, call
        assert input1.hasMoreData() is (call < 8), call
        assert input2.hasMoreData() is (call < 6), call
        assert group.hasMoreData() is (call < 8), call

    assert input1.nb_data_blocks_read == 6
    assert input2.nb_data_blocks_read == 3
    with pytest.raises(RuntimeError, match="channel `channel1' on input `input1'"):
        group.next()


def test_group_without_listener():
    group = InputGroup("ch", restricted_access=False)
    group.add(Input("a", "f", source(units_of(1, 3))))
    group.next()
    assert (group.first_data_index, group.last_data_index) == (0, 1)


def test_group_of_one_input_moves_as_the_general_case():
    # one input (the per-unit fast path) and the same units twice (the general path)
    one_listener, two_listener = SynchronizationListener(), SynchronizationListener()
    one = InputGroup("ch", one_listener, restricted_access=False)
    two = InputGroup("ch", two_listener, restricted_access=False)
    one.add(Input("a", "f", source(units_of(2, 5, 9))))
    two.add(Input("a", "f", source(units_of(2, 5, 9))))
    two.add(Input("b", "f", source(units_of(2, 5, 9))))

    def state(group, listener):
        x = group[0]
        return (
            (group.data_index, group.data_index_end),
            (group.first_data_index, group.last_data_index),
            (listener.data_index_start, listener.data_index_end),
            (x.data_index, x.data_index_end, x.data, x.hasDataChanged(), x.isDataUnitDone()),
            group.hasMoreData(),
        )

    while two.hasMoreData():
        one.next()
        two.next()
        assert state(one, one_listener) == state(two, two_listener)
    assert not one.hasMoreData()


# -- InputList --------------------------------------------------------------------------


def make_list():
    main = InputGroup("main")
    other = InputGroup("other", restricted_access=False)
    a = Input("a", "f", source(units_of(0, 1)))
    b = Input("b", "f", source(units_of(1)))
    c = Input("c", "f", source(units_of(0)))
    main.add(a)
    main.add(b)
    other.add(c)
    inputs = InputList()
    inputs.add(other)
    inputs.add(main)
    return inputs, main, other, (a, b, c)


def test_input_list_main_group_is_the_first_restricted_group():
    inputs, main, other, _ = make_list()
    assert inputs.main_group is main
    second = InputGroup("later")
    inputs.add(second)
    assert inputs.main_group is main


def test_input_list_without_restricted_group_has_no_main_group():
    inputs = InputList()
    assert inputs.main_group is None
    inputs.add(InputGroup("x", restricted_access=False))
    assert inputs.main_group is None


def test_input_list_access():
    inputs, main, other, (a, b, c) = make_list()
    assert len(inputs) == 3
    assert list(inputs) == [c, a, b]  # groups in the order added
    assert inputs["a"] is a and inputs["c"] is c
    assert inputs["zz"] is None
    assert inputs[0] is c and inputs[1] is a and inputs[2] is b
    assert inputs[3] is None
    assert inputs[-1] is b and inputs[-3] is c and inputs[-4] is None
    assert inputs[0:2] == [c, a]
    assert inputs[1:] == [a, b]
    assert inputs[5:9] == []
    assert inputs[None] is None
    assert [x.name for x in inputs[0:2]] == ["c", "a"]


def test_input_list_groups():
    inputs, main, other, (a, b, c) = make_list()
    assert inputs.nbGroups() == 2
    assert inputs.groupOf("a") is main
    assert inputs.groupOf("c") is other
    assert inputs.groupOf("zz") is None
    assert inputs.group("main") is main
    assert inputs.group("other") is other
    assert inputs.group("zz") is None
    assert inputs.group(0) is other
    assert inputs.group(1) is main
    assert inputs.group(-1) is main
    with pytest.raises(IndexError):
        inputs.group(2)
    assert inputs.group(1.0) is None
    assert a.group is main


def test_input_list_has_more_data():
    inputs, main, other, (a, b, c) = make_list()
    assert inputs.hasMoreData()
    other.next()
    assert other.hasMoreData() is False
    assert inputs.hasMoreData()
    main._next()
    main._next()
    assert inputs.hasMoreData() is False
    assert InputList().hasMoreData() is False


def test_inputs_pickle_with_their_sources():
    inputs, main, other, (a, b, c) = make_list()
    other.next()
    clone = pickle.loads(pickle.dumps(inputs))
    assert clone["c"].data_index_end == 0
    assert clone.groupOf("c") is clone["c"].group
    assert clone.main_group is clone.group("main")


def test_facade_classes_and_legacy_names():
    import beat.backend.python.inputs as legacy

    assert legacy.InputList is InputList
    assert Input.__module__ == "beat_backend.inputs"
    assert repr(Input("x", "f", None)).startswith("<Input 'x'")
    assert repr(InputList()) == "<InputList []>"
    assert "InputGroup" in repr(InputGroup("x"))
