// The labelling page. Model text is only ever put in with textContent (never innerHTML), so a response
// holding HTML shows as text. Each label is sent until the server acknowledges it (it is committed to
// disk before the answer); while a label is in flight, keys and buttons do nothing.
"use strict";

const KEYS = { "1": "left", "ArrowLeft": "left", "2": "right", "ArrowRight": "right",
               "3": "tie", "t": "tie", "4": "both_bad", "b": "both_bad", "u": "undo", "Backspace": "undo" };
let current = null;   // the state last received from the server
let busy = false;     // a request is in flight

const $ = (id) => document.getElementById(id);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function nonce() {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

// Send a request until the server answers; 2xx returns the body, 4xx stops (the answer says why).
async function call(method, path, body) {
  for (let attempt = 0; ; attempt++) {
    try {
      const response = await fetch(path, {
        method, credentials: "same-origin", cache: "no-store",
        headers: body ? { "Content-Type": "application/json" } : {},
        body: body ? JSON.stringify(body) : undefined,
      });
      if (response.ok) { $("status").textContent = ""; return await response.json(); }
      if (response.status < 500) {
        const answer = await response.json().catch(() => ({}));
        $("status").textContent = `${response.status}: ${answer.error || response.statusText}`;
        return null;
      }
    } catch (err) { /* network error: retry */ }
    $("status").textContent = "not saved yet, retrying…";
    await sleep(Math.min(250 * 2 ** attempt, 4000));
  }
}

function show(state) {
  current = state;
  const p = state.progress;
  $("who").textContent = `rater: ${state.rater}`;
  $("progress-phase").textContent = `phase ${p.phases.join(", ") || "–"}: ${p.labels} of ${p.labels_needed} labels, ${p.pairs_done} of ${p.pairs} pairs done`;
  $("progress-rater").textContent = `you: ${p.mine} labelled, ${p.mine_left} left`;
  $("task").hidden = !state.pair;
  $("done").hidden = !!state.pair;
  document.body.dataset.pair = state.pair ? state.pair.id : "";
  if (state.pair) {
    $("prompt").textContent = state.pair.prompt;
    $("left").textContent = state.pair.left;
    $("right").textContent = state.pair.right;
  }
}

async function act(action) {
  if (busy || !current) return;
  if (action !== "undo" && !current.pair) return;
  if (action === "undo" && !current.undo) { $("status").textContent = "nothing to undo"; return; }
  busy = true;
  document.body.dataset.busy = "1";
  $("status").textContent = "saving…";
  const state = action === "undo"
    ? await call("POST", "/api/undo", { nonce: current.undo })
    : await call("POST", "/api/label", { pair_id: current.pair.id, choice: action, nonce: nonce() });
  const fresh = state || await call("GET", "/api/state");  // a refused request: show where things stand
  if (fresh) show(fresh);
  busy = false;
  document.body.dataset.busy = "";
}

document.addEventListener("keydown", (event) => {
  if (event.ctrlKey || event.metaKey || event.altKey) return;
  const action = KEYS[event.key];
  if (action) { event.preventDefault(); act(action); }
});

document.addEventListener("DOMContentLoaded", async () => {
  for (const button of document.querySelectorAll("button[data-choice]")) {
    button.addEventListener("click", () => act(button.dataset.choice));
  }
  $("btn-undo").addEventListener("click", () => act("undo"));
  $("btn-undo-done").addEventListener("click", () => act("undo"));
  const state = await call("GET", "/api/state");
  if (state) show(state);
  setInterval(async () => {  // nothing to do: look for new pairs (a new phase, a resampled round)
    if (!busy && current && !current.pair) { const s = await call("GET", "/api/state"); if (s && !busy) show(s); }
  }, 5000);
});
