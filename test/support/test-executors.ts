/**
 * Executors for protocol tests: they count every step run (so a test can prove an action ran
 * once and a resumed action never repeated a completed step), can fail on demand, and can hold a
 * step at a gate until the test opens it. Registered under a real kind (`dns-flip`) so the
 * config schema accepts the targets; the real dns-flip executor is never involved.
 */
import { appendFileSync, existsSync } from "node:fs";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { type ServerType, serve } from "@hono/node-server";
import type { Hono } from "hono";
import { type ActionStore, InMemoryActionStore } from "../../agent/action-store.ts";
import { type Executor, type Step, StepError } from "../../agent/executor.ts";
import { alwaysLeader, type Leadership, type LeadershipState } from "../../agent/leadership.ts";
import { silentLogger } from "../../agent/log.ts";
import { type AgentMetrics, createAgentMetrics } from "../../agent/metrics.ts";
import { createReportSender } from "../../agent/report-sender.ts";
import { ActionRunner, followLeadership } from "../../agent/runner.ts";
import { createAgentApp, leaseReadiness } from "../../agent/server.ts";
import { type AgentConfig, AgentConfigSchema, type AgentTarget } from "../../shared/config.ts";
import type { QstashKeys } from "../../shared/qstash-signature.ts";

export interface StepCall {
  action: string;
  step: string;
  dryRun: boolean;
}

export interface CountingExecutor {
  executor: Executor;
  calls: StepCall[];
  /** How many times `step` ran (any action), or all step runs. */
  count(step?: string): number;
  /** Lets a gated step continue. */
  open(step: string): void;
  /** Resolves when `step` has started (it may be waiting at its gate). */
  started(step: string): Promise<void>;
}

export interface CountingOptions {
  kind?: AgentTarget["kind"];
  steps: string[];
  /** Steps that wait for {@link CountingExecutor.open} before finishing. */
  gated?: string[];
  /** Fail this step with a StepError (`times` times, default always). */
  fail?: { step: string; code: string; message: string; times?: number };
}

/** An executor that records its calls in memory. */
export function countingExecutor(options: CountingOptions): CountingExecutor {
  const calls: StepCall[] = [];
  const gates = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const starts = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const deferred = (map: typeof gates, key: string) => {
    let d = map.get(key);
    if (!d) {
      let resolve: () => void = () => {};
      const promise = new Promise<void>((r) => {
        resolve = r;
      });
      d = { promise, resolve };
      map.set(key, d);
    }
    return d;
  };
  let failures = 0;
  const executor: Executor = {
    kind: options.kind ?? "dns-flip",
    steps: (): Step[] =>
      options.steps.map((name) => ({
        name,
        run: async (ctx) => {
          calls.push({ action: ctx.action.id, step: name, dryRun: ctx.action.dryRun });
          deferred(starts, name).resolve();
          if (options.gated?.includes(name)) {
            const gate = deferred(gates, name).promise;
            await new Promise<void>((resolve, reject) => {
              ctx.signal.addEventListener("abort", () => reject(ctx.signal.reason), { once: true });
              gate.then(resolve);
            });
          }
          const f = options.fail;
          if (f && f.step === name && (f.times === undefined || failures < f.times)) {
            failures += 1;
            throw new StepError(f.code, f.message);
          }
          return { detail: `${name} done` };
        },
      })),
  };
  return {
    executor,
    calls,
    count: (step) => calls.filter((c) => step === undefined || c.step === step).length,
    open: (step) => deferred(gates, step).resolve(),
    started: (step) => deferred(starts, step).promise,
  };
}

/**
 * An executor for a child agent process: every step run is appended to `<dir>/steps.log` as
 * `<pid> <action> <step>`, and a step named in `gated` waits until the file `<dir>/gate-<step>`
 * exists (the test creates it), so the test can kill the process between steps.
 */
export function fileGatedExecutor(dir: string, steps: string[], gated: string[]): Executor {
  return {
    kind: "dns-flip",
    steps: (): Step[] =>
      steps.map((name) => ({
        name,
        run: async (ctx) => {
          while (gated.includes(name) && !existsSync(join(dir, `gate-${name}`))) await ctx.sleep(20);
          appendFileSync(join(dir, "steps.log"), `${process.pid} ${ctx.action.id} ${name}\n`);
          return { detail: `${name} done by pid ${process.pid}` };
        },
      })),
  };
}

/** A valid agent config whose targets are dns-flip targets (driven by a test executor). */
export function testAgentConfig(
  targets: string[],
  reportUrl: string,
  extra: Record<string, unknown> = {},
): AgentConfig {
  return AgentConfigSchema.parse({
    listen: "127.0.0.1:0",
    reportUrl,
    ...extra,
    targets: Object.fromEntries(
      targets.map((name) => [
        name,
        {
          kind: "dns-flip",
          provider: {
            type: "rfc2136",
            server: "127.0.0.1:1",
            zone: "example.test",
            tsig: { name: "k", secretEnv: "TSIG_SECRET" },
          },
          record: { name: `${name}.example.test` },
          values: { primary: ["192.0.2.1"], secondary: ["192.0.2.2"] },
        },
      ]),
    ),
  });
}

/** An ActionRequest body for tests. */
export function actionRequest(
  target: string,
  epoch: number,
  overrides: Record<string, unknown> = {},
): Record<string, unknown> {
  return {
    id: `${target}:${epoch}`,
    target,
    kind: "failover",
    from: "primary",
    to: "secondary",
    dryRun: false,
    force: false,
    reason: "test",
    issuedAt: "2026-11-22T10:00:00.000Z",
    ...overrides,
  };
}

export interface TestAgent {
  url: string;
  app: Hono;
  runner: ActionRunner;
  store: ActionStore;
  metrics: AgentMetrics;
  close(): Promise<void>;
}

export interface TestAgentOptions {
  targets: string[];
  /** The agent's `name` (default `default`). */
  name?: string;
  reportUrl: string;
  secret: string;
  nextSecret?: string;
  executor: Executor;
  store?: ActionStore;
  leadership?: Leadership;
  qstash?: QstashKeys;
  qstashUrl?: string;
  /** `qstash.maxAgeSeconds` (default 86400). */
  qstashMaxAgeSeconds?: number;
  now?: () => number;
}

/** The agent's real app (routes, runner, report sender) over real HTTP on 127.0.0.1:<random>. */
export async function startTestAgent(options: TestAgentOptions): Promise<TestAgent> {
  const config = testAgentConfig(options.targets, options.reportUrl, {
    ...(options.name ? { name: options.name } : {}),
    ...(options.qstashUrl
      ? { qstash: { url: options.qstashUrl, maxAgeSeconds: options.qstashMaxAgeSeconds ?? 86_400 } }
      : {}),
  });
  const store = options.store ?? new InMemoryActionStore();
  const metrics = createAgentMetrics({ processMetrics: false });
  const reports = createReportSender({
    reportUrl: options.reportUrl,
    secret: options.secret,
    agent: config.name,
    log: silentLogger,
    initialDelayMs: 1,
    maxDelayMs: 10,
    onFailure: () => metrics.reportDeliveryFailed(),
  });
  const runner = new ActionRunner({
    config,
    executors: new Map([[options.executor.kind, options.executor]]),
    store,
    reports,
    log: silentLogger,
    metrics,
    ...(options.now ? { now: options.now } : {}),
  });
  const leadership = options.leadership ?? alwaysLeader;
  const unfollow = followLeadership(leadership, runner, silentLogger, metrics);
  const app = createAgentApp({
    config,
    mode: "sandbox",
    version: "test",
    readiness: async () => leaseReadiness(leadership, async () => true),
    metrics,
    actions: {
      runner,
      leadership,
      secrets: [options.secret, ...(options.nextSecret ? [options.nextSecret] : [])],
      ...(options.qstash ? { qstash: options.qstash } : {}),
      ...(options.now ? { now: options.now } : {}),
      log: silentLogger,
    },
  });
  const server = await new Promise<ServerType>((resolve) => {
    const s = serve({ fetch: app.fetch, hostname: "127.0.0.1", port: 0 }, () => resolve(s));
  });
  const { port } = server.address() as AddressInfo;
  // With QStash keys the agent requires qstash.url (the JWT's `sub`): by default its own
  // `POST /v1/actions`, known only now that the port is (the app reads config per request).
  if (options.qstash && !options.qstashUrl) {
    config.qstash = {
      url: `http://127.0.0.1:${port}/v1/actions`,
      maxAgeSeconds: options.qstashMaxAgeSeconds ?? 86_400,
    };
  }
  return {
    url: `http://127.0.0.1:${port}`,
    app,
    runner,
    store,
    metrics,
    close: async () => {
      unfollow();
      await runner.abortAll("test over");
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A Leadership a test flips by hand. */
export function stubLeadership(
  initial: boolean,
  holder = "other-replica",
): Leadership & { set(leader: boolean): void } {
  let leader = initial;
  const listeners = new Set<(s: LeadershipState) => void>();
  const state = (): LeadershipState =>
    leader
      ? { leader, holder: "self", detail: "holding the Lease" }
      : { leader, holder, detail: `standing by; ${holder} holds the Lease` };
  return {
    isLeader: () => leader,
    state,
    onChange: (l) => {
      listeners.add(l);
      return () => listeners.delete(l);
    },
    stop: async () => {},
    set: (v) => {
      leader = v;
      for (const l of listeners) l(state());
    },
  };
}
