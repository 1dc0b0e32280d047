"""A member who may add others to groups (a friend, or anyone under ``dm_policy=everyone``)
must not be able to lock a victim out or grow the hub: group changes are rate-limited
per member named, a user belongs to at most ``max_groups_per_user`` groups, the welcome
fits a quarter of the send buffer (``inbox_more`` says the rest is left out), and the
victim can leave a group the welcome left out right after hello.
"""

from __future__ import annotations

import msgpack
from socialhelp import error_code
from test_request_rates import flood
from wire import Dial, HubFactory, RawClient


async def groups_with_victim(mallory: RawClient, groups: int, others: int) -> list[str]:
    """``groups`` groups of mallory's, each with the victim and ``others`` long member ids."""
    crowd = [f"member-{n:04d}-" + "x" * 50 for n in range(others)]
    return [(await mallory.ok("group.create", members=["victim", *crowd], title=f"g{n}"))["conv"]
            for n in range(groups)]


async def test_group_changes_are_rate_limited_per_member_named(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(rate_group_per_s=1.0, max_group_members=10)  # burst: 10 members
    mallory = await dial(hub.url, "mallory")
    assert mallory.welcome["limits"]["rate_group_burst"] == 10
    named = [f"v{n}" for n in range(8)]
    conv = (await mallory.ok("group.create", members=named))["conv"]  # 8 of the 10
    outcomes = await flood(mallory, [
        ("group.create", {"members": ["w1", "w2", "w3"]}),  # 3 more than the 2 left
        ("group.add", {"conv": conv, "members": ["w4"]}),
        ("group.remove", {"conv": conv, "members": named[:3]}),
        ("group.create", {"members": ["w7"]}),
    ])
    assert outcomes == ["rate_limited"] * 4  # each waits behind the promise before it


async def test_no_one_is_added_to_more_than_max_groups_per_user(hub_factory: HubFactory, dial: Dial) -> None:
    hub = await hub_factory(max_groups_per_user=3)
    mallory, carol = await dial(hub.url, "mallory"), await dial(hub.url, "carol")
    for _ in range(3):
        assert (await mallory.ok("group.create", members=["victim"]))["refused"] == []
    # Mallory is in 3 groups too: her own creations count, and she may create no more.
    assert error_code(await mallory.call("group.create", members=["victim"])) == "too_large"
    reply = await carol.ok("group.create", members=["victim", "dave"])
    assert reply["refused"] == ["victim"]  # at the cap: left out like a refusal of the policy
    added = await carol.ok("group.add", conv=reply["conv"], members=["victim", "erin"])
    assert added["refused"] == ["victim"]
    victim = await dial(hub.url, "victim")
    assert len(victim.welcome["convs"]) == 3


async def test_the_welcome_fits_the_send_buffer_and_leaving_needs_no_download(
    hub_factory: HubFactory, dial: Dial
) -> None:
    buffer = 64 * 1024
    hub = await hub_factory(send_buffer_bytes=buffer, rate_group_per_s=100_000.0)
    convs = await groups_with_victim(await dial(hub.url, "mallory"), 40, 150)
    # about 400 KB of members for the victim's welcome

    victim = await dial(hub.url, "victim")
    assert len(msgpack.packb(victim.welcome)) <= buffer // 4
    listed = victim.welcome["convs"]
    assert victim.welcome["inbox_more"] is True and 0 < len(listed) < len(convs)
    assert listed[0]["member_count"] == 152 and len(listed[0]["members"]) == 100
    left_out = next(c for c in convs if c not in {item["conv"] for item in listed})
    await victim.ok("group.leave", conv=left_out)
    assert left_out not in {c["conv"] for c in (await dial(hub.url, "victim")).welcome["convs"]}


async def test_the_welcome_and_the_resume_backlog_share_half_the_send_buffer(
    hub_factory: HubFactory, dial: Dial
) -> None:
    buffer = 64 * 1024
    hub = await hub_factory(send_buffer_bytes=buffer, rate_group_per_s=100_000.0)
    mallory = await dial(hub.url, "mallory")
    convs = await groups_with_victim(mallory, 5, 45)
    for n in range(30):
        await mallory.ok("send", conv=convs[0], cmid=f"c{n}", text="y" * 3000)

    victim = await dial(hub.url, "victim", resume={convs[0]: 0})
    assert "inbox_more" not in victim.welcome  # a welcome of about 15 KB, all of it
    gap = await victim.event("gap")
    backlog = [e for e in victim.queued() if e["t"] == "msg"]
    assert backlog and gap["from_seq"] == backlog[-1]["seq"] + 1
    sent = len(msgpack.packb(victim.welcome)) + sum(len(msgpack.packb(e)) for e in backlog)
    assert sent <= buffer // 2  # ten such hellos queue at most half a buffer each
