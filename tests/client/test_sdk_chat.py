"""``clipwire chat`` (``run_chat``) driven through a pipe, as in the README quickstart."""

from __future__ import annotations

import asyncio
import sys

from sdkhelp import HubFactory, SdkFactory, messages, next_event
from wire import SECRET

from clipwire.client import ConversationChanged, Message, VideoCard
from clipwire.client.chat import video_id_for
from clipwire.server import ClipwireServer

TIMEOUT_S = 20


async def start_chat(url: str, user: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "clipwire.server", "chat", "--as", user, "--url", url, "--secret", SECRET,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )


async def read_until(proc: asyncio.subprocess.Process, wanted: str, seen: list[str]) -> None:
    """Read stdout lines into ``seen`` until one contains ``wanted``."""
    assert proc.stdout is not None
    async with asyncio.timeout(TIMEOUT_S):
        while True:
            line = (await proc.stdout.readline()).decode()
            assert line, f"chat ended before {wanted!r}; output so far: {seen}"
            seen.append(line.rstrip("\n"))
            if wanted in line:
                return


async def test_chat_sends_text_and_a_video_card(hub: ClipwireServer, sdk: SdkFactory) -> None:
    bob = await sdk(hub.url, "bob")
    proc = await start_chat(hub.url, "alice")
    commands = (
        "/to bob hi bob\n"
        "/share bob https://videos.example/v/cat42 Funny cat\n"
        "/group Crew bob\n"
        "/say Crew hello crew\n"
        "/history bob\n"
        "/convs\n"
    )
    out, err = await asyncio.wait_for(proc.communicate(commands.encode()), TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    lines = out.decode().splitlines()
    assert lines[0].startswith(f"connected to {hub.url} as alice")
    assert "[dm bob] alice: hi bob" in lines
    assert "[dm bob] alice shared a video: Funny cat https://videos.example/v/cat42" in lines
    assert "[group Crew] alice: hello crew" in lines
    assert any(line.startswith("  #2 ") and "shared a video" in line for line in lines)  # /history

    text, card = await messages(bob, 2)
    assert (text.sender, text.kind, text.text) == ("alice", "text", "hi bob")
    assert (card.sender, card.kind, card.conv) == ("alice", "video", text.conv)
    assert card.video == VideoCard(id="cat42", url="https://videos.example/v/cat42", caption="Funny cat")
    group = await next_event(bob, ConversationChanged, where=lambda e: e.conversation.kind == "group")
    assert group.conversation.title == "Crew"
    assert (await next_event(bob, Message)).text == "hello crew"


async def test_chat_prints_incoming_events(hub: ClipwireServer, sdk: SdkFactory) -> None:
    alice = await sdk(hub.url, "alice")
    proc = await start_chat(hub.url, "bob")
    seen: list[str] = []
    await read_until(proc, "connected to", seen)

    sent = await alice.send_text("hi", to="bob")
    await alice.share_video({"id": "v9", "url": "https://videos.example/v/9", "caption": "Sunset"},
                            to=["bob"], text="look at this")
    await read_until(proc, "[dm alice] alice shared a video:", seen)
    assert "[dm alice] alice: hi" in seen
    assert seen[-1] == "[dm alice] alice shared a video: Sunset https://videos.example/v/9 -- look at this"

    assert proc.stdin is not None
    proc.stdin.write(b"/say alice hi yourself\n/nonsense\n/quit\n")
    await proc.stdin.drain()
    reply = await next_event(alice, Message)
    assert (reply.conv, reply.sender, reply.text) == (sent.conv, "bob", "hi yourself")
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    assert "!!! not understood: /nonsense (/help lists commands)" in out.decode()


async def test_chat_exits_when_the_hub_is_unreachable(hub: ClipwireServer) -> None:
    url = hub.url
    await hub.close()
    proc = await start_chat(url, "alice")
    _, err = await asyncio.wait_for(proc.communicate(b""), TIMEOUT_S)
    assert proc.returncode == 1
    assert "clipwire chat: cannot connect" in err.decode()


def test_video_ids_come_from_the_url() -> None:
    assert video_id_for("https://videos.example/watch?v=abc123") == "abc123"
    assert video_id_for("https://videos.example/v/cat42") == "cat42"
    assert len(video_id_for("https://videos.example/")) == 16


async def say(proc: asyncio.subprocess.Process, line: str) -> None:
    assert proc.stdin is not None
    proc.stdin.write(f"{line}\n".encode())
    await proc.stdin.drain()


async def quit_chat(proc: asyncio.subprocess.Process) -> str:
    out, err = await asyncio.wait_for(proc.communicate(b"/quit\n"), TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    return out.decode()


async def test_chat_befriends_reacts_and_replies(hub_factory: HubFactory) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice, bob = await start_chat(hub.url, "alice"), await start_chat(hub.url, "bob")
    seen_a: list[str] = []
    seen_b: list[str] = []
    await read_until(alice, "no friends yet", seen_a)
    await read_until(bob, "no friends yet", seen_b)

    await say(alice, "/to bob hi")  # not friends yet: the default policy refuses
    await read_until(alice, "!!! /to:", seen_a)
    assert "forbidden" in seen_a[-1]
    await say(alice, "/friend bob")
    await read_until(alice, "*** you asked bob to be friends", seen_a)
    await read_until(bob, "*** alice sent you a friend request — /accept alice", seen_b)
    await say(bob, "/accept alice")
    await read_until(bob, "*** you and alice are friends now", seen_b)
    await read_until(alice, "*** you and bob are friends now", seen_a)
    await read_until(alice, "*** bob is online", seen_a)

    await say(alice, "/share bob https://videos.example/v/cat42 Funny cat")
    await read_until(bob, "[dm alice] alice shared a video: Funny cat", seen_b)
    await say(bob, "/react alice 1 🔥 0:12")
    await read_until(bob, "[dm alice] you reacted 🔥 to #1 at 0:12", seen_b)
    await read_until(alice, "[dm bob] bob reacted 🔥 to #1 at 0:12", seen_a)
    await say(bob, "/reply alice 1 0:30 that jump!")
    await read_until(alice, "[dm bob] bob: (re #1 at 0:30) that jump!", seen_a)
    await say(bob, "/read alice")
    await read_until(alice, "[dm bob] bob read up to #2", seen_a)

    await say(alice, "/friends")
    await read_until(alice, "friends: bob (online)", seen_a)
    await say(alice, "/history bob")
    await read_until(alice, "  #2 ", seen_a)
    assert any(line.startswith("  #1 ") and line.endswith("[🔥 1 at 0:12]") for line in seen_a)
    await say(alice, "/unsend bob 1")
    await read_until(bob, "[dm alice] message #1 was unsent", seen_b)
    await quit_chat(bob)
    out = await quit_chat(alice)
    assert "*** [dm bob] you unsent #1" in out


async def test_chat_welcome_shows_friends_and_requests(hub_factory: HubFactory, sdk: SdkFactory) -> None:
    hub = await hub_factory(dm_policy="friends")
    alice, bob, carol = [await sdk(hub.url, user) for user in ("alice", "bob", "carol")]
    await alice.friend_request("bob")
    await bob.accept_friend("alice")
    await carol.friend_request("alice")
    proc = await start_chat(hub.url, "alice")
    out = await quit_chat(proc)
    assert "friends: bob (online)" in out
    assert "friend request from carol — /accept carol" in out


async def test_chat_shows_control_sequences_in_texts_and_titles_escaped(
    hub: ClipwireServer, sdk: SdkFactory
) -> None:
    mallory = await sdk(hub.url, "mallory")
    proc = await start_chat(hub.url, "bob")
    seen: list[str] = []
    await read_until(proc, "connected to", seen)
    # A clipboard write (OSC 52), a screen clear, a right-to-left override and a forged line.
    await mallory.send_text("\x1b]52;c;cm0gLXJmIH4=\x07\x1b[2Jhi \u202eevil\n[dm bank] bank: pay",
                            to="bob")
    await mallory.create_group(["bob"], "\x1b]0;owned\x07crew")
    await read_until(proc, "pay", seen)
    assert seen[-1] == ("[dm mallory] mallory: \\x1b]52;c;cm0gLXJmIH4=\\x07\\x1b[2Jhi \\u202eevil"
                        "\\x0a[dm bank] bank: pay")
    assert proc.stdin is not None
    proc.stdin.write(b"/convs\n/quit\n")
    await proc.stdin.drain()
    out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT_S)
    assert proc.returncode == 0, err.decode()
    assert "\x1b" not in out.decode() and "\x07" not in out.decode()
    assert "[group \\x1b]0;owned\\x07crew]" in out.decode()
