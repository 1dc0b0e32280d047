// Small DOM and formatting helpers for the demo page. Text always goes in as text
// (textContent), never as HTML, so names and messages cannot inject markup.

/** Make an element: h("button", {class: "x", onclick: fn, dataset: {seq: 3}, style: {left: "5%"}}, "text", child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "dataset") {
      for (const [name, v] of Object.entries(value)) if (v !== undefined && v !== null) el.dataset[name] = String(v);
    }
    else if (key === "style") { // an object: set through CSSOM, which the page's CSP allows
      for (const [name, v] of Object.entries(value)) el.style.setProperty(name, String(v));
    }
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key in el && key !== "list") el[key] = value;
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replace the children of `el`. */
export function fill(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** m:ss for a position or length in ms. */
export function clock(ms) {
  const s = Math.max(0, Math.floor(ms / 1000));
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

/** 14:05 for a timestamp in ms. */
export function timeOfDay(ms) {
  return new Date(ms).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

/** "just now", "5 min ago", "3 h ago", or a date. */
export function ago(ms) {
  if (!ms) return "offline";
  const s = (Date.now() - ms) / 1000;
  if (s < 60) return "seen just now";
  if (s < 3600) return `seen ${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `seen ${Math.floor(s / 3600)} h ago`;
  return `seen ${new Date(ms).toLocaleDateString()}`;
}

const HUES = [12, 38, 150, 190, 212, 262, 292, 330];

/** A round avatar with the user's initial, in a colour that is always the same for that name. */
export function avatar(user, size = "") {
  let hash = 0;
  for (const ch of user) hash = (hash * 31 + ch.codePointAt(0)) >>> 0;
  const hue = HUES[hash % HUES.length];
  return h("span", { class: `avatar ${size}`, style: { "--hue": hue }, "aria-hidden": "true" },
    [...user][0]?.toUpperCase() ?? "?");
}

/** A short-lived note at the bottom of the page. */
export function toast(text, kind = "info") {
  let box = document.getElementById("toasts");
  if (!box) {
    box = h("div", { id: "toasts", role: "status", "aria-live": "polite" });
    document.body.append(box);
  }
  const note = h("div", { class: `toast ${kind}` }, text);
  box.append(note);
  while (box.children.length > 3) box.firstElementChild.remove();
  setTimeout(() => note.classList.add("gone"), 3500);
  setTimeout(() => note.remove(), 4000);
}
