// The Clipwire web demo: a small chat app on the JavaScript client (clipwire-client).
// Everything it shows comes from the hub through the client; the only other things
// it asks the hub for are a demo token (/demo/token) and the sample feed.

import { connect } from "./vendor/clipwire-client.js";
import { ago, avatar, clock, fill, h, timeOfDay, toast } from "./dom.js";
import { HistoryPacer } from "./history.js";

const EMOJIS = ["🔥", "😂", "😮", "❤️"];
const DEFAULT_DURATION_MS = 60_000;
const TYPING_SHOWN_MS = 4_500;
const TYPING_EVERY_MS = 2_000;

const S = {
  me: "",
  client: null,
  pacer: null, // HistoryPacer: every history request of the page goes through it
  clockOffset: 0, // hub clock minus ours, from the welcome
  feed: [],
  open: null, // {conv} or {peer} (a DM not started yet)
  msgs: new Map(), // conv -> Map(seq -> Message)
  loaded: new Set(), // convs whose history was fetched
  previewing: new Set(), // convs whose newest message is being fetched for the chat list
  reactions: new Map(), // "conv/seq" -> Map(emoji -> {count, me, users: Set, moments: Set})
  readBy: new Map(), // conv -> Map(user -> seq), others' read markers seen live
  readSent: new Map(), // conv -> highest seq we marked read
  typing: new Map(), // conv -> Map(user -> shown until)
  unread: new Map(), // conv -> count
  watch: new Map(), // conv -> WatchState (ts on the hub's clock)
  presence: new Map(), // user -> Presence, for group members who are not friends
  replyTo: null, // {conv, seq, atMs}
  lastTyping: 0,
};

const $ = (sel) => document.querySelector(sel);
// As in style.css: one pane at a time, the chat list or the open chat.
const phone = window.matchMedia("(max-width: 640px)");
const serverNow = () => Date.now() + S.clockOffset;
const errorText = (e) => (e && e.message) || String(e);

// ------------------------------------------------------------------ sign in

async function fetchToken(user) {
  const res = await fetch(`/demo/token?user=${encodeURIComponent(user)}`, { cache: "no-store" });
  const body = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(body.error || `the hub answered ${res.status}`);
  return body.token;
}

function showSignIn(message) {
  const input = h("input", {
    id: "signin-name", placeholder: "your name, e.g. alice", autocomplete: "off", maxLength: 32,
    "aria-label": "Your name",
  });
  const go = (name) => {
    const user = (name ?? input.value).trim();
    if (user) location.search = `?user=${encodeURIComponent(user)}`;
  };
  input.addEventListener("keydown", (e) => e.key === "Enter" && go());
  fill(document.getElementById("app"), h("main", { class: "signin" },
    h("div", { class: "signin-card" },
      h("div", { class: "logo big" }, h("span", { class: "logo-mark" }, "◆"), "Clipwire"),
      h("p", { class: "lead" }, "Chat, share videos and watch together, on a real Clipwire hub."),
      h("p", { class: "muted" },
        "This demo hub signs a token for any name. Open a second window as someone else, ",
        "add them as a friend, and talk between the two."),
      message ? h("p", { class: "error" }, message) : null,
      h("div", { class: "row" }, input, h("button", { id: "signin-go", class: "primary", onclick: () => go() }, "Sign in")),
      h("div", { class: "quick" }, "or be ",
        ["alice", "bob", "carol"].map((u) => h("button", { class: "chip", onclick: () => go(u) }, avatar(u, "xs"), u))),
      h("p", { class: "fine" }, "Tokens come from GET /demo/token, which exists only when the hub runs with --demo. ",
        "In your app, your backend signs them."),
    )));
  input.focus();
}

async function signIn(user) {
  fill(document.getElementById("app"), h("main", { class: "signin" }, h("p", { class: "muted" }, `Signing in as ${user}…`)));
  let token;
  try {
    token = await fetchToken(user);
  } catch (e) {
    showSignIn(errorText(e));
    return;
  }
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const client = await connect(`${scheme}://${location.host}/ws`, {
    token, tokenProvider: () => fetchToken(user), device: "web-demo",
  }).catch((e) => showSignIn(`Could not connect: ${errorText(e)}`));
  if (!client) return;
  S.client = client;
  S.pacer = new HistoryPacer(client);
  S.me = client.user;
  S.clockOffset = client.serverTime ? client.serverTime - Date.now() : 0;
  for (const conv of client.conversations.values()) {
    S.unread.set(conv.conv, conv.unread);
    if (conv.watch) S.watch.set(conv.conv, conv.watch);
  }
  document.title = `${S.me} · Clipwire demo`;
  layout();
  client.on("*", (ev) => onEvent(ev));
  renderAll();
  loadPreviews([...client.conversations.values()]);
  setInterval(tick, 100);
  document.addEventListener("visibilitychange", () => S.open?.conv && markRead(S.open.conv));
  window.addEventListener("popstate", () => S.open && closeChat());
}

// ------------------------------------------------------------------ events

function onEvent(ev) {
  switch (ev.type) {
    case "message":
      addMessage(ev);
      if (ev.sender !== S.me) {
        clearTyping(ev.conv, ev.sender);
        if (S.open?.conv === ev.conv && document.visibilityState === "visible") markRead(ev.conv);
        else S.unread.set(ev.conv, (S.unread.get(ev.conv) ?? 0) + 1);
      }
      renderChats();
      if (S.open?.conv === ev.conv) renderMessages();
      break;
    case "conversation":
      if (ev.removed && S.open?.conv === ev.conv) S.open = null;
      if (!ev.removed && S.open?.peer && ev.conversation.kind === "dm" && ev.conversation.peer === S.open.peer) {
        S.open = { conv: ev.conv };
      }
      if (!ev.removed) loadPreviews([ev.conversation]);
      renderChats();
      renderChat();
      break;
    case "presence":
      S.presence.set(ev.user, ev);
      renderFriends();
      renderChats();
      renderHeader();
      break;
    case "friend":
      if (ev.state === "requested" && ev.direction === "in") toast(`${ev.user} wants to be friends`);
      if (ev.state === "accepted") toast(`You and ${ev.user} are friends now`, "ok");
      renderFriends();
      renderHeader();
      break;
    case "typing":
      if (ev.user === S.me) break;
      if (!S.typing.has(ev.conv)) S.typing.set(ev.conv, new Map());
      S.typing.get(ev.conv).set(ev.user, Date.now() + TYPING_SHOWN_MS);
      renderTyping();
      break;
    case "read":
      if (ev.user === S.me) {
        S.unread.set(ev.conv, 0);
        renderChats();
        break;
      }
      if (!S.readBy.has(ev.conv)) S.readBy.set(ev.conv, new Map());
      S.readBy.get(ev.conv).set(ev.user, Math.max(ev.seq, S.readBy.get(ev.conv).get(ev.user) ?? 0));
      if (S.open?.conv === ev.conv) renderMessages();
      break;
    case "reaction":
      applyReaction(ev.conv, ev.seq, ev.user, ev.emoji, ev.on, ev.atMs);
      if (S.open?.conv === ev.conv) renderMessages();
      break;
    case "unsent": {
      const m = S.msgs.get(ev.conv)?.get(ev.seq);
      if (m) S.msgs.get(ev.conv).set(ev.seq, { ...m, unsent: true, text: undefined, video: undefined, reply: undefined });
      if (S.open?.conv === ev.conv) renderMessages();
      break;
    }
    case "watch":
      setWatch(ev);
      break;
    case "disconnected":
      setStatus(ev.reconnecting ? "reconnecting…" : "offline", "warn");
      break;
    case "reconnected":
      S.clockOffset = S.client.serverTime ? S.client.serverTime - Date.now() : S.clockOffset;
      setStatus("online", "ok");
      break;
    default:
      break;
  }
}

function clearTyping(conv, user) {
  S.typing.get(conv)?.delete(user);
  renderTyping();
}

// ------------------------------------------------------------------ state

function messagesOf(conv) {
  if (!S.msgs.has(conv)) S.msgs.set(conv, new Map());
  return S.msgs.get(conv);
}

function addMessage(m) {
  messagesOf(m.conv).set(m.seq, m);
}

function sortedMessages(conv) {
  return [...messagesOf(conv).values()].sort((a, b) => a.seq - b.seq);
}

function reactionsOf(conv, seq) {
  const key = `${conv}/${seq}`;
  if (!S.reactions.has(key)) S.reactions.set(key, new Map());
  return S.reactions.get(key);
}

function loadReactions(m) {
  const map = reactionsOf(m.conv, m.seq);
  map.clear();
  for (const r of m.reactions ?? []) {
    map.set(r.emoji, { count: r.count, me: r.me, users: new Set(), moments: new Set(r.moments) });
  }
}

function applyReaction(conv, seq, user, emoji, on, atMs) {
  const map = reactionsOf(conv, seq);
  const entry = map.get(emoji) ?? { count: 0, me: false, users: new Set(), moments: new Set() };
  const mine = user === S.me;
  const had = mine ? entry.me : entry.users.has(user);
  if (on) {
    if (!had) entry.count += 1;
    if (mine) entry.me = true;
    else entry.users.add(user);
    if (atMs !== undefined && atMs !== null) entry.moments.add(atMs);
  } else if (had) {
    entry.count -= 1;
    if (mine) entry.me = false;
    else entry.users.delete(user);
  }
  if (entry.count > 0) map.set(emoji, entry);
  else map.delete(emoji);
}

function conversation(conv) {
  return S.client.conversations.get(conv);
}

function dmWith(peer) {
  for (const c of S.client.conversations.values()) if (c.kind === "dm" && c.peer === peer) return c.conv;
  return null;
}

function presenceOf(user) {
  return S.client.friends.get(user) ?? S.presence.get(user) ?? null;
}

function lastActivity(conv) {
  const list = sortedMessages(conv);
  return list.length ? list[list.length - 1].ts : 0;
}

// At most one read marker per conversation each READ_PACE_MS (then the newest): in a
// busy group one per arriving message would pass the hub's read rate (rate_read_per_s).
const READ_PACE_MS = 500;
const readPaced = new Map(); // conv -> true if another mark is due when the pause ends

function markRead(conv) {
  if (readPaced.has(conv)) {
    readPaced.set(conv, true);
    return;
  }
  readPaced.set(conv, false);
  setTimeout(() => {
    const again = readPaced.get(conv);
    readPaced.delete(conv);
    if (again) markRead(conv);
  }, READ_PACE_MS);
  sendRead(conv);
}

async function sendRead(conv) {
  if (document.visibilityState !== "visible") return;
  const list = sortedMessages(conv);
  const last = Math.max(list.length ? list[list.length - 1].seq : 0, conversation(conv)?.lastSeq ?? 0);
  const done = Math.max(S.readSent.get(conv) ?? 0, conversation(conv)?.readSeq ?? 0);
  S.unread.set(conv, 0);
  if (last <= done) return;
  S.readSent.set(conv, last);
  try {
    await S.client.read(conv, last);
  } catch (e) {
    S.readSent.delete(conv);
    console.warn("read failed", e);
  }
  renderChats();
}

/** Back to the chat list (on a phone, the list fills the screen again). */
function closeChat() {
  S.open = null;
  S.replyTo = null;
  renderChat();
  renderChats();
}

/** The chat's back button: on a phone, opening a chat added a history entry (so that
 * the phone's own back button returns to the list too); leave it the same way. */
function back() {
  if (history.state?.chat) history.back();
  else closeChat();
}

async function openConversation(target) {
  if (phone.matches && !history.state?.chat) history.pushState({ chat: true }, "");
  S.open = target.conv ? { conv: target.conv } : { peer: target.peer };
  S.replyTo = null;
  renderChat();
  renderChats();
  const conv = S.open.conv;
  if (!conv) return;
  if (!S.loaded.has(conv)) {
    S.loaded.add(conv);
    try {
      const page = await S.pacer.history(conv, { limit: 50 }, { urgent: true });
      for (const m of page) {
        addMessage(m);
        loadReactions(m);
      }
    } catch (e) {
      S.loaded.delete(conv);
      toast(`Could not load the history: ${errorText(e)}`, "error");
    }
    const c = conversation(conv);
    if (c?.kind === "group") {
      const strangers = c.members.filter((u) => u !== S.me && !S.client.friends.has(u));
      if (strangers.length) {
        S.client.presence(strangers).then((states) => {
          for (const p of states) S.presence.set(p.user, p);
          renderHeader();
        }).catch(() => {});
      }
    }
    if (S.open?.conv === conv) renderChat();
  }
  markRead(conv);
}

/**
 * The newest message of each of `convs` that the page holds none of, for the chat list.
 * The protocol has no inbox call, so this is a history request of one message per chat,
 * paced (S.pacer): unread chats first, then in the welcome's order (most messages first).
 */
function loadPreviews(convs) {
  const wanted = convs.filter((c) => c.lastSeq > 0 && !S.previewing.has(c.conv) && !messagesOf(c.conv).size);
  wanted.sort((a, b) => Number(b.unread > 0) - Number(a.unread > 0));
  for (const c of wanted) {
    S.previewing.add(c.conv);
    S.pacer.history(c.conv, { limit: 1 }, { skip: () => messagesOf(c.conv).size > 0 || !conversation(c.conv) })
      .then((page) => {
        for (const m of page ?? []) {
          if (messagesOf(m.conv).has(m.seq)) continue;
          addMessage(m);
          loadReactions(m);
        }
        if (page?.length) renderChats();
      })
      .catch((e) => console.warn(`no preview of ${c.conv}: ${errorText(e)}`))
      .finally(() => S.previewing.delete(c.conv));
  }
}

// ------------------------------------------------------------------ watch together

function setWatch(state) {
  const old = S.watch.get(state.conv);
  if (!old || state.ts >= old.ts) S.watch.set(state.conv, state);
}

function durationOf(video) {
  return video.durationMs && video.durationMs > 0 ? video.durationMs : DEFAULT_DURATION_MS;
}

/** Where `video` is in `conv`'s watch-together state: {pos, playing, state}. */
function positionOf(conv, video) {
  const w = S.watch.get(conv);
  const duration = durationOf(video);
  if (!w || w.videoId !== video.id) return { pos: 0, playing: false, state: null };
  const raw = w.playing ? w.posMs + (serverNow() - w.ts) : w.posMs;
  const pos = Math.min(Math.max(0, Math.round(raw)), duration);
  return { pos, playing: w.playing && pos < duration, state: w };
}

async function sendWatch(conv, video, posMs, playing) {
  const pos = Math.min(Math.max(0, Math.round(posMs)), durationOf(video));
  setWatch({ type: "watch", conv, by: S.me, videoId: video.id, posMs: pos, playing, ts: serverNow() });
  try {
    setWatch(await S.client.watch(conv, video.id, pos, playing));
  } catch (e) {
    toast(`Could not sync playback: ${errorText(e)}`, "error");
  }
}

function togglePlay(conv, video) {
  const { pos, playing } = positionOf(conv, video);
  if (playing) sendWatch(conv, video, pos, false);
  else sendWatch(conv, video, pos >= durationOf(video) ? 0 : pos, true);
}

function seek(conv, video, posMs) {
  const { playing, state } = positionOf(conv, video);
  sendWatch(conv, video, posMs, Boolean(state && playing));
}

function watchLabel(conv, video) {
  const { pos, playing, state } = positionOf(conv, video);
  if (!state) return "Press play to watch together";
  const who = state.by === S.me ? "You" : state.by;
  if (playing) return `Watching together · ${who} pressed play`;
  if (pos >= durationOf(video)) return `Watching together · finished`;
  return `Watching together · ${who} paused at ${clock(pos)}`;
}

/** Every 100 ms: move the progress bars, expire typing indicators. */
function tick() {
  for (const card of document.querySelectorAll(".video[data-conv]")) {
    const video = card._video;
    if (!video) continue;
    const { pos, playing, state } = positionOf(card.dataset.conv, video);
    const duration = durationOf(video);
    const bar = card.querySelector("[data-testid=watch-bar]");
    bar.dataset.posMs = String(pos);
    bar.dataset.playing = String(playing);
    bar.querySelector(".fill").style.width = `${(100 * pos) / duration}%`;
    bar.setAttribute("aria-valuenow", String(Math.round(pos / 1000)));
    card.querySelector(".time").textContent = `${clock(pos)} / ${clock(duration)}`;
    const button = card.querySelector("[data-testid=watch-play]");
    button.textContent = playing ? "❚❚" : "▶";
    button.setAttribute("aria-label", playing ? "Pause for everyone" : "Play for everyone");
    card.querySelector(".watch-status").textContent = watchLabel(card.dataset.conv, video);
    card.classList.toggle("live", playing);
    const at = card.querySelector("[data-testid=reply-moment]");
    if (at) at.textContent = state ? `↩ Reply at ${clock(pos)}` : "↩ Reply";
  }
  const now = Date.now();
  if (!S._lastTypingCheck || now - S._lastTypingCheck > 500) {
    S._lastTypingCheck = now;
    renderTyping();
  }
}

// ------------------------------------------------------------------ actions

async function addFriend(name) {
  const user = name.trim();
  if (!user) return;
  if (user === S.me) {
    toast("That is you. Open a second window to be someone else.", "error");
    return;
  }
  try {
    await S.client.friendRequest(user);
    toast(S.client.friends.has(user) ? `You and ${user} are friends now` : `Asked ${user} to be friends`, "ok");
  } catch (e) {
    toast(`Could not ask ${user}: ${errorText(e)}`, "error");
  }
  renderFriends();
}

async function sendComposer() {
  const input = $("#composer-input");
  const text = input.value.trim();
  if (!text || !S.open) return;
  const reply = S.replyTo && S.replyTo.conv === S.open.conv ? { seq: S.replyTo.seq, atMs: S.replyTo.atMs } : undefined;
  const target = S.open.conv ? { conv: S.open.conv } : { to: S.open.peer };
  input.value = "";
  try {
    const sent = await S.client.sendText(text, { ...target, reply });
    addMessage(sent);
    S.replyTo = null;
    if (!S.open.conv) S.open = { conv: sent.conv };
    S.loaded.add(sent.conv);
    renderChat();
    renderChats();
  } catch (e) {
    input.value = text;
    const hint = e?.code === "forbidden" && target.to ? " (you can write to friends only)" : "";
    toast(`Not sent: ${errorText(e)}${hint}`, "error");
  }
}

function onComposerInput() {
  const conv = S.open?.conv;
  if (!conv) return;
  const now = Date.now();
  if (now - S.lastTyping > TYPING_EVERY_MS) {
    S.lastTyping = now;
    try {
      S.client.typing(conv);
    } catch {
      /* a signal: nothing to do */
    }
  }
}

async function react(m, emoji) {
  const entry = reactionsOf(m.conv, m.seq).get(emoji);
  const on = !entry?.me;
  // On a video, pin the reaction to the moment the watch-together bar shows (if it was played).
  const where = m.video ? positionOf(m.conv, m.video) : null;
  const atMs = on && where?.state ? where.pos : undefined;
  try {
    await S.client.react(m.conv, m.seq, emoji, { on, atMs });
    applyReaction(m.conv, m.seq, S.me, emoji, on, atMs);
    renderMessages();
  } catch (e) {
    toast(`Could not react: ${errorText(e)}`, "error");
  }
}

function replyAtMoment(m) {
  const { pos, state } = positionOf(m.conv, m.video);
  const atMs = state ? pos : undefined; // a plain reply until someone plays the video
  S.replyTo = { conv: m.conv, seq: m.seq, atMs, caption: m.video.caption ?? m.video.id, sender: m.sender };
  renderReplyChip();
  $("#composer-input").focus();
}

function feedCard(item) {
  return {
    id: item.id, url: item.url, thumb: new URL(item.thumb, location.href).href, caption: item.caption,
    author: item.author, durationMs: item.duration_ms,
  };
}

async function share(item, to, convs, text) {
  if (!to.length && !convs.length) return;
  const card = feedCard(item);
  try {
    const results = await S.client.shareVideo(card, { to, convs, text: text || undefined });
    const ok = [];
    for (const r of results) {
      const label = r.targetKind === "to" ? r.target : conversation(r.target)?.name ?? r.target;
      if (!r.ok) {
        toast(`Could not share with ${label}: ${r.error}${r.error === "forbidden" ? " (friends only)" : ""}`, "error");
        continue;
      }
      ok.push(label);
      addMessage({
        type: "message", conv: r.conv, seq: r.seq, sender: S.me, ts: r.ts ?? serverNow(), kind: "video",
        text: text || undefined, video: card, cmid: "", unsent: false, hidden: false, reactions: [],
      });
    }
    if (ok.length) toast(`Shared “${item.caption}” with ${ok.join(", ")}`, "ok");
    const done = results.filter((r) => r.ok);
    if (done.length === 1) openConversation({ conv: done[0].conv });
    else renderChat();
    renderChats();
  } catch (e) {
    toast(`Could not share: ${errorText(e)}`, "error");
  }
}

// ------------------------------------------------------------------ dialogs

/** A modal that picks friends (and groups): for sharing a video, or making a group. */
function picker({ title, action, withGroups, withTitle, onDone }) {
  const friends = [...S.client.friends.keys()].sort();
  const groups = [...S.client.conversations.values()].filter((c) => c.kind === "group");
  const boxes = [];
  const option = (kind, value, label, extra) => {
    const box = h("input", { type: "checkbox", value, dataset: { kind } });
    boxes.push(box);
    return h("label", { class: "option", dataset: { testid: "share-target", user: kind === "to" ? value : undefined } },
      box, extra, h("span", { class: "grow" }, label));
  };
  const name = withTitle ? h("input", { id: "group-title", placeholder: "Group name", maxLength: 100 }) : null;
  const note = withTitle ? null : h("input", { id: "share-note", placeholder: "Add a note (optional)", maxLength: 500 });
  const dialog = h("dialog", { class: "picker", id: "picker" });
  const close = () => {
    dialog.close();
    dialog.remove();
  };
  fill(dialog,
    h("h3", {}, title),
    name,
    h("div", { class: "options" },
      friends.length ? h("div", { class: "section-label" }, "Friends") : null,
      friends.map((u) => option("to", u, u, h("span", { class: "who" }, avatar(u, "sm"), dot(u)))),
      withGroups && groups.length ? h("div", { class: "section-label" }, "Groups") : null,
      withGroups ? groups.map((g) => option("conv", g.conv, g.name, h("span", { class: "group-icon" }, "👥"))) : null,
      !friends.length ? h("p", { class: "muted" }, "No friends yet: add one by name on the left.") : null),
    note,
    h("div", { class: "actions" },
      h("button", { onclick: close }, "Cancel"),
      h("button", {
        class: "primary", dataset: { testid: "share-send" },
        onclick: () => {
          const picked = boxes.filter((b) => b.checked);
          onDone({
            to: picked.filter((b) => b.dataset.kind === "to").map((b) => b.value),
            convs: picked.filter((b) => b.dataset.kind === "conv").map((b) => b.value),
            text: note?.value.trim() ?? "",
            title: name?.value.trim() ?? "",
          });
          close();
        },
      }, action)));
  dialog.addEventListener("cancel", () => dialog.remove());
  document.body.append(dialog);
  dialog.showModal();
}

function shareDialog(item) {
  picker({
    title: `Share “${item.caption}”`, action: "Share", withGroups: true,
    onDone: ({ to, convs, text }) => share(item, to, convs, text),
  });
}

function groupDialog() {
  picker({
    title: "New group", action: "Create group", withTitle: true,
    onDone: async ({ to, title }) => {
      if (!to.length) return;
      try {
        const conv = await S.client.createGroup(to, title || `${[S.me, ...to].join(", ")}`);
        S.loaded.add(conv);
        openConversation({ conv });
      } catch (e) {
        toast(`Could not create the group: ${errorText(e)}`, "error");
      }
    },
  });
}

// ------------------------------------------------------------------ layout and rendering

function dot(user) {
  const p = presenceOf(user);
  return h("span", { class: `dot ${p?.online ? "on" : ""}`, title: p?.online ? "online" : "offline" });
}

function layout() {
  const addInput = h("input", {
    id: "add-friend-input", placeholder: "Add a friend by name", autocomplete: "off", maxLength: 32,
    "aria-label": "Friend's name",
  });
  const add = () => {
    addFriend(addInput.value);
    addInput.value = "";
  };
  addInput.addEventListener("keydown", (e) => e.key === "Enter" && add());
  const composer = h("input", {
    id: "composer-input", placeholder: "Write a message", autocomplete: "off", maxLength: 4000,
    "aria-label": "Message",
  });
  composer.addEventListener("keydown", (e) => e.key === "Enter" && sendComposer());
  composer.addEventListener("input", onComposerInput);
  fill(document.getElementById("app"),
    h("header", { class: "topbar" },
      h("div", { class: "logo" }, h("span", { class: "logo-mark" }, "◆"), "Clipwire", h("span", { class: "tag" }, "demo")),
      h("div", { class: "grow" }),
      h("span", { id: "status", class: "status ok", title: "online" }, "online"),
      h("div", { class: "me" }, avatar(S.me, "sm"), h("strong", { id: "me-name" }, S.me)),
      h("button", { class: "ghost signout", onclick: () => { S.client.close(); location.search = ""; } }, "Sign out")),
    h("div", { class: "columns", id: "columns" },
      h("aside", { class: "side" },
        h("div", { class: "panel" },
          h("div", { class: "row" }, addInput, h("button", { id: "add-friend-button", class: "primary", onclick: add }, "Add")),
          h("div", { id: "requests" }),
          h("div", { class: "section-label" }, "Friends"),
          h("div", { id: "friends" })),
        h("div", { class: "panel" },
          h("div", { class: "section-head" }, h("span", { class: "section-label" }, "Chats"),
            h("button", { class: "link", onclick: groupDialog }, "+ New group")),
          h("div", { id: "chats" })),
        h("p", { class: "fine" }, "Demo mode: this hub signs a token for any name at /demo/token. ",
          "DMs are for friends only, as in a real deployment.")),
      h("section", { class: "chat" },
        h("div", { id: "chat-header", class: "chat-header" }),
        h("div", { id: "messages", class: "messages" }),
        h("div", { id: "typing", class: "typing", dataset: { testid: "typing" } }),
        h("div", { id: "reply-chip" }),
        h("div", { class: "composer", id: "composer" }, composer,
          h("button", { id: "composer-send", class: "primary", onclick: sendComposer }, "Send"))),
      h("aside", { class: "feed" },
        h("div", { class: "section-head" }, h("span", { class: "section-label" }, "Feed"),
          h("span", { class: "muted small" }, "sample videos")),
        h("div", { id: "feed-list" }))));
}

function renderAll() {
  renderFriends();
  renderChats();
  renderChat();
  renderFeed();
}

function setStatus(text, kind) {
  const el = $("#status");
  if (!el) return;
  el.textContent = text;
  el.title = text;
  el.className = `status ${kind}`;
}

function renderFriends() {
  const requests = S.client.friendRequests;
  fill($("#requests"), requests.map((r) => r.direction === "in"
    ? h("div", { class: "request", dataset: { testid: "request-in", user: r.user } },
      avatar(r.user, "sm"), h("span", { class: "grow" }, h("span", { class: "name" }, r.user),
        h("span", { class: "sub" }, "friend request")),
      h("button", {
        class: "primary small", dataset: { testid: "accept" },
        onclick: () => S.client.acceptFriend(r.user).catch((e) => toast(errorText(e), "error")),
      }, "Accept"),
      h("button", {
        class: "ghost small", title: "Decline",
        onclick: () => S.client.removeFriend(r.user).then(renderFriends).catch((e) => toast(errorText(e), "error")),
      }, "✕"))
    : h("div", { class: "request out", dataset: { testid: "request-out", user: r.user } },
      avatar(r.user, "sm"), h("span", { class: "grow" }, h("span", { class: "name" }, r.user),
        h("span", { class: "sub" }, "request sent")),
      h("button", {
        class: "ghost small", title: "Cancel the request",
        onclick: () => S.client.removeFriend(r.user).then(renderFriends).catch((e) => toast(errorText(e), "error")),
      }, "✕"))));
  const friends = [...S.client.friends.values()].sort((a, b) => (b.online - a.online) || a.user.localeCompare(b.user));
  fill($("#friends"), friends.length
    ? friends.map((p) => h("button", {
      class: `friend ${S.open?.peer === p.user || (S.open?.conv && S.open.conv === dmWith(p.user)) ? "active" : ""}`,
      dataset: { testid: "friend", user: p.user, online: String(p.online) },
      onclick: () => {
        const conv = dmWith(p.user);
        openConversation(conv ? { conv } : { peer: p.user });
      },
    }, h("span", { class: "who" }, avatar(p.user, "sm"), dot(p.user)),
    h("span", { class: "grow" }, h("span", { class: "name" }, p.user),
      h("span", { class: "sub" }, p.online ? "online" : ago(p.lastSeen)))))
    : h("p", { class: "muted small" }, "No friends yet. Add one by name: they accept in their window."));
}

function preview(conv) {
  const list = sortedMessages(conv);
  const m = list[list.length - 1];
  if (!m) return conversation(conv)?.lastSeq ? "…" : "";
  const who = m.sender === S.me ? "You: " : conversation(conv)?.kind === "group" ? `${m.sender}: ` : "";
  if (m.unsent) return `${who}(unsent)`;
  if (m.hidden) return "Hidden message";
  if (m.video) return `${who}🎬 ${m.video.caption ?? m.video.id}`;
  return `${who}${m.text ?? ""}`;
}

function renderChats() {
  const el = $("#chats");
  if (!el) return;
  const convs = [...S.client.conversations.values()]
    .sort((a, b) => lastActivity(b.conv) - lastActivity(a.conv) || a.name.localeCompare(b.name));
  fill(el, convs.length
    ? convs.map((c) => {
      const unread = S.open?.conv === c.conv ? 0 : S.unread.get(c.conv) ?? 0;
      return h("button", {
        class: `conv ${S.open?.conv === c.conv ? "active" : ""}`,
        dataset: { testid: "conv", conv: c.conv, peer: c.peer, kind: c.kind },
        onclick: () => openConversation({ conv: c.conv }),
      }, c.kind === "dm" ? h("span", { class: "who" }, avatar(c.peer, "sm"), dot(c.peer)) : h("span", { class: "avatar sm group" }, "👥"),
      h("span", { class: "grow" }, h("span", { class: "name" }, c.name), h("span", { class: "sub" }, preview(c.conv) || (c.kind === "group" ? `${c.members.length} members` : "no messages yet"))),
      unread ? h("span", { class: "badge", dataset: { testid: "unread" } }, String(unread)) : null);
    })
    : h("p", { class: "muted small" }, "Chats appear here: message a friend, or share a video."));
  renderFriends();
}

function renderChat() {
  renderHeader();
  renderMessages();
  renderTyping();
  renderReplyChip();
  const composer = $("#composer");
  const input = $("#composer-input");
  $("#columns").classList.toggle("chat-open", Boolean(S.open));
  composer.classList.toggle("hidden", !S.open);
  if (S.open) {
    const c = S.open.conv ? conversation(S.open.conv) : null;
    input.placeholder = `Message ${c ? c.name : S.open.peer}`;
  }
}

function renderHeader() {
  const el = $("#chat-header");
  if (!el) return;
  if (!S.open) {
    fill(el);
    return;
  }
  const backButton = h("button", {
    class: "back", dataset: { testid: "back" }, "aria-label": "Back to the chats", title: "Back to the chats", onclick: back,
  }, "‹");
  const c = S.open.conv ? conversation(S.open.conv) : null;
  if (!c || c.kind === "dm") {
    const peer = c ? c.peer : S.open.peer;
    const p = presenceOf(peer);
    fill(el, backButton, h("span", { class: "who" }, avatar(peer), dot(peer)),
      h("div", { class: "grow" }, h("div", { class: "title" }, peer),
        h("div", { class: "sub" }, p?.online ? "online" : p ? ago(p.lastSeen) : "not a friend yet")));
    return;
  }
  fill(el, backButton, h("span", { class: "avatar group" }, "👥"),
    h("div", { class: "grow" }, h("div", { class: "title" }, c.name),
      h("div", { class: "members" }, c.members.map((u) => h("span", { class: "member" }, dot(u), u === S.me ? "you" : u)))));
}

function emptyState() {
  return h("div", { class: "empty" },
    h("div", { class: "empty-mark" }, "◆"),
    h("h2", {}, `Hi ${S.me}!`),
    h("p", {}, "Add a friend by name on the left. Once they accept, message them, start a group, ",
      "or share a video from the feed on the right and watch it together."));
}

function renderMessages() {
  const el = $("#messages");
  if (!el) return;
  if (!S.open) {
    fill(el, emptyState());
    return;
  }
  const atBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
  const conv = S.open.conv;
  if (!conv) {
    fill(el, h("div", { class: "empty small" }, h("p", {}, `This is the start of your chat with ${S.open.peer}.`)));
    return;
  }
  const c = conversation(conv);
  const list = sortedMessages(conv);
  // Others' read markers: each one is shown under the last of my messages it covers.
  const seenUnder = new Map();
  for (const [user, seq] of S.readBy.get(conv) ?? []) {
    const mine = list.filter((m) => m.sender === S.me && m.seq <= seq);
    if (!mine.length) continue;
    const at = mine[mine.length - 1].seq;
    if (!seenUnder.has(at)) seenUnder.set(at, []);
    seenUnder.get(at).push(user);
  }
  const replies = new Map(); // seq -> moments replied to
  for (const m of list) {
    if (m.reply?.atMs !== undefined) {
      if (!replies.has(m.reply.seq)) replies.set(m.reply.seq, []);
      replies.get(m.reply.seq).push(m.reply.atMs);
    }
  }
  fill(el, list.length ? null : h("div", { class: "empty small" }, h("p", {}, "No messages yet. Say hi!")),
    list.map((m, i) => messageView(m, c, list[i - 1], seenUnder.get(m.seq), replies.get(m.seq) ?? [])));
  if (atBottom || el._conv !== conv) el.scrollTop = el.scrollHeight;
  el._conv = conv;
  tick();
}

function messageView(m, c, before, seenBy, replyMoments) {
  const mine = m.sender === S.me;
  const group = c?.kind === "group";
  const first = !before || before.sender !== m.sender || m.ts - before.ts > 5 * 60_000;
  const body = [];
  if (m.unsent) body.push(h("div", { class: "bubble ghosted" }, "This message was unsent"));
  else if (m.hidden) body.push(h("div", { class: "bubble ghosted" }, "Hidden message"));
  else {
    if (m.reply) body.push(replyQuote(m));
    if (m.text) body.push(h("div", { class: "bubble" }, m.text));
    if (m.video) body.push(videoView(m, replyMoments));
    if (!m.video && !m.text) body.push(h("div", { class: "bubble ghosted" }, "(empty)"));
  }
  const chips = reactionChips(m);
  return h("div", {
    class: `msg ${mine ? "mine" : "theirs"} ${first ? "first" : ""}`,
    dataset: { testid: "message", seq: String(m.seq), sender: m.sender, kind: m.kind },
    id: `msg-${m.seq}`,
  },
  !mine ? h("div", { class: "gutter" }, first ? avatar(m.sender, "sm") : null) : null,
  h("div", { class: "stack" },
    first ? h("div", { class: "meta" }, group && !mine ? h("strong", {}, m.sender) : null, h("span", {}, timeOfDay(m.ts))) : null,
    body,
    chips,
    seenBy ? h("div", { class: "receipt", dataset: { testid: "receipt" } },
      "✓✓ ", group ? `Seen by ${seenBy.join(", ")}` : "Seen") : null));
}

function replyQuote(m) {
  const target = S.msgs.get(m.conv)?.get(m.reply.seq);
  const what = target?.video ? `“${target.video.caption ?? target.video.id}”` : target?.text ? `“${target.text.slice(0, 40)}”` : `message ${m.reply.seq}`;
  const whose = target ? (target.sender === S.me ? "your" : `${target.sender}'s`) : "";
  const at = m.reply.atMs !== undefined ? ` at ${clock(m.reply.atMs)}` : "";
  return h("button", {
    class: "quote", dataset: { testid: "reply-quote", seq: String(m.reply.seq), atMs: String(m.reply.atMs ?? "") },
    title: at ? "Jump to this moment (for everyone watching)" : "Show the message",
    onclick: () => {
      document.getElementById(`msg-${m.reply.seq}`)?.scrollIntoView({ behavior: "smooth", block: "center" });
      if (target?.video && m.reply.atMs !== undefined) seek(m.conv, target.video, m.reply.atMs);
    },
  }, h("span", { class: "quote-mark" }, "↩"), `Reply to ${whose} ${what}${at}`);
}

function reactionChips(m) {
  const map = S.reactions.get(`${m.conv}/${m.seq}`);
  if (!map || !map.size) return null;
  return h("div", { class: "chips" }, [...map.entries()].map(([emoji, r]) => {
    const moments = [...r.moments].sort((a, b) => a - b);
    return h("button", {
      class: `reaction ${r.me ? "me" : ""}`, dataset: { testid: "reaction", emoji },
      title: r.me ? "Take yours back" : "React too", onclick: () => react(m, emoji),
    }, `${emoji} ${r.count}`, moments.length ? h("span", { class: "moment" }, ` · ${moments.map(clock).join(", ")}`) : null);
  }));
}

function videoView(m, replyMoments) {
  const v = m.video;
  const duration = durationOf(v);
  const sameOrigin = v.thumb && v.thumb.startsWith(`${location.origin}/`);
  const markers = [];
  for (const [emoji, r] of S.reactions.get(`${m.conv}/${m.seq}`) ?? []) {
    for (const at of r.moments) markers.push([at, emoji]);
  }
  for (const at of replyMoments) markers.push([at, "↩"]);
  const bar = h("div", {
    class: "bar", role: "slider", tabindex: "0", "aria-label": "Position (seek for everyone)",
    "aria-valuemin": "0", "aria-valuemax": String(Math.round(duration / 1000)),
    dataset: { testid: "watch-bar", posMs: "0", playing: "false" },
    onclick: (e) => {
      const rect = e.currentTarget.getBoundingClientRect();
      seek(m.conv, v, ((e.clientX - rect.left) / rect.width) * duration);
    },
    onkeydown: (e) => {
      const step = { ArrowLeft: -5000, ArrowRight: 5000 }[e.key];
      if (step) seek(m.conv, v, positionOf(m.conv, v).pos + step);
      else if (e.key === " " || e.key === "Enter") togglePlay(m.conv, v);
      else return;
      e.preventDefault();
    },
  }, h("div", { class: "fill" }),
  markers.map(([at, label]) => h("span", {
    class: "marker", style: { left: `${(100 * Math.min(at, duration)) / duration}%` }, title: `${label} at ${clock(at)}`,
  }, label)));
  const card = h("div", { class: "video", dataset: { testid: "video-card", video: v.id, conv: m.conv, seq: String(m.seq) } },
    h("div", { class: "video-top" },
      sameOrigin ? h("img", { class: "thumb", src: v.thumb, alt: "", width: 160, height: 90 })
        : h("div", { class: "thumb fallback" }, "▶"),
      h("div", { class: "video-info" },
        h("div", { class: "caption" }, v.caption ?? v.id),
        h("div", { class: "sub" }, v.author ? `@${v.author} · ` : "", clock(duration)),
        h("a", { class: "sub link", href: v.url, target: "_blank", rel: "noreferrer" }, new URL(v.url).host))),
    h("div", { class: "player" },
      h("button", { class: "play", dataset: { testid: "watch-play" }, onclick: () => togglePlay(m.conv, v) }, "▶"),
      bar,
      h("span", { class: "time" }, `0:00 / ${clock(duration)}`)),
    h("div", { class: "watch-status" }),
    h("div", { class: "video-actions" },
      EMOJIS.map((emoji) => h("button", {
        class: "emoji", dataset: { testid: "react", emoji }, title: `React ${emoji} (at the bar's moment, once played)`,
        onclick: () => react(m, emoji),
      }, emoji)),
      h("button", { class: "link", dataset: { testid: "reply-moment" }, onclick: () => replyAtMoment(m) }, "↩ Reply")));
  card._video = v;
  return card;
}

function renderTyping() {
  const el = $("#typing");
  if (!el) return;
  const conv = S.open?.conv;
  const now = Date.now();
  const who = [];
  for (const [user, until] of (conv && S.typing.get(conv)) || []) if (until > now) who.push(user);
  const text = who.length ? `${who.join(", ")} ${who.length > 1 ? "are" : "is"} typing` : "";
  if (el.dataset.text === text) return;
  el.dataset.text = text;
  fill(el, text ? [text, h("span", { class: "dots" }, h("i"), h("i"), h("i"))] : null);
}

function renderReplyChip() {
  const el = $("#reply-chip");
  if (!el) return;
  const r = S.replyTo;
  if (!r || r.conv !== S.open?.conv) {
    fill(el);
    return;
  }
  const whose = r.sender === S.me ? "your" : `${r.sender}'s`;
  fill(el, h("div", { class: "reply-chip", dataset: { testid: "reply-chip" } },
    h("span", { class: "quote-mark" }, "↩"),
    h("span", { class: "grow" }, `Replying to ${whose} “${r.caption}”${r.atMs === undefined ? "" : ` at ${clock(r.atMs)}`}`),
    h("button", { class: "ghost small", title: "Cancel the reply", onclick: () => { S.replyTo = null; renderReplyChip(); } }, "✕")));
}

function renderFeed() {
  fill($("#feed-list"), S.feed.map((item) => h("div", { class: "feed-item", dataset: { testid: "feed-item", video: item.id } },
    h("img", { class: "thumb", src: item.thumb, alt: "", width: 320, height: 180 }),
    h("div", { class: "feed-info" },
      h("div", { class: "caption" }, item.caption),
      h("div", { class: "sub" }, `@${item.author} · ${clock(item.duration_ms)}`)),
    h("div", { class: "feed-actions" },
      h("button", { class: "primary small", dataset: { testid: "share" }, onclick: () => shareDialog(item) }, "Share…"),
      h("button", {
        class: "ghost small", dataset: { testid: "send-here" }, title: "Send to the open chat",
        onclick: () => {
          if (!S.open) toast("Open a chat first, or use Share…", "error");
          else if (S.open.conv) share(item, [], [S.open.conv], "");
          else share(item, [S.open.peer], [], "");
        },
      }, "Send here")))));
}

// ------------------------------------------------------------------ start

async function main() {
  try {
    S.feed = await (await fetch("/demo/feed.json")).json();
  } catch {
    S.feed = [];
  }
  const user = new URLSearchParams(location.search).get("user");
  if (user) await signIn(user);
  else showSignIn();
}

main();
