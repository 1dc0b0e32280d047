"""Friends and the DM policy: requests, accepts, removals, welcome lists, who may DM whom."""

from __future__ import annotations

from pathlib import Path

from socialhelp import befriend, error_code, queued_of, quiet, settle, social_hub, user_of
from wire import SECRET, TRANSPORT, Dial, HubFactory, HubProcess, RawClient, token

from clipwire.server import ClipwireServer, HubConfig
from clipwire.server.config import ConfigError
from clipwire.server.conversations import NO_ACCESS as NO_ACCESS_MESSAGE

# -- requests and accepts ---------------------------------------------------


async def test_request_and_accept_tell_both_sides_on_every_device(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, alice_laptop = await join("alice"), await join("alice")
    bob, bob_laptop = await join("bob"), await join("bob")

    assert set(await alice.ok("friend.request", user="bob")) == {"t", "id"}
    for device in (bob, bob_laptop):
        assert await device.event("friend") == {"t": "friend", "user": "alice", "state": "requested",
                                                "direction": "in"}
    for device in (alice, alice_laptop):  # the requesting connection too
        assert await device.event("friend") == {"t": "friend", "user": "bob", "state": "requested",
                                                "direction": "out"}

    assert set(await bob_laptop.ok("friend.accept", user="alice")) == {"t", "id"}
    for device in (alice, alice_laptop):
        assert await device.event("friend") == {"t": "friend", "user": "bob", "state": "accepted"}
        presence = await device.event("presence")
        assert presence == {"t": "presence", "user": "bob", "online": True, "last_seen": None}
    for device in (bob, bob_laptop):
        assert await device.event("friend") == {"t": "friend", "user": "alice", "state": "accepted"}
        assert (await device.event("presence"))["user"] == "alice"

    # Friends may now talk under the friends policy.
    ok = await alice.ok("send", to="bob", cmid="c1", text="friends now")
    assert (await bob.event("msg"))["conv"] == ok["conv"]


async def test_requests_received_offline_are_in_welcome(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice = await join("alice")
    assert alice.welcome["requests"] == [] and alice.welcome["friends"] == []
    await alice.ok("friend.request", user="bob")    # bob is offline
    await alice.ok("friend.request", user="carol")  # carol too
    carol = await join("carol")
    await carol.ok("friend.request", user="dave")

    bob = await join("bob")
    assert bob.welcome["requests"] == [{"user": "alice", "direction": "in"}]
    carol_again = await join("carol")
    assert carol_again.welcome["requests"] == [{"user": "alice", "direction": "in"},
                                               {"user": "dave", "direction": "out"}]
    assert (await join("alice")).welcome["requests"] == [{"user": "bob", "direction": "out"},
                                                         {"user": "carol", "direction": "out"}]

    await bob.ok("friend.accept", user="alice")
    bob_again = await join("bob")
    assert bob_again.welcome["requests"] == []
    assert bob_again.welcome["friends"] == [{"user": "alice", "online": True, "last_seen": None}]


async def test_accepting_an_offline_requester_shows_when_they_were_last_seen(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice = await join("alice")
    await alice.ok("friend.request", user="bob")
    await alice.close()
    bob = await join("bob")
    assert bob.welcome["requests"] == [{"user": "alice", "direction": "in"}]
    await bob.ok("friend.accept", user="alice")
    assert await bob.event("friend") == {"t": "friend", "user": "alice", "state": "accepted"}
    presence = await bob.event("presence")
    assert (presence["user"], presence["online"]) == ("alice", False) and presence["last_seen"] > 0
    alice = await join("alice")  # alice hears of it in her welcome
    assert alice.welcome["requests"] == []
    assert alice.welcome["friends"] == [{"user": "bob", "online": True, "last_seen": None}]
    assert (await bob.event("presence", user="alice"))["online"] is True


async def test_asking_someone_who_asked_you_is_an_accept(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await alice.ok("friend.request", user="bob")
    await quiet(alice, bob)
    await bob.ok("friend.request", user="alice")
    assert await alice.event("friend") == {"t": "friend", "user": "bob", "state": "accepted"}
    assert await bob.event("friend") == {"t": "friend", "user": "alice", "state": "accepted"}
    await alice.ok("send", to="bob", cmid="c1", text="hi")
    assert (await join("alice")).welcome["requests"] == []


async def test_repeated_requests_and_accepts_are_quiet_no_ops(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await alice.ok("friend.request", user="bob")
    await quiet(alice, bob)
    await alice.ok("friend.request", user="bob")  # already requested
    await settle(alice, bob)
    assert queued_of(bob, "friend") == [] and queued_of(alice, "friend") == []

    await bob.ok("friend.accept", user="alice")
    await bob.event("presence", user="alice")
    await alice.event("presence", user="bob")
    await quiet(alice, bob)
    await bob.ok("friend.accept", user="alice")   # already friends
    await alice.ok("friend.request", user="bob")  # already friends
    await settle(alice, bob)
    assert alice.queued() == [] and bob.queued() == []


async def test_request_to_yourself_and_accept_without_a_request_are_refused(
    hub_factory: HubFactory, dial: Dial
) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    assert error_code(await alice.call("friend.request", user="alice")) == "bad_request"
    assert error_code(await alice.call("friend.accept", user="bob")) == "not_found"
    await alice.ok("friend.request", user="bob")
    # Only the side that was asked accepts.
    assert error_code(await alice.call("friend.accept", user="bob")) == "not_found"
    assert error_code(await alice.call("friend.request")) == "bad_request"
    await settle(bob)
    assert queued_of(bob, "friend", state="accepted") == []


async def test_remove_ends_a_friendship_and_the_dm_right(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    dm = (await alice.ok("send", to="bob", cmid="c1", text="while friends"))["conv"]
    await bob.event("msg")

    await bob.ok("friend.remove", user="alice")
    assert await alice.event("friend") == {"t": "friend", "user": "bob", "state": "removed"}
    assert await bob.event("friend") == {"t": "friend", "user": "alice", "state": "removed"}
    for reply in (await alice.call("send", to="bob", cmid="c2", text="still?"),
                  await alice.call("send", conv=dm, cmid="c3", text="still?"),
                  await bob.call("send", conv=dm, cmid="c4", text="no")):
        assert error_code(reply) == "forbidden"
        assert reply["message"] == NO_ACCESS_MESSAGE
    assert [m["text"] for m in (await alice.ok("history", conv=dm))["messages"]] == ["while friends"]
    assert (await join("alice")).welcome["friends"] == []


async def test_remove_cancels_or_declines_a_pending_request(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial)
    alice, bob, carol = await join("alice"), await join("bob"), await join("carol")
    await alice.ok("friend.request", user="bob")
    await carol.ok("friend.request", user="alice")
    await quiet(alice, bob, carol)

    await alice.ok("friend.remove", user="bob")    # cancel my request
    await alice.ok("friend.remove", user="carol")  # decline hers
    assert await bob.event("friend") == {"t": "friend", "user": "alice", "state": "removed"}
    assert await carol.event("friend") == {"t": "friend", "user": "alice", "state": "removed"}
    assert [e["user"] for e in [await alice.event("friend"), await alice.event("friend")]] == ["bob", "carol"]
    assert (await join("alice")).welcome["requests"] == []
    assert (await join("bob")).welcome["requests"] == []
    assert error_code(await bob.call("friend.accept", user="alice")) == "not_found"

    await quiet(alice, bob)
    await alice.ok("friend.remove", user="nobody")  # unknown: ok, nothing said
    await alice.ok("friend.remove", user="bob")     # already gone
    await settle(alice, bob)
    assert alice.queued() == [] and bob.queued() == []


async def test_friendships_and_requests_survive_a_restart(hub_factory: HubFactory, dial: Dial) -> None:
    first, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await befriend(alice, bob)
    await alice.ok("friend.request", user="carol")
    await first.close()

    _, join = await social_hub(hub_factory, dial)
    alice = await join("alice")
    assert [f["user"] for f in alice.welcome["friends"]] == ["bob"]
    assert alice.welcome["requests"] == [{"user": "carol", "direction": "out"}]
    await alice.ok("send", to="bob", cmid="c1", text="after restart")
    assert error_code(await alice.call("send", to="carol", cmid="c2", text="not yet")) == "forbidden"


# -- the DM policy ----------------------------------------------------------


async def _assert_refused_and_nothing_created(url: str, dial: Dial, sender: RawClient,
                                              recipient: RawClient) -> None:
    """A DM refused by the policy: forbidden, no conv event, nothing in either welcome."""
    to = user_of(recipient)
    await quiet(sender, recipient)
    reply = await sender.call("send", to=to, cmid="refused", text="hello stranger")
    assert error_code(reply) == "forbidden" and reply["message"] == NO_ACCESS_MESSAGE
    await settle(sender, recipient)
    assert queued_of(recipient, "conv") == [] and queued_of(recipient, "msg") == []
    assert queued_of(sender, "conv") == []
    for user, peer in ((user_of(sender), to), (to, user_of(sender))):
        convs = (await dial(url, user)).welcome["convs"]
        assert [c for c in convs if c.get("peer") == peer] == []


async def test_friends_policy_refuses_a_non_friend_dm_and_creates_nothing(
    hub_factory: HubFactory, dial: Dial
) -> None:
    server, join = await social_hub(hub_factory, dial)
    alice, bob = await join("alice"), await join("bob")
    await _assert_refused_and_nothing_created(server.url, dial, alice, bob)
    # A pending request is not a friendship yet.
    await alice.ok("friend.request", user="bob")
    assert error_code(await alice.call("send", to="bob", cmid="c", text="hi")) == "forbidden"
    share = await alice.ok("share", cmid="s2", to=["bob"], video={"id": "v", "url": "https://v.example/v"})
    assert share["results"] == [{"to": "bob", "error": "forbidden"}]
    assert (await join("bob")).welcome["convs"] == []
    # Nor does a group get round it: bob is left out of alice's group (tests/server/test_groups.py).
    assert (await alice.ok("group.create", members=["bob"], title="g"))["refused"] == ["bob"]
    assert server.config.dm_policy == "friends"


async def test_dm_policy_defaults_to_friends_in_hub_config(tmp_path: Path, dial: Dial) -> None:
    config = HubConfig(port=0, db=str(tmp_path / "default.db"), secret=SECRET, transport=TRANSPORT)
    assert config.dm_policy == "friends"
    server = ClipwireServer(config)
    await server.start()
    try:
        alice, bob = await dial(server.url, "alice"), await dial(server.url, "bob")
        await _assert_refused_and_nothing_created(server.url, dial, alice, bob)
        await befriend(alice, bob)
        ok = await alice.ok("send", to="bob", cmid="c1", text="now")
        assert (await bob.event("msg"))["seq"] == ok["seq"] == 1
    finally:
        await server.close()


async def test_everyone_policy_lets_strangers_talk(hub_factory: HubFactory, dial: Dial) -> None:
    _, join = await social_hub(hub_factory, dial, dm_policy="everyone")
    alice, bob = await join("alice"), await join("bob")
    ok = await alice.ok("send", to="bob", cmid="c1", text="hi stranger")
    assert (await bob.event("conv"))["conv"] == ok["conv"]
    assert (await bob.event("msg"))["text"] == "hi stranger"


async def test_dm_policy_setting_comes_from_the_environment(hub_process: HubProcess) -> None:
    assert HubConfig.from_env({"CLIPWIRE_DM_POLICY": "everyone"}).dm_policy == "everyone"
    assert HubConfig.from_env({}).dm_policy == "friends"
    try:
        HubConfig.from_env({"CLIPWIRE_DM_POLICY": "nobody"}, secret=SECRET).check()
    except ConfigError as exc:
        assert "CLIPWIRE_DM_POLICY" in str(exc)
    else:
        raise AssertionError("an unknown policy was accepted")

    hub_process.extra_env["CLIPWIRE_DM_POLICY"] = "friends"
    hub_process.start()
    alice, bob = await RawClient.open(hub_process.url), await RawClient.open(hub_process.url)
    try:
        await alice.hello(token("alice"))
        await bob.hello(token("bob"))
        assert error_code(await alice.call("send", to="bob", cmid="c1", text="hi")) == "forbidden"
        await befriend(alice, bob)
        await alice.ok("send", to="bob", cmid="c2", text="hi friend")
    finally:
        await alice.close()
        await bob.close()


async def test_a_callable_policy_from_the_embedding_app(tmp_path: Path, dial: Dial) -> None:
    asked: list[tuple[str, str]] = []

    async def same_team(sender: str, recipient: str) -> bool:
        asked.append((sender, recipient))
        return sender.split("-")[0] == recipient.split("-")[0]

    server = ClipwireServer(HubConfig(port=0, db=str(tmp_path / "policy.db"), secret=SECRET,
                                      dm_policy="friends", transport=TRANSPORT), policy=same_team)
    await server.start()
    try:
        red1, red2, blue = [await dial(server.url, u) for u in ("red-1", "red-2", "blue-1")]
        ok = await red1.ok("send", to="red-2", cmid="c1", text="team talk")  # not friends: the app decides
        assert (await red2.event("msg"))["conv"] == ok["conv"]
        assert ("red-1", "red-2") in asked
        await _assert_refused_and_nothing_created(server.url, dial, red1, blue)
        assert ("red-1", "blue-1") in asked
        # A block refuses whatever the application's policy says.
        await red2.ok("block", user="red-1")
        assert error_code(await red1.call("send", to="red-2", cmid="c3", text="hm")) == "forbidden"
        assert error_code(await red1.call("send", conv=ok["conv"], cmid="c4", text="hm")) == "forbidden"
    finally:
        await server.close()


async def test_a_policy_object_with_may_dm(tmp_path: Path, dial: Dial) -> None:
    class OnlyToSupport:
        async def may_dm(self, sender: str, recipient: str) -> bool:
            return recipient == "support"

    server = ClipwireServer(HubConfig(port=0, db=str(tmp_path / "obj.db"), secret=SECRET,
                                      transport=TRANSPORT), policy=OnlyToSupport())
    await server.start()
    try:
        alice = await dial(server.url, "alice")
        await alice.ok("send", to="support", cmid="c1", text="help")
        assert error_code(await alice.call("send", to="bob", cmid="c2", text="hi")) == "forbidden"
    finally:
        await server.close()
