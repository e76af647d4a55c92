/**
 * The agent's Prometheus metrics (design §6 `GET /metrics`), on a registry of its own so several
 * agents in one test process do not collide on prom-client's global registry.
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { ReadinessReport } from "../shared/protocol.ts";

/** What the runner, report sender and lease wiring record. */
export interface AgentMetrics {
  readonly registry: Registry;
  /** An action reached a final status (`result` = succeeded | failed). */
  actionFinished(kind: string, executor: string, result: string): void;
  /** One step ran for `seconds` and ended as `result`. */
  stepObserved(executor: string, step: string, result: string, seconds: number): void;
  /** A report delivery attempt was not acknowledged. */
  reportDeliveryFailed(): void;
  /** Lease state: 1 while this replica leads. */
  setLeader(leader: boolean): void;
  /** Actions currently executing on this replica. */
  setInProgress(count: number): void;
  /**
   * One readiness round (design §11.3): `turnout_target_ready{target,to}` per target and side,
   * `turnout_readiness_check_ok{target,check}` per check (0 when it fails toward any side
   * evaluated). Series of targets or checks no longer evaluated are dropped.
   */
  setReadiness(report: ReadinessReport): void;
  /** The outcome of one heartbeat (design §11.1): `ok`, `refused` (401/403) or `failing`. */
  heartbeatResult(result: "ok" | "refused" | "failing"): void;
  /** Prometheus text exposition. */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Creates the metrics on a fresh registry (with Node process metrics unless disabled). */
export function createAgentMetrics(options: { processMetrics?: boolean } = {}): AgentMetrics {
  const registry = new Registry();
  if (options.processMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: "turnout_agent_" });
  const actions = new Counter({
    name: "turnout_agent_actions_total",
    help: "Actions that reached a final status, by action kind, executor and result.",
    labelNames: ["kind", "executor", "result"] as const,
    registers: [registry],
  });
  const steps = new Histogram({
    name: "turnout_agent_step_duration_seconds",
    help: "Duration of executor steps, by executor, step and result.",
    labelNames: ["executor", "step", "result"] as const,
    // Steps range from API calls (ms) to waiting for an operator or DNS to settle (minutes).
    buckets: [0.01, 0.05, 0.1, 0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600],
    registers: [registry],
  });
  const reportFailures = new Counter({
    name: "turnout_agent_report_delivery_failures_total",
    help: "Report deliveries to the worker that were not acknowledged (non-2xx or network error).",
    registers: [registry],
  });
  const leader = new Gauge({
    name: "turnout_agent_lease_leader",
    help: "1 while this replica holds the Lease and executes actions, 0 while standing by.",
    registers: [registry],
  });
  const inProgress = new Gauge({
    name: "turnout_agent_actions_in_progress",
    help: "Actions executing on this replica.",
    registers: [registry],
  });
  const targetReady = new Gauge({
    name: "turnout_target_ready",
    help: "1 when the target could fail over to the side `to` now (every destination readiness check passed), else 0.",
    labelNames: ["target", "to"] as const,
    registers: [registry],
  });
  const checkOk = new Gauge({
    name: "turnout_readiness_check_ok",
    help: "1 when the readiness check passed toward every side this agent evaluates for the target, else 0.",
    labelNames: ["target", "check"] as const,
    registers: [registry],
  });
  const heartbeatOk = new Gauge({
    name: "turnout_agent_heartbeat_ok",
    help: "1 while the worker acknowledges this replica's heartbeats, 0 while they are refused or failing.",
    registers: [registry],
  });
  const heartbeatRefused = new Gauge({
    name: "turnout_agent_heartbeat_refused",
    help: "1 while the worker refuses this replica's heartbeats (401: it knows neither this agent's name nor its key).",
    registers: [registry],
  });
  const heartbeats = new Counter({
    name: "turnout_agent_heartbeats_total",
    help: "Heartbeats sent to the worker, by result (ok, refused, failing).",
    labelNames: ["result"] as const,
    registers: [registry],
  });
  return {
    registry,
    setReadiness: (report) => {
      // Reset and set in one synchronous pass: a scrape never sees the gap.
      targetReady.reset();
      checkOk.reset();
      for (const [target, sides] of Object.entries(report)) {
        const checks = new Map<string, boolean>();
        for (const [to, side] of Object.entries(sides)) {
          if (!side) continue;
          targetReady.set({ target, to }, side.ready ? 1 : 0);
          for (const c of side.checks) checks.set(c.name, (checks.get(c.name) ?? true) && c.ok);
        }
        for (const [check, ok] of checks) checkOk.set({ target, check }, ok ? 1 : 0);
      }
    },
    heartbeatResult: (result) => {
      heartbeats.inc({ result });
      heartbeatOk.set(result === "ok" ? 1 : 0);
      heartbeatRefused.set(result === "refused" ? 1 : 0);
    },
    actionFinished: (kind, executor, result) => actions.inc({ kind, executor, result }),
    stepObserved: (executor, step, result, seconds) => steps.observe({ executor, step, result }, seconds),
    reportDeliveryFailed: () => reportFailures.inc(),
    setLeader: (isLeader) => leader.set(isLeader ? 1 : 0),
    setInProgress: (count) => inProgress.set(count),
    render: async () => ({ contentType: registry.contentType, body: await registry.metrics() }),
  };
}
