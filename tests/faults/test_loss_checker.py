"""The loss checker of ``benchmarks/faults.py`` on hand-made histories: each kind of
failure is counted where it happened, and nothing else is."""

from __future__ import annotations

from benchmarks.faults import AckLog, Delivery, check_prefix, score_device, score_run


def acks_of(*sent: tuple[str, int, str, str]) -> AckLog:
    acks = AckLog()
    for conv, seq, sender, cmid in sent:
        acks.ack(conv, seq, sender, cmid)
    return acks


ACKS = [("g", 1, "ann", "a1"), ("g", 2, "bob", "b1"), ("g", 3, "ann", "a2"), ("dm", 1, "bob", "b2")]


def d(conv: str, seq: int, sender: str, cmid: str) -> Delivery:
    return Delivery(conv, seq, sender, cmid)


def test_a_perfect_history_scores_clean() -> None:
    acks = acks_of(*ACKS)
    shown = [d(*a) for a in ACKS]
    score = score_device("ann", shown, ["g", "dm"], acks)
    assert score.ok and (score.expected, score.delivered, score.lost) == (4, 4, 0)
    assert check_prefix("ann", shown, acks) == []


def test_lost_duplicated_unexpected_and_out_of_order_are_each_counted() -> None:
    acks = acks_of(*ACKS)
    acks.attempt("g", "cat", "c9")  # sent, never acknowledged
    shown = [
        d("g", 1, "ann", "a1"),
        d("g", 3, "ann", "a2"),  # before seq 2: b1 below comes out of order
        d("g", 2, "bob", "b1"),
        d("g", 1, "ann", "a1"),  # shown twice
        d("g", 9, "eve", "forged"),  # never sent
        d("g", 4, "cat", "c9"),  # sent, never acknowledged: recovered, not a failure
        d("zz", 1, "bob", "x"),  # a conversation the device is not in, never sent
    ]  # dm's b2 never shown: lost
    score = score_device("ann", shown, ["g", "dm"], acks)
    counts = (score.lost, score.duplicated, score.unexpected, score.out_of_order, score.recovered)
    assert counts == (1, 1, 2, 1, 1)
    assert score.delivered == 3 and not score.ok
    assert "('dm', 'bob', 'b2')" in score.examples["lost"][0]


def test_a_message_shown_under_another_seq_than_its_ack_is_out_of_order() -> None:
    acks = acks_of(*ACKS)
    score = score_device("bob", [d("g", 1, "ann", "a1"), d("g", 2, "ann", "a2"), d("g", 3, "bob", "b1")],
                         ["g"], acks)
    assert score.out_of_order == 2 and score.lost == 0


def test_conflicting_acknowledgements_fail_the_run() -> None:
    acks = acks_of(*ACKS)
    acks.ack("g", 2, "bob", "b1")  # the same ack again: fine
    assert acks.conflicts == []
    acks.ack("g", 4, "bob", "b1")  # one cmid stored twice
    acks.ack("g", 3, "cat", "c1")  # two messages at one seq
    assert len(acks.conflicts) == 2
    report = score_run({"ann": ([d(*a) for a in ACKS], ["g", "dm"])}, acks)
    assert not report["passed"] and len(report["ack_conflicts"]) == 2


def test_the_prefix_rule() -> None:
    acks = acks_of(*ACKS)
    assert check_prefix("x", [d("g", 1, "ann", "a1"), d("dm", 1, "bob", "b2")], acks) == []
    assert check_prefix("x", [d("g", 2, "bob", "b1")], acks) == ["x: message 1 shown in g has seq 2"]
    assert check_prefix("x", [d("g", 1, "bob", "b1")], acks)[0].startswith("x: g seq 1 shown as")
    # Beyond what is acknowledged, only a message whose ok is in doubt may stand.
    beyond = [*(d(*a) for a in ACKS[:3]), d("g", 4, "cat", "c1")]
    assert check_prefix("x", beyond, acks) == ["x: Delivery(conv='g', seq=4, sender='cat', cmid='c1') "
                                               "shown but never sent"]
    assert check_prefix("x", beyond, acks, {("g", "cat", "c1")}) == []


def test_a_run_report_adds_up_devices() -> None:
    acks = acks_of(*ACKS)
    report = score_run({"ann": ([d(*a) for a in ACKS], ["g", "dm"]),
                        "cat": ([d(*a) for a in ACKS[:2]], ["g"])}, acks)
    assert not report["passed"]
    assert report["totals"]["expected"] == 7 and report["totals"]["lost"] == 1
    assert [s["device"] for s in report["failing_devices"]] == ["cat"]
