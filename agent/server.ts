/**
 * The agent's HTTP surface (design §6): health, readiness, actions and metrics. Every error is
 * `application/problem+json` (one funnel: `problem` in agent/actions.ts).
 */
import { Hono } from "hono";
import type { AgentConfig } from "../shared/config.ts";
import { AGENT_HEADER } from "../shared/protocol.ts";
import { type ActionRoutesDeps, problem, registerActionRoutes } from "./actions.ts";
import type { HeartbeatState } from "./heartbeat.ts";
import type { Leadership } from "./leadership.ts";
import { createLogger } from "./log.ts";
import type { AgentMetrics } from "./metrics.ts";
import type { ClusterMode } from "./mode.ts";

export interface AgentAppDeps {
  config: AgentConfig;
  mode: ClusterMode;
  /** Ready = Kubernetes reachable and the Lease held or standing by (design §6). */
  readiness: () => Promise<{ ready: boolean; detail: string }>;
  version: string;
  /** The action API; absent, `/v1/actions` answers 404 (e.g. a health-only tool). */
  actions?: Omit<ActionRoutesDeps, "config">;
  metrics?: AgentMetrics;
  /** Sandbox only: what the sandbox started on this machine (local BIND, etcd), shown in `/healthz`. */
  sandbox?: () => unknown;
  /** The heartbeats' state (design §11.1): shown in `/healthz` and `/readyz`. */
  heartbeat?: () => HeartbeatState;
}

/** Builds the agent's Hono app. */
export function createAgentApp(deps: AgentAppDeps): Hono {
  const app = new Hono();
  // Every answer names this agent (design §11.1), so the worker picks this agent's key to verify
  // a signed GET answer and a probe of /healthz counts for the right agent.
  app.use(async (c, next) => {
    await next();
    c.res.headers.set(AGENT_HEADER, deps.config.name);
  });

  app.get("/healthz", (c) => {
    const heartbeat = deps.heartbeat?.();
    return c.json({
      ok: true,
      agent: deps.config.name,
      mode: deps.mode,
      version: deps.version,
      ...(heartbeat ? { heartbeat: heartbeat.status, serves: heartbeat.serves ?? null } : {}),
      targets: Object.fromEntries(Object.entries(deps.config.targets).map(([name, t]) => [name, t.kind])),
      ...(deps.mode === "sandbox" ? { note: "sandbox: simulated Kubernetes cluster, no real cluster is touched" } : {}),
      ...(deps.mode === "sandbox" && deps.sandbox ? { sandbox: deps.sandbox() } : {}),
    });
  });

  app.get("/readyz", async (c) => {
    const r = await deps.readiness();
    const heartbeat = deps.heartbeat?.();
    // The heartbeat is shown, never counted: this is the Kubernetes readiness probe, and a replica
    // the worker does not hear can still execute what it is sent (design §11.1).
    return c.json(
      {
        ready: r.ready,
        mode: deps.mode,
        detail: r.detail,
        ...(heartbeat
          ? { heartbeat: heartbeat.status, ...(heartbeat.error ? { heartbeatError: heartbeat.error } : {}) }
          : {}),
      },
      r.ready ? 200 : 503,
    );
  });

  const metrics = deps.metrics;
  if (metrics) {
    app.get("/metrics", async () => {
      const { contentType, body } = await metrics.render();
      return new Response(body, { status: 200, headers: { "content-type": contentType } });
    });
  }

  if (deps.actions) registerActionRoutes(app, { ...deps.actions, config: deps.config });

  app.notFound((c) => problem(404, "not-found", "Not found", `no route for ${c.req.method} ${c.req.path}`));
  // The error's text stays in the log: it can name hosts, paths or Kubernetes internals.
  app.onError((err, c) => {
    (deps.actions?.log ?? createLogger({ component: "agent" })).error("request failed", {
      method: c.req.method,
      path: c.req.path,
      error: err instanceof Error ? (err.stack ?? err.message) : String(err),
    });
    return problem(500, "internal", "Internal error", "the agent failed to handle this request; see its log");
  });
  return app;
}

/**
 * Readiness (design §6): Kubernetes reachable, and the Lease either held or watched from standby
 * (a follower is ready: it serves health and metrics and forwards nothing).
 */
export async function leaseReadiness(
  leadership: Leadership,
  kubernetesReachable: () => Promise<boolean>,
): Promise<{ ready: boolean; detail: string }> {
  const reachable = await kubernetesReachable().catch(() => false);
  const state = leadership.state();
  if (!reachable) return { ready: false, detail: `Kubernetes API unreachable; ${state.detail}` };
  return { ready: true, detail: state.leader ? `leader: ${state.detail}` : `standing by: ${state.detail}` };
}
