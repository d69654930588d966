"""The operator graph: named backpressure policies, ordering, error isolation, shutdown."""

from __future__ import annotations

import threading
import time

import pytest

from nerveseg.realtime.graph import Channel, Closed, Operator, Graph, Policy, SourceOperator


class Counter(SourceOperator):
    name = "counter"

    def __init__(self, n: int, delay: float = 0.0):
        self.n, self.delay = n, delay

    def items(self, stop):
        for i in range(self.n):
            if self.delay:
                time.sleep(self.delay)
            yield i


class Collect(Operator):
    name = "collect"

    def __init__(self, delay: float = 0.0):
        self.items, self.delay, self.torn_down = [], delay, False

    def process(self, item):
        if self.delay:
            time.sleep(self.delay)
        self.items.append(item)
        return item

    def teardown(self):
        self.torn_down = True


class FailOn(Operator):
    name = "fail"

    def __init__(self, bad):
        self.bad = set(bad)

    def process(self, item):
        if item in self.bad:
            raise ValueError(f"bad item {item}")
        return item

    def on_error(self, item, exc):
        return ("failed", item)


def test_block_policy_waits_for_room_and_loses_nothing():
    channel = Channel("c", 2, Policy.BLOCK)
    channel.put(1)
    channel.put(2)
    done = threading.Event()
    threading.Thread(target=lambda: (channel.put(3), done.set()), daemon=True).start()
    assert not done.wait(0.1), "a full BLOCK channel must make the producer wait"
    assert channel.get() == 1
    assert done.wait(1.0)
    assert [channel.get(), channel.get()] == [2, 3]
    assert channel.dropped == 0


def test_drop_oldest_keeps_the_newest_and_counts():
    channel = Channel("c", 1, Policy.DROP_OLDEST)
    for i in range(5):
        assert channel.put(i)
    assert channel.get() == 4
    assert channel.dropped == 4


def test_reject_drops_the_new_item():
    channel = Channel("c", 1, Policy.REJECT)
    assert channel.put("a")
    assert not channel.put("b")
    assert channel.get() == "a" and channel.dropped == 1


def test_closed_channel_drains_then_raises():
    channel = Channel("c", 3, Policy.BLOCK)
    channel.put(1)
    channel.close()
    assert channel.get() == 1
    with pytest.raises(Closed):
        channel.get()
    with pytest.raises(TimeoutError):
        Channel("d", 1, Policy.BLOCK).get(timeout=0.01)


def test_pipeline_keeps_order_and_tears_down_every_stage():
    p = Graph("t")
    source, middle, sink = Counter(200), Collect(), Collect()
    p.connect(source, middle, capacity=2)
    p.connect(middle, sink, capacity=2)
    p.start()
    assert p.wait(10)
    assert sink.items == list(range(200))
    assert middle.torn_down and sink.torn_down
    assert not any(t.is_alive() for t in threading.enumerate() if t.name.startswith("t:"))


def test_live_edge_drops_oldest_when_consumer_is_slow():
    p = Graph("live")
    source, sink = Counter(40, delay=0.002), Collect(delay=0.02)
    channel = p.connect(source, sink, capacity=1, policy=Policy.DROP_OLDEST)
    p.start()
    assert p.wait(10)
    assert channel.dropped > 0
    assert len(sink.items) + channel.dropped == 40
    assert sink.items == sorted(sink.items) and sink.items[-1] == 39, "the newest frame always gets through"


def test_failing_item_is_isolated_and_replaced():
    p = Graph("iso")
    source, fail, sink = Counter(10), FailOn({3, 7}), Collect()
    p.connect(source, fail)
    p.connect(fail, sink)
    p.start()
    assert p.wait(10)
    assert sink.items[3] == ("failed", 3) and sink.items[7] == ("failed", 7)
    assert len(sink.items) == 10 and p.item_errors["fail"] == 2 and p.fatal is None


def test_repeated_failures_stop_the_pipeline_with_a_clear_error():
    p = Graph("stop")
    fail = FailOn(set(range(1000)))
    fail.max_consecutive_errors = 5
    p.connect(Counter(1000), fail)
    p.connect(fail, Collect())
    p.start()
    assert p.wait(10)
    assert p.fatal is not None and "5 consecutive failures" in str(p.fatal)


def test_stop_ends_an_endless_source_promptly():
    class Endless(SourceOperator):
        name = "endless"

        def items(self, stop):
            i = 0
            while not stop.is_set():
                time.sleep(0.001)
                i += 1
                yield i

    p = Graph("endless")
    sink = Collect()
    p.connect(Endless(), sink)
    p.start()
    time.sleep(0.1)
    t0 = time.monotonic()
    p.stop()
    assert p.wait(2.0), "every thread must end within 2 s of stop()"
    assert time.monotonic() - t0 < 2.0 and sink.items


class Where(Collect):
    """Notes the thread each call runs in."""

    name = "where"

    def __init__(self):
        super().__init__()
        self.threads, self.setup_thread = set(), None

    def setup(self):
        self.setup_thread = threading.current_thread().name

    def process(self, item):
        self.threads.add(threading.current_thread().name)
        return super().process(item)


def test_an_inline_edge_runs_downstream_in_the_upstreams_thread_with_no_channel():
    """INLINE: the downstream runs right after its upstream in the upstream's thread (set up
    and torn down there too), item by item, in order; what it emits goes on through
    ordinary channels, which close when the upstream ends; failures are counted and
    handled as on any edge, without stopping the run."""
    graph = Graph("g")
    source, show, fails, sink = Counter(6), Where(), FailOn({2}), Collect()
    assert graph.connect(source, show, policy=Policy.INLINE) is None
    graph.connect(show, fails, policy=Policy.INLINE)
    graph.connect(fails, sink, capacity=8)
    with pytest.raises(ValueError, match="already has an input"):
        graph.connect(Counter(1), show, policy=Policy.INLINE)
    graph.start()
    assert graph.wait(5.0)
    assert [t.name for t in graph._threads] == ["g:counter", "g:collect"]  # no thread for show nor fail
    assert show.threads == {"g:counter"} and show.setup_thread == "g:counter" and show.torn_down
    assert show.items == list(range(6))
    assert sink.items == [0, 1, ("failed", 2), 3, 4, 5] and sink.torn_down
    assert graph.item_errors["fail"] == 1 and not graph.errors
    assert [c.name for c in graph.channels] == ["fail->collect"]


def test_an_inline_operator_failing_on_every_item_stops_the_run_as_a_threaded_one_would():
    graph = Graph("g")
    bad = FailOn(set(range(100)))
    bad.max_consecutive_errors = 3
    graph.connect(Counter(10), bad, policy=Policy.INLINE)
    graph.start()
    assert graph.wait(5.0)
    assert graph.fatal is not None and "3 consecutive failures" in str(graph.fatal)
    assert graph.item_errors["fail"] == 3
