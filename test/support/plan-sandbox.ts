/**
 * A sandbox for plan tests: the fake Kubernetes API serving HTTPRoutes and a CloudNativePG-like
 * Cluster kind beside the built-ins, the simulated workload controllers, and an ActionRunner with
 * the real plan executor whose reports are collected in memory. The clock is the test's: sleeping
 * advances it (and yields, so the simulated controllers move), so minutes of waiting take none.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import type { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { type ActionStore, InMemoryActionStore } from "../../agent/action-store.ts";
import { silentLogger } from "../../agent/log.ts";
import type { PlanClusters } from "../../agent/plan/clusters.ts";
import { createPlanExecutor } from "../../agent/plan/plan-executor.ts";
import type { ReportSender } from "../../agent/report-sender.ts";
import { ActionRunner, executorRegistry } from "../../agent/runner.ts";
import { startCnpgController } from "../../agent/sandbox/cnpg-controller.ts";
import {
  type FakeKubeApi,
  type KubeObject,
  type ResourceType,
  startFakeKubeApi,
} from "../../agent/sandbox/fake-kube-api.ts";
import { selfSignedCertificate, writeKubeconfig } from "../../agent/sandbox/kubeconfig.ts";
import { startWorkloadControllers, type WorkloadControllers } from "../../agent/sandbox/workloads.ts";
import { type AgentConfig, AgentConfigSchema } from "../../shared/config.ts";
import { type ActionReport, type ActionRequest, ActionRequestSchema } from "../../shared/protocol.ts";
import { requireBinary } from "./monitoring-process.ts";

const execFileAsync = promisify(execFile);

/** A CloudNativePG-like Cluster kind served without its CRD, for tests that write its status themselves. */
const BARE_CNPG: ResourceType = {
  group: "postgresql.cnpg.io",
  version: "v1",
  resource: "clusters",
  kind: "Cluster",
  namespaced: true,
  subresources: ["status"],
};

export interface PlanCluster {
  api: FakeKubeApi;
  controllers: WorkloadControllers;
  /** Creates every object of a YAML file (namespaces first, as kubectl apply would need). */
  apply(yamlFile: string): void;
  /** The write requests the API received (PATCH/PUT/POST/DELETE), ConfigMaps of the action store excluded. */
  writes(): { method: string; path: string; dryRun: boolean; body: string }[];
  /** Runs kubectl (Debian's kubernetes-client) against this cluster's kubeconfig; needs `kubectl: true`. */
  kubectl(...args: string[]): Promise<string>;
  close(): Promise<void>;
}

const PLURAL: Record<string, { group: string; resource: string }> = {
  Namespace: { group: "", resource: "namespaces" },
  Deployment: { group: "apps", resource: "deployments" },
  StatefulSet: { group: "apps", resource: "statefulsets" },
  ConfigMap: { group: "", resource: "configmaps" },
  CustomResourceDefinition: { group: "apiextensions.k8s.io", resource: "customresourcedefinitions" },
  HTTPRoute: { group: "gateway.networking.k8s.io", resource: "httproutes" },
  Cluster: { group: "postgresql.cnpg.io", resource: "clusters" },
};

/**
 * Starts one simulated cluster. `cnpg: "operator"`: Clusters are served once the example's CRD is
 * applied, and the sandbox's simulated operator answers them; `"bare"` (default): the kind is
 * served from the start and nobody writes its status.
 */
export async function startPlanCluster(
  options: { cnpg?: "operator" | "bare"; kubectl?: boolean } = {},
): Promise<PlanCluster> {
  const operator = options.cnpg === "operator";
  // kubectl sends its bearer token only over TLS, so a cluster read with kubectl also serves HTTPS.
  const tls = options.kubectl ? selfSignedCertificate() : undefined;
  const api = await startFakeKubeApi({
    resources: operator ? [] : [BARE_CNPG],
    namespaces: ["default", "turnout"],
    ...(tls ? { tls } : {}),
  });
  const dir = tls ? mkdtempSync(join(tmpdir(), "turnout-plan-kubectl-")) : undefined;
  const kubeconfig = dir ? join(dir, "kubeconfig") : undefined;
  if (tls && kubeconfig && api.httpsUrl) writeKubeconfig(kubeconfig, api.httpsUrl, tls.cert, api.token);
  const controllers = startWorkloadControllers(api.store, { rolloutDelayMs: 20 });
  const cnpg = operator ? startCnpgController(api.store, { delayMs: 20 }) : undefined;
  return {
    api,
    controllers,
    apply(yamlFile) {
      const docs = parseAllDocuments(readFileSync(yamlFile, "utf8")).map((d) => d.toJSON() as KubeObject);
      const first = (o: KubeObject) => (o.kind === "Namespace" || o.kind === "CustomResourceDefinition" ? 0 : 1);
      for (const obj of [...docs].sort((a, b) => first(a) - first(b))) {
        const type = PLURAL[obj.kind ?? ""];
        if (!type) throw new Error(`plan-sandbox: no resource for kind ${obj.kind}`);
        api.store.create(type, obj);
      }
    },
    writes: () =>
      api.requests
        .filter((r) => r.method !== "GET" && !r.path.includes("/configmaps/turnout-"))
        .map((r) => ({ method: r.method, path: r.path, dryRun: r.query.dryRun === "All", body: r.body })),
    async kubectl(...args) {
      if (!kubeconfig || !dir) throw new Error("plan-sandbox: start the cluster with { kubectl: true }");
      const binary = requireBinary(process.env.KUBECTL ?? "/usr/bin/kubectl", "kubernetes-client");
      const { stdout } = await execFileAsync(
        binary,
        ["--kubeconfig", kubeconfig, "--cache-dir", join(dir, "kube-cache"), ...args],
        { timeout: 20_000 },
      );
      return stdout;
    },
    close: async () => {
      cnpg?.stop();
      controllers.stop();
      await api.close();
      if (dir) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A clock whose sleeps advance it at once, after letting I/O and timers of other parts run. */
export function steppingClock(start = Date.parse("2026-11-22T10:00:00.000Z")) {
  let t = start;
  const slept: number[] = [];
  return {
    now: () => t,
    sleep: async (ms: number, signal?: AbortSignal) => {
      if (signal?.aborted) throw signal.reason;
      slept.push(ms);
      t += ms;
      await new Promise((r) => setTimeout(r, 2));
      if (signal?.aborted) throw signal.reason;
    },
    slept,
  };
}

/** A clock that moves only when the test says: sleepers wait until `advance` passes their time. */
export function manualClock(start = Date.parse("2026-11-22T10:00:00.000Z")) {
  let t = start;
  const sleepers: { until: number; resolve: () => void }[] = [];
  return {
    now: () => t,
    sleep: (ms: number, signal?: AbortSignal) =>
      new Promise<void>((resolve, reject) => {
        if (signal?.aborted) return reject(signal.reason);
        const s = { until: t + ms, resolve };
        sleepers.push(s);
        signal?.addEventListener("abort", () => {
          sleepers.splice(sleepers.indexOf(s), 1);
          reject(signal.reason);
        });
      }),
    /** Moves the clock forward, waking every sleeper whose time came. */
    async advance(ms: number) {
      t += ms;
      for (const s of sleepers.filter((x) => x.until <= t)) {
        sleepers.splice(sleepers.indexOf(s), 1);
        s.resolve();
      }
      await new Promise((r) => setTimeout(r, 5));
    },
    sleeping: () => sleepers.length,
  };
}

export interface PlanAgent {
  runner: ActionRunner;
  config: AgentConfig;
  reports: ActionReport[];
  store: ActionStore;
  /** Submits an action and resolves with its final report. */
  run(request: Partial<ActionRequest> & { id: string }): Promise<ActionReport>;
  /** Resolves with the first report (sent from now on or before) that matches. */
  waitForReport(match: (r: ActionReport) => boolean, timeoutMs?: number): Promise<ActionReport>;
}

export interface PlanAgentOptions {
  /** The agent config (targets and clusters), parsed with the schema. */
  config: unknown;
  kubeConfig: KubeConfig;
  clock?: { now(): number; sleep(ms: number, signal?: AbortSignal): Promise<void> };
  env?: Record<string, string | undefined>;
  clusters?: PlanClusters;
  store?: ActionStore;
  pollMs?: number;
}

/** An action request for `target` (failover primary → secondary unless overridden). */
export function planAction(overrides: Partial<ActionRequest> & { id: string }): ActionRequest {
  return ActionRequestSchema.parse({
    target: overrides.id.slice(0, overrides.id.lastIndexOf(":")),
    kind: "failover",
    from: "primary",
    to: "secondary",
    issuedAt: "2026-11-22T10:00:00.000Z",
    ...overrides,
  });
}

/** An in-process agent running plans. */
export function planAgent(options: PlanAgentOptions): PlanAgent {
  const config = AgentConfigSchema.parse({
    reportUrl: "http://127.0.0.1:9/v1/agent/reports",
    ...(options.config as object),
  });
  const clock = options.clock ?? steppingClock();
  const reports: ActionReport[] = [];
  const listeners = new Set<() => void>();
  const record = (r: ActionReport) => {
    reports.push(structuredClone(r));
    for (const l of listeners) l();
  };
  const sender: ReportSender = {
    sendOnce: async (r) => {
      record(r);
      return true;
    },
    deliver: async (latest) => {
      const r = latest();
      record(r);
      return r;
    },
  };
  const store = options.store ?? new InMemoryActionStore();
  const runner = new ActionRunner({
    config,
    executors: executorRegistry(
      createPlanExecutor({
        kubeConfig: options.kubeConfig,
        agentConfig: config,
        env: options.env ?? {},
        pollMs: options.pollMs ?? 20,
        ...(options.clusters ? { clusters: options.clusters } : {}),
      }),
    ),
    store,
    reports: sender,
    log: silentLogger,
    now: clock.now,
    sleep: clock.sleep,
  });
  const waitForReport = (match: (r: ActionReport) => boolean, timeoutMs = 15_000) =>
    new Promise<ActionReport>((resolve, reject) => {
      const found = reports.find(match);
      if (found) return resolve(found);
      const timer = setTimeout(() => {
        listeners.delete(check);
        reject(new Error(`no matching report; last: ${JSON.stringify(reports.at(-1))}`));
      }, timeoutMs);
      const check = () => {
        const r = reports.find(match);
        if (!r) return;
        clearTimeout(timer);
        listeners.delete(check);
        resolve(r);
      };
      listeners.add(check);
    });
  return {
    runner,
    config,
    reports,
    store,
    waitForReport,
    async run(overrides) {
      const request = planAction(overrides);
      const result = await runner.submit(request);
      if (result.outcome !== "accepted") throw new Error(`not accepted: ${JSON.stringify(result)}`);
      return waitForReport((r) => r.actionId === request.id && r.status !== "running");
    },
  };
}

/** A plan target config with `steps` (and more keys). */
export function planConfig(steps: unknown[], more: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) {
  return { targets: { shop: { kind: "plan", steps, ...more } }, ...extra };
}
