/**
 * The status page's one inline script and stylesheet (both carry the response's CSP nonce). The
 * script polls `/v1/targets` with the session cookie, re-renders changed or live cards from the
 * server's HTML (no full reload), keeps countdowns ticking, shows a stale-data banner when the
 * worker cannot be reached, and sends operator actions after a confirmation dialog.
 */

/** How often the page polls `/v1/targets`. */
export const REFRESH_SECONDS = 3;

/** The inline script. */
export function refreshScript(): string {
  return `(() => {
  const REFRESH_MS = ${REFRESH_SECONDS * 1000};
  const results = new Map();
  let lastOk = Date.now();
  let pendingForm = null;
  // Looked up on use: this script runs inside <main>, before the footer is parsed.
  const byId = (id) => document.getElementById(id);
  const say = (text) => { const el = byId("refresh-status"); if (el) el.textContent = text; };
  const hhmmss = (t) => new Date(t).toISOString().slice(11, 19);
  const span = (ms) => {
    const s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + " s";
    if (s < 3600) return s % 60 === 0 ? s / 60 + " min" : Math.floor(s / 60) + " min " + (s % 60) + " s";
    const m = Math.floor(s / 60);
    return m % 60 === 0 ? m / 60 + " h" : Math.floor(m / 60) + " h " + (m % 60) + " min";
  };
  const cardOf = (name) => document.querySelector('[data-target="' + CSS.escape(name) + '"]');
  function banner(text) {
    const el = byId("stale");
    if (!el) return;
    if (text === null) { el.hidden = true; document.body.classList.remove("is-stale"); return; }
    el.querySelector("p").textContent = text;
    el.hidden = false;
    document.body.classList.add("is-stale");
  }
  // Countdowns and running durations tick every second between polls.
  function tickTimes() {
    const now = Date.now();
    for (const el of document.querySelectorAll("time[data-until]")) el.textContent = span(Date.parse(el.dataset.until) - now);
    for (const el of document.querySelectorAll("time[data-since]")) el.textContent = span(now - Date.parse(el.dataset.since));
  }
  function showResult(name, text, kind) {
    results.set(name, { text, kind });
    applyResult(name);
  }
  function applyResult(name) {
    const r = results.get(name);
    const el = cardOf(name)?.querySelector('[data-field="result"]');
    if (!r || !el) return;
    el.textContent = (kind[r.kind] || "") + r.text;
    el.className = "result result-" + r.kind;
  }
  const kind = { ok: "✓ Done: ", refused: "✗ Not done: ", busy: "… " };
  const sig = (t) => {
    const a = t.action;
    return [
      t.phase, t.activeSide, t.paused, t.flapping, t.blocked || "", t.cooldownUntil || "", t.approvalDeadline || "", t.configured,
      a ? a.id + ":" + a.status + ":" + a.steps.map((s) => s.status).join(",") + ":" + (a.approvals || []).length : "",
      t.sides.primary.health, t.sides.secondary.health,
      t.sides.primary.firing.length, t.sides.secondary.firing.length,
      t.readiness ? t.readiness.state + ":" + (t.readiness.failing || []).join(",") + ":" + (t.readiness.drift ? t.readiness.drift.ok : "") : "",
      t.agents ? t.agents.primary.name + ":" + t.agents.primary.silent : "",
      t.agents ? t.agents.secondary.name + ":" + t.agents.secondary.silent : "",
      (t.owed || []).length,
    ].join("|");
  };
  // The same fields as agentsSignature() in agents-section.tsx.
  const agentsSig = (agents) => agents.map((a) => [a.name, a.silent, a.mode || "", a.notReady || "", a.version || "", a.leader || "", a.pods.length].join(":")).join("|");
  async function refreshAgents() {
    const section = byId("agents");
    if (!section) return;
    const res = await fetch("/v1/agents", { credentials: "same-origin", headers: { accept: "application/json" } });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const body = await res.json();
    if (section.dataset.agentsSig === agentsSig(body.agents)) return;
    const page = await fetch("/?fragment=agents", { credentials: "same-origin", headers: { accept: "text/html" } });
    if (!page.ok) throw new Error("HTTP " + page.status);
    const fresh = new DOMParser().parseFromString(await page.text(), "text/html").getElementById("agents");
    if (fresh) section.replaceWith(document.importNode(fresh, true));
  }
  // Changed cards are re-rendered from the server's HTML (same session cookie) and swapped in.
  async function rerender(names) {
    // Only the cards: a whole page would carry another response's nonce'd style and script.
    const res = await fetch("/?fragment=cards", { credentials: "same-origin", headers: { accept: "text/html" } });
    if (!res.ok) throw new Error("HTTP " + res.status);
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    const dialogOpen = byId("confirm")?.open;
    for (const fresh of doc.querySelectorAll("[data-target]")) {
      const name = fresh.dataset.target;
      if (!names.has(name)) continue;
      // Never swap the card an operator is confirming an action on.
      if (dialogOpen && pendingForm && pendingForm.closest("[data-target]")?.dataset.target === name) continue;
      const old = cardOf(name);
      if (old) old.replaceWith(document.importNode(fresh, true));
      applyResult(name);
    }
    tickTimes();
  }
  async function tick() {
    try {
      const res = await fetch("/v1/targets", { credentials: "same-origin", headers: { accept: "application/json" } });
      if (res.status === 401 || res.status === 403) {
        banner("Live updates stopped: the session is no longer valid (HTTP " + res.status + "). Reload the page to sign in again; what you see may be out of date.");
        say("Live updates stopped.");
        return;
      }
      if (!res.ok) throw new Error("HTTP " + res.status);
      const body = await res.json();
      const changed = new Set();
      for (const t of body.targets) {
        const card = cardOf(t.name);
        if (card && (card.dataset.sig !== sig(t) || card.dataset.live)) changed.add(t.name);
      }
      if (changed.size > 0) await rerender(changed);
      await refreshAgents();
      lastOk = Date.now();
      banner(null);
      say("Updated " + hhmmss(lastOk) + " UTC; live updates every ${REFRESH_SECONDS} s.");
    } catch (err) {
      banner("Stale data: the worker could not be reached since " + hhmmss(lastOk) + " UTC (" + (err && err.message ? err.message : "network error") + "). What you see may be out of date; retrying every ${REFRESH_SECONDS} s.");
      say("Live update failed; retrying.");
    }
  }
  // Actions: every command form asks first (a modal dialog), then posts with its CSRF token.
  document.addEventListener("submit", (ev) => {
    const form = ev.target;
    if (!(form instanceof HTMLFormElement) || !form.classList.contains("command")) return;
    const dialog = byId("confirm");
    if (!dialog || typeof dialog.showModal !== "function") return; // no dialog: the server asks instead
    ev.preventDefault();
    pendingForm = form;
    byId("confirm-question").textContent = form.querySelector("button").dataset.question;
    byId("confirm-reason").value = "";
    dialog.returnValue = "";
    dialog.showModal();
  });
  // "close" does not bubble; caught while capturing, because the dialog is parsed after this script.
  document.addEventListener("close", (ev) => {
    const dialog = ev.target;
    if (!(dialog instanceof HTMLDialogElement) || dialog.id !== "confirm") return;
    const form = pendingForm;
    pendingForm = null;
    if (form && dialog.returnValue === "yes") void send(form, byId("confirm-reason").value);
  }, true);
  async function send(form, reason) {
    const name = form.closest("[data-target]").dataset.target;
    const data = new URLSearchParams(new FormData(form));
    data.set("confirmed", "yes");
    if (reason) data.set("reason", reason);
    showResult(name, "sending " + data.get("command") + "…", "busy");
    try {
      const res = await fetch(form.action, {
        method: "POST",
        body: data,
        credentials: "same-origin",
        headers: { accept: "application/json" },
      });
      const body = await res.json().catch(() => ({ ok: false, message: "HTTP " + res.status }));
      showResult(name, body.message || body.detail || "HTTP " + res.status, body.ok ? "ok" : "refused");
    } catch (err) {
      showResult(name, "the worker could not be reached; nothing is known to have changed. Try again.", "refused");
    }
    try { await rerender(new Set([name])); } catch {}
  }
  setInterval(tickTimes, 1000);
  setInterval(tick, REFRESH_MS);
})();`;
}

// Colours meet WCAG AA contrast (≥ 4.5:1) for text on their backgrounds; status is never colour only.
export const CSS = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.45; }
body { margin: 0; background: #f4f5f7; color: #1b1e23; }
header, footer { background: #1b1e23; color: #ffffff; padding: 0.6rem 1rem; }
header h1 { margin: 0; font-size: 1.25rem; }
footer p { margin: 0; font-size: 0.9rem; }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
a { color: #0b3d91; }
.lede { margin-top: 0; }
.stale { position: sticky; top: 0; z-index: 2; background: #8a1010; color: #ffffff; padding: 0.6rem 1rem; font-weight: 600; }
.stale p { margin: 0; }
.cards { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 30rem), 1fr)); }
.card { background: #ffffff; border: 1px solid #c9ced6; border-radius: 0.5rem; padding: 0.75rem 1rem; overflow-wrap: anywhere; min-width: 0; }
.card h2 { margin: 0 0 0.5rem; font-size: 1.15rem; }
.card h3 { margin: 0.9rem 0 0.3rem; font-size: 1rem; }
.sentence { margin: 0 0 0.6rem; padding: 0.45rem 0.6rem; border-left: 0.35rem solid #4a505a; background: #eceef1; font-weight: 600; }
.state-steady { border-color: #13551f; background: #e4f4e6; }
.state-pending, .state-awaiting-approval, .state-cooldown { border-color: #6b4500; background: #fff3d6; }
.state-blocked, .state-failed { border-color: #8a1010; background: #fde5e5; }
.state-executing { border-color: #0b3d91; background: #e2ecfb; }
.state-paused, .state-unconfigured { border-color: #3d434c; background: #eceef1; }
.sentence time { font-variant-numeric: tabular-nums; }
.summary { display: flex; flex-wrap: wrap; gap: 0.5rem 1.5rem; margin: 0; }
.summary dt { font-size: 0.8rem; color: #4a505a; }
.summary dd { margin: 0; }
.badge { display: inline-block; padding: 0.05rem 0.45rem; border-radius: 0.3rem; border: 1px solid currentColor; font-weight: 600; }
.phase-steady { color: #13551f; background: #e4f4e6; }
.phase-pending, .phase-awaiting_approval { color: #6b4500; background: #fff3d6; }
.phase-executing { color: #0b3d91; background: #e2ecfb; }
.phase-failed { color: #8a1010; background: #fde5e5; }
.sides { list-style: none; padding: 0; margin: 0; }
.side { padding: 0.3rem 0; border-top: 1px solid #e3e6ea; }
.side-name { font-weight: 600; }
.health-up .badge { color: #13551f; background: #e4f4e6; }
.health-down .badge { color: #8a1010; background: #fde5e5; }
.health-unknown .badge { color: #3d434c; background: #eceef1; }
.firing, .steps, .drills { margin: 0.25rem 0; padding-left: 1.25rem; }
.step-failed { color: #8a1010; }
.readiness { margin: 0.25rem 0; }
.readiness-not-ready { color: #8a1010; font-weight: 600; }
.readiness-unknown { color: #4a505a; }
.step-waiting { color: #6b4500; font-weight: 600; }
.group-name { font-size: 0.85rem; color: #4a505a; }
.parallel { display: flex; flex-wrap: wrap; gap: 0.4rem; list-style: none; padding: 0; margin: 0.2rem 0; }
.parallel > .step { flex: 1 1 10rem; border: 1px solid #c9ced6; border-left: 0.3rem solid #2f6fd0; border-radius: 0.3rem; padding: 0.3rem 0.45rem; }
.step .approval { margin: 0.2rem 0; font-weight: 400; color: #1b1e23; }
.step form.command { margin: 0.2rem 0; }
.muted { color: #4a505a; }
.agents { background: #ffffff; border: 1px solid #c9ced6; border-radius: 0.5rem; padding: 0.75rem 1rem; margin-bottom: 1rem; overflow-wrap: anywhere; }
.agents h2 { margin: 0 0 0.5rem; font-size: 1.15rem; }
.agent-list { list-style: none; padding: 0; margin: 0; }
.agent { padding: 0.4rem 0; border-top: 1px solid #e3e6ea; }
.agent p { margin: 0.15rem 0; }
.agent-heard .badge { color: #13551f; background: #e4f4e6; }
.agent-silent .badge { color: #8a1010; background: #fde5e5; }
.agent-unheard .badge { color: #3d434c; background: #eceef1; }
.side-agent { margin: 0.15rem 0; font-size: 0.9rem; }
p.agent-silent { color: #8a1010; font-weight: 600; }
code { font-size: 0.9em; }
.actions .buttons { display: flex; flex-wrap: wrap; gap: 0.5rem; }
.actions form { margin: 0; }
button { font: inherit; min-height: 2.75rem; padding: 0.4rem 0.9rem; border-radius: 0.35rem; border: 1px solid #0b3d91; background: #ffffff; color: #0b3d91; font-weight: 600; cursor: pointer; }
button:hover { background: #e2ecfb; }
button:focus-visible, a:focus-visible, input:focus-visible { outline: 3px solid #b35c00; outline-offset: 2px; }
button.primary { background: #0b3d91; color: #ffffff; }
.breakglass { list-style: none; padding: 0.5rem; margin: 0.5rem 0 0; border: 2px dashed #8a1010; border-radius: 0.35rem; }
.breakglass p { margin: 0 0 0.3rem; }
.result { margin: 0.4rem 0 0; font-weight: 600; }
.result:empty { display: none; }
.result-ok { color: #13551f; }
.result-refused { color: #8a1010; }
dialog { max-width: min(32rem, 92vw); border: 2px solid #1b1e23; border-radius: 0.5rem; padding: 1rem; }
dialog::backdrop { background: rgba(27, 30, 35, 0.55); }
dialog label { display: block; margin-top: 0.5rem; font-size: 0.9rem; }
dialog input { font: inherit; width: 100%; box-sizing: border-box; padding: 0.35rem; margin-top: 0.2rem; }
dialog .buttons { display: flex; gap: 0.5rem; justify-content: flex-end; margin-top: 0.8rem; flex-wrap: wrap; }
.timeline .axis { display: flex; justify-content: space-between; font-size: 0.8rem; color: #4a505a; border-bottom: 1px solid #c9ced6; }
.tl { list-style: none; margin: 0; padding: 0; }
.tl-row { padding: 0.2rem 0; border-bottom: 1px solid #eceef1; }
.tl-text { display: block; font-size: 0.9rem; }
.tl-at { font-variant-numeric: tabular-nums; color: #4a505a; }
.tl-bar { display: block; width: 100%; height: 0.75rem; }
.tl-track { fill: #e3e6ea; }
.tl-mark { fill: #3d434c; }
.tl-span { fill: #0b3d91; }
.tl-hold .tl-span, .tl-approval .tl-span { fill: #b35c00; }
.tl-step .tl-span { fill: #2f6fd0; }
.tl-running .tl-span { fill: #6b4500; }
.tl-signal .tl-mark { fill: #8a1010; }
.history table { width: 100%; border-collapse: collapse; font-size: 0.9rem; }
.history caption { text-align: left; font-size: 0.85rem; }
.history th, .history td { text-align: left; padding: 0.25rem 0.4rem; border-bottom: 1px solid #e3e6ea; vertical-align: top; overflow-wrap: normal; }
.history th { white-space: nowrap; }
.rto { margin: 0.3rem 0; }
.rto-chart { width: 8rem; height: 2.5rem; display: block; }
.rto-chart rect { fill: #0b3d91; }
.raw { margin: 0.8rem 0 0; }
.audit ol { padding-left: 0; list-style: none; }
.audit li { border-bottom: 1px solid #e3e6ea; padding: 0.4rem 0; }
.audit pre { white-space: pre-wrap; overflow-wrap: anywhere; background: #eceef1; padding: 0.4rem; margin: 0.3rem 0 0; font-size: 0.85rem; }
.pager { display: flex; gap: 1rem; flex-wrap: wrap; }
@media (max-width: 40rem) {
  main { padding: 0.5rem; }
  .card { padding: 0.6rem; }
  .history thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  .history tr { display: block; border-bottom: 2px solid #c9ced6; padding: 0.3rem 0; }
  .history td { display: block; border: 0; padding: 0.1rem 0; }
  .history td::before { content: attr(data-label) ": "; font-weight: 600; }
}
`;
