/**
 * The worker's Hono app (design §3): routes, auth and validation in front of one TargetObject per
 * target. Kept apart from index.ts because workerd accepts only handlers as the main module's exports.
 */
import { Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import { agentKeys } from "../agents/agent-keys.ts";
import { agentHeartbeats } from "../agents/heartbeats.ts";
import { agentReports } from "../agents/reports.ts";
import { loadConfig } from "../config.ts";
import type { Env } from "../env.ts";
import { Problem, problemResponse } from "../problem.ts";
import { agentsApi } from "./agents-api.ts";
import { tokenIdentities } from "./identity.ts";
import { ingestRoutes } from "./ingest/routes.ts";
import { operatorApi } from "./operator-api.ts";
import { slackRoutes } from "./slack/routes.ts";
import { statusPage } from "./status-page/page.tsx";

/** Bodies over 1 MiB get 413 (design §3). */
export const MAX_BODY_BYTES = 1024 * 1024;

export const app = new Hono<{ Bindings: Env }>();

app.use(
  "*",
  bodyLimit({
    maxSize: MAX_BODY_BYTES,
    onError: () =>
      problemResponse(new Problem("payload-too-large", `request bodies are limited to ${MAX_BODY_BYTES} bytes`)),
  }),
);

app.get("/healthz", (c) => {
  const loaded = loadConfig(c.env);
  // Operator tokens are part of the configuration (design §3a): a short or shared token makes it
  // invalid. The problems name the identity, never the token.
  const errors = [
    ...(loaded.ok ? [] : loaded.problems),
    ...tokenIdentities(c.env).problems,
    // Keys per agent (design §11.1): a short, malformed or shared key names the agent, never the key.
    ...agentKeys(c.env).problems,
  ];
  return errors.length === 0
    ? c.json({ ok: true, config: "valid" as const })
    : c.json({ ok: false, config: "invalid" as const, errors });
});

// Ingest webhooks and the operator API (design §3).
app.route("/", ingestRoutes);
app.route("/", operatorApi);
app.route("/", agentReports);
app.route("/", agentHeartbeats);
app.route("/", agentsApi);
app.route("/", slackRoutes);
// The status page `GET /` (design §5b).
app.route("/", statusPage);

app.notFound((c) =>
  problemResponse(new Problem("not-found", `no route for ${c.req.method} ${new URL(c.req.url).pathname}`)),
);

app.onError((err, c) => {
  if (err instanceof Problem) return problemResponse(err);
  if (err instanceof HTTPException) {
    const code = err.status === 401 ? "unauthorized" : err.status === 413 ? "payload-too-large" : "bad-request";
    return problemResponse(new Problem(code, err.message || "request rejected"));
  }
  console.error(JSON.stringify({ level: "error", msg: "unhandled error", path: c.req.path, error: String(err) }));
  return problemResponse(new Problem("internal", "an unexpected error occurred; it has been logged"));
});
