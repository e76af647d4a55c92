/**
 * The status page `GET /` (design §5b): server-rendered HTML (hono/jsx, no build step), one card per
 * target with its active side, phase, each side's health and firing signals, the current or last
 * action as a step timeline with durations, the last drill and the latest audit events. A small
 * inline script polls `/v1/targets` with the session cookie and updates the cards in place.
 *
 * Auth (design §3a, §5b): a viewer identity as bearer token or Cloudflare Access, or a session:
 * the sign-in form POSTs a token to `/signin` (no token in any URL), or `/?token=<token>` once;
 * both set the identity's session cookie (worker/session.ts) and redirect (303) to `/`. Anything
 * else gets a 401 page that shows no target data.
 */
import { Hono } from "hono";
import type { Child } from "hono/jsx";
import { loadConfig } from "./config.ts";
import type { DrillSummary } from "./drill-summary.ts";
import type { Env } from "./env.ts";
import { byToken, hasRole, identify } from "./identity.ts";
import { issueSession, sessionCookie } from "./session.ts";
import type { AuditEvent, SignalView, TargetView } from "./target-view.ts";

/** How often the page polls `/v1/targets`. */
export const REFRESH_SECONDS = 3;
/** Newest audit events shown per card. */
const EVENTS_SHOWN = 8;

export const statusPage = new Hono<{ Bindings: Env }>();

type Card = { name: string; view: TargetView } | { name: string; error: string };

function securityHeaders(nonce: string): Record<string, string> {
  return {
    // Nothing loads from elsewhere; the one inline script and style carry the per-response nonce.
    "content-security-policy": `default-src 'none'; script-src 'nonce-${nonce}'; style-src 'nonce-${nonce}'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'`,
    "cache-control": "no-store",
    // The first request carries ?token=; never leak it (or target names) through Referer.
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
  };
}

function newNonce(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return btoa(String.fromCharCode(...bytes));
}

/** Starts a session for the identity whose token this is (303 to `/`), or answers the sign-in page again. */
async function startSession(env: Env, token: string, headers: Record<string, string>): Promise<Response | null> {
  const who = await byToken(env, token);
  if (!who) return null;
  return new Response(null, {
    status: 303,
    headers: {
      ...headers,
      location: "/",
      "set-cookie": sessionCookie(await issueSession(who.token, Date.now() / 1000, who.name)),
    },
  });
}

/** `POST /signin` (form field `token`): the sign-in that keeps the token out of URLs and history. */
statusPage.post("/signin", async (c) => {
  const nonce = newNonce();
  const headers = securityHeaders(nonce);
  const form = new URLSearchParams(await c.req.text());
  const token = form.get("token") ?? "";
  const started = token === "" ? null : await startSession(c.env, token, headers);
  return (
    started ??
    c.html(<SignIn nonce={nonce} wrongToken={true} />, 401, {
      ...headers,
      "www-authenticate": 'Bearer realm="turnout"',
    })
  );
});

statusPage.get("/", async (c) => {
  const nonce = newNonce();
  const headers = securityHeaders(nonce);
  const token = c.req.query("token");
  const signIn = (wrongToken: boolean, status: 401 | 403 = 401) =>
    c.html(<SignIn nonce={nonce} wrongToken={wrongToken} />, status, {
      ...headers,
      "www-authenticate": 'Bearer realm="turnout"',
    });
  if (token !== undefined) return (await startSession(c.env, token, headers)) ?? signIn(true);
  const who = await identify(c);
  if (who === null || who === "invalid") return signIn(who === "invalid");
  if (!hasRole(who.role, "viewer")) return signIn(false, 403);
  const loaded = loadConfig(c.env);
  if (!loaded.ok) {
    return c.html(
      <Layout nonce={nonce} title="turnout status">
        <section role="alert" aria-labelledby="config-error">
          <h2 id="config-error">Configuration invalid</h2>
          <p>The worker configuration ({loaded.source}) is invalid, so no target can be shown:</p>
          <ul>
            {loaded.problems.map((p) => (
              <li>
                <code>{p.path}</code>: {p.message}
              </li>
            ))}
          </ul>
        </section>
      </Layout>,
      503,
      headers,
    );
  }
  const names = Object.keys(loaded.value.targets).sort();
  const cards: Card[] = await Promise.all(
    names.map(async (name): Promise<Card> => {
      try {
        return { name, view: await c.env.TARGETS.getByName(name).view(name) };
      } catch (err) {
        console.error(
          JSON.stringify({ level: "error", msg: "status page: target unavailable", name, error: String(err) }),
        );
        return { name, error: "unavailable; it will be retried on the next refresh" };
      }
    }),
  );
  const renderedAt = new Date().toISOString();
  return c.html(
    <Layout nonce={nonce} title="turnout status">
      <p class="lede">
        {names.length} target{names.length === 1 ? "" : "s"}. Rendered <time datetime={renderedAt}>{renderedAt}</time>.
      </p>
      <div class="cards">
        {cards.map((card) =>
          "view" in card ? (
            <TargetCard view={card.view} />
          ) : (
            <article class="card" aria-labelledby={`t-${card.name}`}>
              <h2 id={`t-${card.name}`}>{card.name}</h2>
              <p role="alert">Target {card.error}</p>
            </article>
          ),
        )}
      </div>
      <script nonce={nonce} dangerouslySetInnerHTML={{ __html: refreshScript() }} />
    </Layout>,
    200,
    headers,
  );
});

// ---------------------------------------------------------------------------------------------
// Components

function Layout(props: { nonce: string; title: string; children: Child }) {
  return (
    <html lang="en">
      <head>
        <meta charset="utf-8" />
        <meta name="viewport" content="width=device-width, initial-scale=1" />
        <meta name="referrer" content="no-referrer" />
        <title>{props.title}</title>
        <style nonce={props.nonce} dangerouslySetInnerHTML={{ __html: CSS }} />
      </head>
      <body>
        <header>
          <h1>turnout status</h1>
        </header>
        <main id="main">{props.children}</main>
        <footer>
          <p id="refresh-status" role="status" aria-live="polite">
            Live updates every {REFRESH_SECONDS} s.
          </p>
        </footer>
      </body>
    </html>
  );
}

function SignIn(props: { nonce: string; wrongToken: boolean }) {
  return (
    <Layout nonce={props.nonce} title="turnout status: sign in required">
      <section aria-labelledby="signin">
        <h2 id="signin">Sign in required</h2>
        {props.wrongToken ? <p role="alert">That credential is not valid. No session was started.</p> : null}
        <form method="post" action="/signin">
          <label for="token">Viewer or operator token</label>
          <input id="token" name="token" type="password" autocomplete="current-password" required />
          <button type="submit">Sign in for 12 hours</button>
        </form>
        <p>
          Or send <code>Authorization: Bearer &lt;token&gt;</code>, or come through Cloudflare Access. Give people a
          viewer token for this page.
        </p>
      </section>
    </Layout>
  );
}

const PHASE_TEXT: Record<TargetView["phase"], string> = {
  steady: "steady",
  pending: "pending (side down, holding)",
  awaiting_approval: "awaiting approval",
  executing: "executing",
  failed: "failed (needs retry, cancel or a manual command)",
};

// Status is always spelled out in words; the symbol and colour only repeat it.
const HEALTH_SYMBOL: Record<string, string> = { up: "▲", down: "▼", unknown: "?" };
const STEP_SYMBOL: Record<string, string> = {
  pending: "○",
  running: "◔",
  succeeded: "✓",
  failed: "✗",
  skipped: "–",
};

/**
 * What the page's script compares to decide a card needs re-rendering: the same fields, joined the
 * same way, as `sig()` in the script computes from `/v1/targets`.
 */
export function cardSignature(
  view: Pick<TargetView, "phase" | "activeSide" | "action" | "sides" | "paused" | "flapping">,
): string {
  const a = view.action;
  return [
    view.phase,
    view.activeSide,
    view.paused,
    view.flapping,
    a ? `${a.id}:${a.status}:${a.steps.map((st) => st.status).join(",")}` : "",
    view.sides.primary.health,
    view.sides.secondary.health,
    view.sides.primary.firing.length,
    view.sides.secondary.firing.length,
  ].join("|");
}

function TargetCard({ view }: { view: TargetView }) {
  const id = `t-${view.name}`;
  const flags = [
    view.paused ? "paused" : null,
    view.flapping ? "flapping" : null,
    view.cooldownUntil ? `cooldown until ${view.cooldownUntil}` : null,
    view.approvalDeadline ? `approval needed by ${view.approvalDeadline}` : null,
  ].filter((f): f is string => f !== null);
  const events = [...(view.lastEvents ?? [])].reverse().slice(0, EVENTS_SHOWN);
  return (
    <article
      class="card"
      data-target={view.name}
      data-phase={view.phase}
      data-sig={cardSignature(view)}
      aria-labelledby={id}
    >
      <h2 id={id}>{view.name}</h2>
      <dl class="summary">
        <div>
          <dt>Phase</dt>
          <dd>
            <span class={`badge phase-${view.phase}`} data-field="phase">
              {PHASE_TEXT[view.phase]}
            </span>
          </dd>
        </div>
        <div>
          <dt>Active side</dt>
          <dd>
            <strong data-field="activeSide">{view.activeSide}</strong>
          </dd>
        </div>
        {flags.length > 0 ? (
          <div>
            <dt>Flags</dt>
            <dd data-field="flags">{flags.join("; ")}</dd>
          </div>
        ) : null}
      </dl>
      <h3>Sides</h3>
      <ul class="sides">
        {(["primary", "secondary"] as const).map((side) => (
          <li class={`side health-${view.sides[side].health}`} data-side={side}>
            <span class="side-name">
              {side}
              {side === view.activeSide ? " (active)" : ""}
            </span>{" "}
            <span class="badge" data-field={`health-${side}`}>
              <span aria-hidden="true">{HEALTH_SYMBOL[view.sides[side].health] ?? ""} </span>
              {view.sides[side].health}
            </span>
            <Firing signals={view.sides[side].firing} />
          </li>
        ))}
      </ul>
      <Action action={view.action} />
      <LastDrill drill={view.lastDrill} />
      <h3>Latest events</h3>
      {events.length === 0 ? (
        <p class="muted">No events yet.</p>
      ) : (
        <ol class="events" reversed>
          {events.map((e) => (
            <EventItem event={e} />
          ))}
        </ol>
      )}
    </article>
  );
}

function Firing({ signals }: { signals: SignalView[] }) {
  if (signals.length === 0) return <p class="muted">Nothing firing.</p>;
  return (
    <ul class="firing" aria-label="Firing signals">
      {signals.map((s) => (
        <li>
          <strong>{s.labels.alertname ?? s.key}</strong> from {s.source} since{" "}
          <time datetime={s.firstSeen}>{s.firstSeen}</time>
          {s.soft ? " (soft)" : ""}
          {s.held ? " (held by a notice)" : ""}
        </li>
      ))}
    </ul>
  );
}

/** "1.5 s", "2 min 3 s"; null durations as "–". */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

function stepDuration(step: { startedAt?: string | undefined; finishedAt?: string | undefined }): number | null {
  if (!step.startedAt || !step.finishedAt) return null;
  return Date.parse(step.finishedAt) - Date.parse(step.startedAt);
}

function Action({ action }: { action: TargetView["action"] }) {
  if (action === null) {
    return (
      <section class="action" aria-label="Action">
        <h3>Action</h3>
        <p class="muted" data-field="action">
          No action yet.
        </p>
      </section>
    );
  }
  return (
    <section class="action" aria-label="Action">
      <h3>{action.status === "running" || action.status === "dispatching" ? "Current action" : "Last action"}</h3>
      <p data-field="action">
        {action.dryRun ? "dry-run " : ""}
        {action.kind} <code>{action.id}</code> {action.from} → {action.to}: <strong>{action.status}</strong>
        {action.error ? ` (${action.error.code}: ${action.error.message})` : ""}
      </p>
      {action.steps.length > 0 ? (
        <ol class="steps" aria-label="Steps" data-field="steps">
          {action.steps.map((st) => (
            <li class={`step step-${st.status}`}>
              <span aria-hidden="true">{STEP_SYMBOL[st.status] ?? ""} </span>
              {st.name}: {st.status}, {formatDuration(stepDuration(st))}
              {st.detail ? <span class="muted"> ({st.detail})</span> : null}
            </li>
          ))}
        </ol>
      ) : null}
    </section>
  );
}

function LastDrill({ drill }: { drill: DrillSummary | null }) {
  return (
    <section class="drill" aria-label="Last drill">
      <h3>Last drill</h3>
      {drill === null ? (
        <p class="muted">No drill has run.</p>
      ) : (
        <p data-field="lastDrill">
          {drill.mode} drill <strong>{drill.outcome}</strong> at{" "}
          <time datetime={drill.startedAt}>{drill.startedAt}</time>
          {drill.switches.length > 0
            ? `; recovery ${drill.switches.map((s) => `${s.kind} ${formatDuration(s.recoveryMs)}`).join(", ")}`
            : ""}
          . <span class="muted">{drill.detail}</span>
        </p>
      )}
    </section>
  );
}

function EventItem({ event }: { event: AuditEvent }) {
  const detail = JSON.stringify(event.detail);
  return (
    <li>
      <time datetime={event.at}>{event.at.slice(11, 19)}</time> <code>{event.type}</code>{" "}
      <span class="muted">{detail.length > 140 ? `${detail.slice(0, 139)}…` : detail}</span>
    </li>
  );
}

// ---------------------------------------------------------------------------------------------
// Client side: poll /v1/targets (the session cookie authorizes it) and update the cards in place.

function refreshScript(): string {
  const phaseText = JSON.stringify(PHASE_TEXT);
  const stepSymbol = JSON.stringify(STEP_SYMBOL);
  return `(() => {
  const PHASE = ${phaseText};
  const STEP = ${stepSymbol};
  // Looked up on use: this script runs inside <main>, before the footer is parsed.
  const say = (text) => {
    const el = document.getElementById("refresh-status");
    if (el) el.textContent = text;
  };
  const set = (card, field, text) => {
    const el = card.querySelector('[data-field="' + field + '"]');
    if (el && el.textContent !== text) el.textContent = text;
  };
  const dur = (s) => {
    if (!s.startedAt || !s.finishedAt) return "–";
    const ms = Date.parse(s.finishedAt) - Date.parse(s.startedAt);
    return ms < 60000 ? (ms / 1000).toFixed(1) + " s" : Math.floor(ms / 60000) + " min " + Math.round((ms % 60000) / 1000) + " s";
  };
  const sig = (t) => {
    const a = t.action;
    return [
      t.phase, t.activeSide, t.paused, t.flapping,
      a ? a.id + ":" + a.status + ":" + a.steps.map((s) => s.status).join(",") : "",
      t.sides.primary.health, t.sides.secondary.health,
      t.sides.primary.firing.length, t.sides.secondary.firing.length,
    ].join("|");
  };
  // A changed card is re-rendered from the server's HTML (same session cookie) and swapped in:
  // timeline, firing signals and events stay exact without a full page reload.
  async function rerender() {
    const res = await fetch("/", { credentials: "same-origin", headers: { accept: "text/html" } });
    if (!res.ok) return;
    const doc = new DOMParser().parseFromString(await res.text(), "text/html");
    for (const fresh of doc.querySelectorAll("[data-target]")) {
      const old = document.querySelector('[data-target="' + CSS.escape(fresh.dataset.target) + '"]');
      if (old) old.replaceWith(document.importNode(fresh, true));
    }
  }
  async function tick() {
    try {
      const res = await fetch("/v1/targets", { credentials: "same-origin", headers: { accept: "application/json" } });
      if (!res.ok) {
        say("Live updates stopped (HTTP " + res.status + "); reload the page to sign in again.");
        return;
      }
      const body = await res.json();
      let changed = false;
      for (const t of body.targets) {
        const card = document.querySelector('[data-target="' + CSS.escape(t.name) + '"]');
        if (!card) continue;
        if (card.dataset.sig !== sig(t)) changed = true;
        card.dataset.phase = t.phase;
        const phase = card.querySelector('[data-field="phase"]');
        if (phase) phase.className = "badge phase-" + t.phase;
        set(card, "phase", PHASE[t.phase] || t.phase);
        set(card, "activeSide", t.activeSide);
        for (const side of ["primary", "secondary"]) {
          const h = t.sides[side].health;
          const li = card.querySelector('[data-side="' + side + '"]');
          if (li) li.className = "side health-" + h;
          set(card, "health-" + side, h);
        }
        const a = t.action;
        set(card, "action", a ? (a.dryRun ? "dry-run " : "") + a.kind + " " + a.id + " " + a.from + " → " + a.to + ": " + a.status : "No action yet.");
        const steps = card.querySelector('[data-field="steps"]');
        if (steps && a) {
          steps.replaceChildren(...a.steps.map((s) => {
            const li = document.createElement("li");
            li.className = "step step-" + s.status;
            li.textContent = (STEP[s.status] || "") + " " + s.name + ": " + s.status + ", " + dur(s);
            return li;
          }));
        }
      }
      if (changed) await rerender();
      say("Updated " + new Date().toISOString().slice(11, 19) + " UTC; live updates every ${REFRESH_SECONDS} s.");
    } catch (err) {
      say("Live update failed; retrying.");
    }
  }
  setInterval(tick, ${REFRESH_SECONDS * 1000});
})();`;
}

// Colours meet WCAG AA contrast (≥ 4.5:1) for text on their backgrounds; status is never colour only.
const CSS = `
:root { color-scheme: light; font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; line-height: 1.45; }
body { margin: 0; background: #f4f5f7; color: #1b1e23; }
header, footer { background: #1b1e23; color: #ffffff; padding: 0.6rem 1rem; }
header h1 { margin: 0; font-size: 1.25rem; }
footer p { margin: 0; font-size: 0.9rem; }
main { padding: 1rem; max-width: 80rem; margin: 0 auto; }
.lede { margin-top: 0; }
.cards { display: grid; gap: 1rem; grid-template-columns: repeat(auto-fill, minmax(min(100%, 24rem), 1fr)); }
.card { background: #ffffff; border: 1px solid #c9ced6; border-radius: 0.5rem; padding: 0.75rem 1rem; overflow-wrap: anywhere; }
.card h2 { margin: 0 0 0.5rem; font-size: 1.15rem; }
.card h3 { margin: 0.75rem 0 0.25rem; font-size: 1rem; }
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
.firing, .steps, .events { margin: 0.25rem 0; padding-left: 1.25rem; }
.step-failed { color: #8a1010; }
.muted { color: #4a505a; }
code { font-size: 0.9em; }
@media (max-width: 30rem) { main { padding: 0.5rem; } .card { padding: 0.6rem; } }
`;
