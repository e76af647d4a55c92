/**
 * The agent's HTTP surface (design §6): health, readiness and, in later issues, actions and
 * metrics. One error funnel producing `application/problem+json`.
 */
import { Hono } from "hono";
import type { AgentConfig } from "../shared/config.ts";
import type { ClusterMode } from "./mode.ts";

export interface AgentAppDeps {
  config: AgentConfig;
  mode: ClusterMode;
  /** Ready = Kubernetes reachable and the Lease held or standing by (design §6). */
  readiness: () => Promise<{ ready: boolean; detail: string }>;
  version: string;
}

function problem(status: number, title: string, detail: string): Response {
  return new Response(JSON.stringify({ type: "about:blank", title, status, detail }), {
    status,
    headers: { "content-type": "application/problem+json" },
  });
}

/** Builds the agent's Hono app. */
export function createAgentApp(deps: AgentAppDeps): Hono {
  const app = new Hono();

  app.get("/healthz", (c) =>
    c.json({
      ok: true,
      mode: deps.mode,
      version: deps.version,
      targets: Object.fromEntries(Object.entries(deps.config.targets).map(([name, t]) => [name, t.kind])),
      ...(deps.mode === "sandbox" ? { note: "sandbox: simulated Kubernetes cluster, no real cluster is touched" } : {}),
    }),
  );

  app.get("/readyz", async (c) => {
    const r = await deps.readiness();
    return c.json({ ready: r.ready, mode: deps.mode, detail: r.detail }, r.ready ? 200 : 503);
  });

  app.notFound((c) => problem(404, "Not found", `no route for ${c.req.method} ${c.req.path}`));
  app.onError((err) => problem(500, "Internal error", String(err)));
  return app;
}
