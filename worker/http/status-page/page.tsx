/**
 * The status page `GET /` (design §5b): server-rendered HTML (hono/jsx, no build step), one card per
 * target (worker/http/status-page/card.tsx) with the sentence saying what happens next, the incident
 * timeline as bars, the incident history and drill results, and, for operators, actions. A small
 * inline script (worker/http/status-page/client.ts) polls `/v1/targets` and re-renders cards in place.
 *
 * Auth (design §3a, §5b): a viewer identity as bearer token or Cloudflare Access, or a session:
 * the sign-in form POSTs a token to `/signin` (no token in any URL), or `/?token=<token>` once;
 * both set the identity's session cookie (worker/http/session.ts) and redirect (303) to `/`. Anything
 * else gets a 401 page that shows no target data.
 *
 * Actions (`POST /ui/targets/:name/commands`): only an operator's session or Cloudflare Access
 * visit, with the CSRF token bound to that session or Access assertion (worker/http/status-page/csrf.ts),
 * and only once confirmed; they call the same object methods as the operator API, with that
 * identity as the actor. A bearer token opens the page to read; scripts act through the API.
 */
import { type Context, Hono } from "hono";
import type { Child } from "hono/jsx";
import type { WorkerConfig } from "../../../shared/config.ts";
import type { AgentInfo } from "../../agents/agent-object.ts";
import { loadConfig } from "../../config.ts";
import type { Env } from "../../env.ts";
import { Problem, problemResponse } from "../../problem.ts";
import { describeEvent, sentenceText, targetSentence } from "../../target/target-sentences.ts";
import type { AuditEvent, EventPage, TargetView } from "../../target/target-view.ts";
import { listAgents } from "../agents-api.ts";
import { byToken, hasRole, identify, type Role, sessionIdentity, type TokenIdentity } from "../identity.ts";
import { issueSession, readCookie, SESSION_COOKIE, sessionCookie } from "../session.ts";
import { AgentsSection } from "./agents-section.tsx";
import { type CardData, PAGE_COMMANDS, type PageCommand, TargetCard } from "./card.tsx";
import { CSS, REFRESH_SECONDS, refreshScript } from "./client.ts";
import { accessCsrfToken, csrfMatches, csrfToken } from "./csrf.ts";

export { cardSignature, formatDuration } from "./card.tsx";
export { REFRESH_SECONDS } from "./client.ts";

/** How many of the newest audit events a card reads for its timeline, history and drills (bounded). */
export const HISTORY_WINDOW = 500;
/** Events per page of the raw audit log. */
export const AUDIT_PAGE = 50;

export const statusPage = new Hono<{ Bindings: Env }>();

type Card = { name: string; data: CardData } | { name: string; error: string };

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

/** The session behind this request's cookie, when it verifies: the identity and the cookie value. */
async function pageSession(c: Context<{ Bindings: Env }>): Promise<{ who: TokenIdentity; value: string } | null> {
  const value = readCookie(c.req.header("cookie"), SESSION_COOKIE);
  if (value === null) return null;
  const who = await sessionIdentity(c.env, value, Date.now() / 1000);
  return who ? { who, value } : null;
}

/** Who may act from the page: a session, or a Cloudflare Access visitor; with their CSRF token. */
interface PageActor {
  name: string;
  role: Role | null;
  /** The CSRF token bound to what identifies the actor (the Access assertion or the session cookie). */
  csrf: string;
}

/**
 * The page's actor for this request: a verified Cloudflare Access assertion (bound to that
 * assertion) or else a status-page session (bound to the session cookie); null for anyone else.
 */
async function pageActor(c: Context<{ Bindings: Env }>): Promise<PageActor | null> {
  const jwt = c.req.header("cf-access-jwt-assertion");
  if (jwt !== undefined && jwt !== "") {
    const who = await identify(c);
    if (who === null || who === "invalid" || who.via !== "access") return null;
    return {
      name: who.name,
      role: who.role,
      csrf: await accessCsrfToken(jwt),
    };
  }
  const session = await pageSession(c);
  if (session === null) return null;
  return {
    name: session.who.name,
    role: session.who.role,
    csrf: await csrfToken(session.who.token, session.value),
  };
}

/** The reader's identity for a page GET, or the response that refuses it (401/403 sign-in page). */
async function pageReader(
  c: Context<{ Bindings: Env }>,
  nonce: string,
  headers: Record<string, string>,
): Promise<{ ok: true; operator: { name: string; csrf: string } | null } | { ok: false; res: Response }> {
  const signIn = async (wrongToken: boolean, status: 401 | 403 = 401) => ({
    ok: false as const,
    res: await c.html(<SignIn nonce={nonce} wrongToken={wrongToken} />, status, {
      ...headers,
      "www-authenticate": 'Bearer realm="turnout"',
    }),
  });
  const who = await identify(c);
  if (who === null || who === "invalid") return signIn(who === "invalid");
  if (!hasRole(who.role, "viewer")) return signIn(false, 403);
  // Buttons only for an operator's session or Access visit: the CSRF token is bound to either.
  // A bearer token is for scripts, which use the API.
  if (who.via === "token" || !hasRole(who.role, "operator")) return { ok: true, operator: null };
  const actor = await pageActor(c);
  if (actor === null || !hasRole(actor.role, "operator")) return { ok: true, operator: null };
  return { ok: true, operator: { name: actor.name, csrf: actor.csrf } };
}

function configError(nonce: string, loaded: Extract<ReturnType<typeof loadConfig>, { ok: false }>) {
  return (
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
    </Layout>
  );
}

/** The newest `HISTORY_WINDOW` audit events: one bounded read that starts from the view's newest seq. */
async function newestEvents(stub: ReturnType<Env["TARGETS"]["getByName"]>, view: TargetView): Promise<AuditEvent[]> {
  const last = view.lastEvents?.at(-1)?.seq ?? 0;
  if (last === 0) return [];
  const page: EventPage = await stub.events(Math.max(0, last - HISTORY_WINDOW), HISTORY_WINDOW);
  return page.events;
}

async function loadCard(env: Env, config: WorkerConfig, name: string, operator: CardData["operator"]): Promise<Card> {
  try {
    const stub = env.TARGETS.getByName(name);
    const view = await stub.view(name);
    const window = await newestEvents(stub, view);
    const policy = config.targets[name]?.policy;
    if (!policy) return { name, error: "not in the configuration" };
    // Open break-glass requests come from the object's own store, so a request outside the
    // page's event window (an event storm since) still shows; only operators see them.
    const breakGlass = operator ? await stub.openBreakGlass() : [];
    return { name, data: { view, policy, window, now: Date.now(), operator, breakGlass } };
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "status page: target unavailable", name, error: String(err) }));
    return { name, error: "unavailable; it will be retried on the next refresh" };
  }
}

/** Every agent as shown, or why they cannot be shown (the cards still are). */
async function loadAgents(env: Env): Promise<{ agents: AgentInfo[]; error: string | undefined }> {
  try {
    return { agents: await listAgents(env), error: undefined };
  } catch (err) {
    console.error(JSON.stringify({ level: "error", msg: "status page: agents unavailable", error: String(err) }));
    return { agents: [], error: "their records could not be read; they will be retried on the next refresh" };
  }
}

statusPage.get("/", async (c) => {
  const nonce = newNonce();
  const headers = securityHeaders(nonce);
  const token = c.req.query("token");
  if (token !== undefined) {
    const started = await startSession(c.env, token, headers);
    if (started) return started;
    return c.html(<SignIn nonce={nonce} wrongToken={true} />, 401, {
      ...headers,
      "www-authenticate": 'Bearer realm="turnout"',
    });
  }
  const reader = await pageReader(c, nonce, headers);
  if (!reader.ok) return reader.res;
  const loaded = loadConfig(c.env);
  if (!loaded.ok) return c.html(configError(nonce, loaded), 503, headers);
  const names = Object.keys(loaded.value.targets).sort();
  const fragment = c.req.query("fragment");
  const [cards, agents] = await Promise.all([
    fragment === "agents" ? [] : Promise.all(names.map((name) => loadCard(c.env, loaded.value, name, reader.operator))),
    fragment === "cards" ? { agents: [], error: undefined } : loadAgents(c.env),
  ]);
  const agentsSection = <AgentsSection agents={agents.agents} now={Date.now()} error={agents.error} />;
  // The page's script re-renders the Agents section from this fragment when /v1/agents changed.
  if (fragment === "agents") return c.html(agentsSection, 200, headers);
  const renderedAt = new Date().toISOString();
  const cardList = (
    <div class="cards">
      {cards.map((card) =>
        "data" in card ? (
          <TargetCard data={card.data} />
        ) : (
          <article class="card" aria-labelledby={`t-${card.name}`}>
            <h2 id={`t-${card.name}`}>{card.name}</h2>
            <p role="alert">Target {card.error}</p>
          </article>
        ),
      )}
    </div>
  );
  // The page's script re-renders changed cards from this fragment (no style or script in it).
  if (fragment === "cards") return c.html(cardList, 200, headers);
  return c.html(
    <Layout nonce={nonce} title="turnout status" operator={reader.operator !== null}>
      <p class="lede">
        {names.length} target{names.length === 1 ? "" : "s"}. Rendered <time datetime={renderedAt}>{renderedAt}</time>
        {reader.operator ? `; signed in as ${reader.operator.name}, with the operator role` : ""}.
      </p>
      {agentsSection}
      {cardList}
      <script nonce={nonce} dangerouslySetInnerHTML={{ __html: refreshScript() }} />
    </Layout>,
    200,
    headers,
  );
});

/** `GET /audit/:name?after=<seq>`: the raw audit log, oldest first, a page at a time, every detail whole. */
statusPage.get("/audit/:name", async (c) => {
  const nonce = newNonce();
  const headers = securityHeaders(nonce);
  const reader = await pageReader(c, nonce, headers);
  if (!reader.ok) return reader.res;
  const loaded = loadConfig(c.env);
  if (!loaded.ok) return c.html(configError(nonce, loaded), 503, headers);
  const name = c.req.param("name");
  if (!Object.hasOwn(loaded.value.targets, name)) {
    throw new Problem("not-found", `no target named ${JSON.stringify(name)}`);
  }
  const stub = c.env.TARGETS.getByName(name);
  const newest = (await stub.view(name)).lastEvents?.at(-1)?.seq ?? 0;
  const rawAfter = c.req.query("after");
  const after =
    rawAfter === undefined || rawAfter === "" ? Math.max(0, newest - AUDIT_PAGE) : Number.parseInt(rawAfter, 10);
  if (!Number.isSafeInteger(after) || after < 0 || !/^\d*$/.test(rawAfter ?? "")) {
    throw new Problem("validation", "invalid query; see errors", {
      errors: [{ path: "query.after", message: "expected an integer seq ≥ 0" }],
    });
  }
  const page = await stub.events(after, AUDIT_PAGE);
  const href = (n: number) => `/audit/${encodeURIComponent(name)}?after=${n}`;
  // The same pager above and below the list.
  const pager = (
    <Pager
      older={after > 0 ? href(Math.max(0, after - AUDIT_PAGE)) : null}
      newer={page.next === undefined ? null : href(page.next)}
    />
  );
  return c.html(
    <Layout nonce={nonce} title={`turnout: raw audit log of ${name}`}>
      <section class="audit" aria-labelledby="audit">
        <h2 id="audit">Raw audit log of {name}</h2>
        <p>
          Events {page.events[0]?.seq ?? "–"} to {page.events.at(-1)?.seq ?? "–"} of {newest}, oldest first.{" "}
          <a href="/">Back to the status page</a>
        </p>
        {pager}
        {page.events.length === 0 ? (
          <p class="muted">No events on this page.</p>
        ) : (
          <ol>
            {page.events.map((e) => (
              <li id={`seq-${e.seq}`}>
                <strong>#{e.seq}</strong> <time datetime={e.at}>{e.at}</time> <code>{e.type}</code>
                {e.cause === null ? "" : ` (caused by #${e.cause})`}
                <br />
                {describeEvent(e) ?? ""}
                <pre>{JSON.stringify(e.detail, null, 2)}</pre>
              </li>
            ))}
          </ol>
        )}
        {pager}
      </section>
    </Layout>,
    200,
    headers,
  );
});

function Pager({ older, newer }: { older: string | null; newer: string | null }) {
  return (
    <nav class="pager" aria-label="Audit log pages">
      {older ? <a href={older}>← Older events</a> : <span class="muted">Oldest page</span>}
      {newer ? <a href={newer}>Newer events →</a> : <span class="muted">Newest page</span>}
    </nav>
  );
}

// ---------------------------------------------------------------------------------------------
// Actions from the page

/** What an action answered: JSON for the page's script, a small page without it. */
interface ActionAnswer {
  ok: boolean;
  status: 200 | 403 | 404 | 409 | 503;
  message: string;
}

/** Runs one page command through the same object methods (and break-glass rules) as the API. */
async function runPageCommand(
  env: Env,
  config: WorkerConfig,
  name: string,
  who: string,
  command: PageCommand,
  form: URLSearchParams,
): Promise<ActionAnswer> {
  const stub = env.TARGETS.getByName(name);
  const reason = (form.get("reason") ?? "").slice(0, 2000);
  const policy = config.targets[name]?.policy;
  const describeNow = (view: TargetView, now = Date.now()) =>
    policy ? sentenceText(targetSentence(view, { now, policy }), now) : view.phase;
  try {
    if (command === "confirm") {
      const request = form.get("request") ?? "";
      if (!/^[0-9a-f]{32}$/.test(request)) {
        throw new Problem("validation", "invalid command; see errors", {
          errors: [{ path: "request", message: "a break-glass request id (32 hex digits)" }],
        });
      }
      const r = await stub.resolveBreakGlass(name, {
        nonce: request,
        decision: "approve",
        actorId: who,
        actor: who,
      });
      switch (r.outcome) {
        case "executed":
          return {
            ok: true,
            status: 200,
            message: `confirmed ${r.requester}'s forced ${r.command}; now ${describeNow(r.view)}`,
          };
        case "self-approval":
          return { ok: false, status: 403, message: r.detail };
        case "unknown":
          return { ok: false, status: 404, message: `no break-glass request with that id for ${name}` };
        case "rejected":
          return { ok: false, status: 409, message: `confirmed, but the target refused it: ${r.reason}` };
        case "cancelled":
          return { ok: false, status: 409, message: "the request was cancelled" };
        default:
          return { ok: false, status: 409, message: r.detail };
      }
    }
    const step = form.get("step");
    if (command === "approve" && step !== null && step !== "") {
      // A plan step: the same object call as the API's {"command": "approve", "step"}.
      const r = await stub.approveStep(name, { step, actor: who, ...(reason !== "" ? { reason } : {}) });
      if (r.unavailable !== undefined) {
        return { ok: false, status: 503, message: `the approval did not reach the agent; try again: ${r.unavailable}` };
      }
      if (!r.applied) return { ok: false, status: 409, message: r.rejected ?? "approve does not apply now" };
      return { ok: true, status: 200, message: `step ${step} approved; the plan goes on. Now ${describeNow(r.view)}` };
    }
    const result = await stub.command(name, {
      command,
      actor: who,
      ...(reason !== "" ? { reason } : {}),
    });
    if (!result.applied) return { ok: false, status: 409, message: result.rejected ?? `${command} does not apply now` };
    return { ok: true, status: 200, message: `${command} applied; now ${describeNow(result.view)}` };
  } catch (err) {
    if (err instanceof Problem) throw err;
    console.error(
      JSON.stringify({ level: "error", msg: "status page: command failed", target: name, error: String(err) }),
    );
    throw new Problem("unavailable", `target ${name} is unavailable; retry`);
  }
}

statusPage.post("/ui/targets/:name/commands", async (c) => {
  // The session cookie is SameSite=Strict, and the CSRF token is bound to it: a forged request
  // carries neither, and is refused before anything reaches the target.
  const forbidden = (detail: string) => problemResponse(new Problem("forbidden", detail));
  const origin = c.req.header("origin");
  // An opaque origin ("null") is never this page's own, so it is refused like any other.
  if (origin !== undefined && origin !== new URL(c.req.url).origin) return forbidden("cross-origin request refused");
  const actor = await pageActor(c);
  if (actor === null) {
    return forbidden("page actions need a status-page session (sign in on /) or a Cloudflare Access visit");
  }
  const form = new URLSearchParams(await c.req.text());
  // actor.csrf is already this actor's token: compare against it rather than derive it again.
  if (!(await csrfMatches(actor.csrf, form.get("csrf") ?? ""))) {
    return forbidden("missing or wrong CSRF token for this session; reload the page");
  }
  if (!hasRole(actor.role, "operator")) {
    return forbidden(`${actor.name} has role ${actor.role ?? "none"}; this needs operator`);
  }
  const config = loadConfig(c.env);
  if (!config.ok) throw new Problem("config-invalid", "the worker configuration is invalid");
  const name = c.req.param("name");
  if (!Object.hasOwn(config.value.targets, name))
    throw new Problem("not-found", `no target named ${JSON.stringify(name)}`);
  const command = form.get("command") ?? "";
  if (!(PAGE_COMMANDS as readonly string[]).includes(command)) {
    throw new Problem("validation", "invalid command; see errors", {
      errors: [{ path: "command", message: `expected one of ${PAGE_COMMANDS.join(", ")}` }],
    });
  }
  const cmd = command as PageCommand;
  const nonce = newNonce();
  const headers = securityHeaders(nonce);
  const wantsJson = (c.req.header("accept") ?? "").includes("application/json");
  if (form.get("confirmed") !== "yes") {
    // Without the page's script (no dialog): the server asks for the second click.
    if (wantsJson) return c.json({ ok: false, message: "not confirmed: send confirmed=yes" }, 400);
    return c.html(
      <Layout nonce={nonce} title={`turnout: confirm ${cmd} on ${name}`}>
        <section aria-labelledby="confirm-h">
          <h2 id="confirm-h">
            Confirm {cmd} on {name}
          </h2>
          <form method="post" action={`/ui/targets/${encodeURIComponent(name)}/commands`}>
            {[...form.entries()].map(([k, v]) =>
              k === "confirmed" ? null : <input type="hidden" name={k} value={v} />,
            )}
            <input type="hidden" name="confirmed" value="yes" />
            <label for="reason">Reason (optional, audited)</label>
            <input id="reason" name="reason" maxlength={2000} />
            <p>
              <button type="submit" class="primary">
                Yes, {cmd}
              </button>{" "}
              <a href="/">No, back to the status page</a>
            </p>
          </form>
        </section>
      </Layout>,
      200,
      headers,
    );
  }
  const answer = await runPageCommand(c.env, config.value, name, actor.name, cmd, form);
  console.log(
    JSON.stringify({
      level: "info",
      msg: "status page command",
      target: name,
      command: cmd,
      actor: actor.name,
      ok: answer.ok,
    }),
  );
  if (wantsJson) return c.json(answer, answer.status);
  return c.html(
    <Layout nonce={nonce} title={`turnout: ${cmd} on ${name}`}>
      <section aria-labelledby="result-h">
        <h2 id="result-h">
          {cmd} on {name}: {answer.ok ? "done" : "not done"}
        </h2>
        <p role={answer.ok ? "status" : "alert"}>{answer.message}</p>
        <p>
          <a href="/">Back to the status page</a>
        </p>
      </section>
    </Layout>,
    answer.status,
    headers,
  );
});

// ---------------------------------------------------------------------------------------------
// Layout

function Layout(props: { nonce: string; title: string; children: Child; operator?: boolean }) {
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
        <div id="stale" class="stale" role="alert" hidden>
          <p />
        </div>
        <main id="main">{props.children}</main>
        {props.operator ? (
          <dialog id="confirm" aria-labelledby="confirm-question">
            <form method="dialog">
              <p id="confirm-question">Are you sure?</p>
              <label for="confirm-reason">Reason (optional, audited)</label>
              <input id="confirm-reason" name="reason" maxlength={2000} autocomplete="off" />
              <div class="buttons">
                <button type="submit" value="yes" class="primary">
                  Yes, do it
                </button>
                <button type="submit" value="no">
                  Back
                </button>
              </div>
            </form>
          </dialog>
        ) : null}
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
