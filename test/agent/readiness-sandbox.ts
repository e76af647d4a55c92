/**
 * One sandbox with a target of every executor kind and a plan with a step of every kind, for the
 * readiness tests: the simulated
 * cluster (fake API over real HTTP, simulated operator, node control plane, workload controllers,
 * make-mirror synchronizer) and the real servers its config names (BIND with a TSIG key, a primary
 * and a standby etcd), as `npm start` runs them. Readiness runs on a clock the test moves.
 * The plan's objects (namespace `shop`) are created as a person would with kubectl, and its http
 * step's endpoint is a local server that must never receive a request.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { createEtcdClient } from "../../agent/etcd/client.ts";
import { silentLogger } from "../../agent/log.ts";
import { type AgentMetrics, createAgentMetrics } from "../../agent/metrics.ts";
import { createReadiness, type Readiness, type ReadinessOptions } from "../../agent/readiness/runner.ts";
import { createSandboxFaults, type SandboxFaults } from "../../agent/readiness/sandbox-faults.ts";
import { namedPath } from "../../agent/sandbox/bind-server.ts";
import { type SandboxCluster, startSandboxCluster } from "../../agent/sandbox/cluster.ts";
import { requireEtcdBinaries } from "../../agent/sandbox/etcd-server.ts";
import { freePorts } from "../../agent/sandbox/free-port.ts";
import { type LocalServers, startLocalServers } from "../../agent/sandbox/local-servers.ts";
import { type AgentConfig, AgentConfigSchema, type Side } from "../../shared/config.ts";
import type { ReadinessReport, SideReadiness } from "../../shared/protocol.ts";
import { eventually } from "../support/etcd.ts";

export const TSIG_SECRET = Buffer.from("readiness-sandbox-tsig-key-32byt").toString("base64");
export const HEARTBEAT_KEY = "/turnout/heartbeat";
/** The plan target of the sandbox and the names of its steps. */
export const PLAN = "shop-plan";
export const LB_TOKEN = "readiness-sandbox-lb-token";

/** A plan element as written in a config: a step `{name, <kind>: {…}}` or `{parallel: [steps]}`. */
export interface PlanEntry {
  name?: string;
  parallel?: PlanEntry[];
  [kind: string]: unknown;
}

/**
 * The plan's steps (toward either side): one of each kind, a parallel group among them, on the
 * objects of `namespace` ({@link seedPlanObjects}); the routeSwap step only when `routes` are given.
 */
export function shopPlan(lbUrl: string, routes?: unknown, namespace = "shop"): { kind: "plan"; steps: PlanEntry[] } {
  return {
    kind: "plan",
    steps: [
      {
        name: "scale-up",
        scale: {
          kind: "Deployment",
          namespace,
          name: "web-secondary",
          replicas: { primary: 1, secondary: 3 },
        },
      },
      {
        name: "switch-config",
        kube: {
          apiVersion: "v1",
          kind: "ConfigMap",
          namespace,
          name: "orders-db",
          patch: { primary: { data: { DATABASE_HOST: "pg-dc1" } }, secondary: { data: { DATABASE_HOST: "pg-dc2" } } },
          expect: {
            primary: { "{.data.DATABASE_HOST}": "pg-dc1" },
            secondary: { "{.data.DATABASE_HOST}": "pg-dc2" },
          },
        },
      },
      {
        parallel: [
          { name: "restart-app", restart: { workloads: [{ kind: "Deployment", namespace, name: "orders" }] } },
          {
            name: "gate",
            check: {
              kube: {
                apiVersion: "v1",
                kind: "ConfigMap",
                namespace,
                name: "gate",
                waitFor: { "{.data.open}": "yes" },
              },
            },
          },
        ],
      },
      {
        name: "lb-pool",
        http: {
          method: "PUT",
          url: `${lbUrl}/v1/pools/${namespace}`,
          headersEnv: { Authorization: "LB_TOKEN" },
          body: { primary: { pool: "dc-1" }, secondary: { pool: "dc-2" } },
        },
      },
      ...(routes === undefined ? [] : [{ name: "swap-routes", routeSwap: { routes } }]),
      { name: "settle", wait: { seconds: 5 } },
      { name: "go-ahead", approval: { message: "Shift the shop?" } },
    ],
  };
}

/** A step of the plan, parallel groups looked into (for plans of one step kind). */
export function shopStep(name: string): PlanEntry {
  const steps = shopPlan("http://127.0.0.1:1").steps.flatMap((e) => e.parallel ?? [e]);
  const step = steps.find((e) => e.name === name);
  if (!step) throw new Error(`the shop plan has no step ${name}`);
  return step;
}

export interface ReadinessSandbox {
  config: AgentConfig;
  cluster: SandboxCluster;
  servers: LocalServers;
  ports: { dns: number; primary: number; standby: number };
  /** Requests the plan's http endpoint received (readiness must send none). */
  lbRequests: string[];
  env: Record<string, string>;
  faults: SandboxFaults;
  metrics: AgentMetrics;
  /** The readiness clock (unix ms); tests move it. */
  clock: { t: number };
  readiness(overrides?: Partial<ReadinessOptions>): Readiness;
  /** Writes the heartbeat on the primary as a writer would, at the readiness clock, and waits for the mirror to copy it. */
  beat(): Promise<void>;
  stop(): Promise<void>;
}

export async function startReadinessSandbox(): Promise<ReadinessSandbox> {
  if (namedPath() === undefined) throw new Error("BIND's `named` is not installed: run `npm run setup`");
  requireEtcdBinaries();
  const [d = 0, p = 0, s = 0] = await freePorts(3);
  const lbRequests: string[] = [];
  const lb: Server = createServer((req, res) => {
    lbRequests.push(`${req.method} ${req.url}`);
    res.end("{}");
  });
  await new Promise<void>((resolve) => lb.listen(0, "127.0.0.1", resolve));
  const lbUrl = `http://127.0.0.1:${(lb.address() as AddressInfo).port}`;
  const egressRoutes = {
    primary: { name: "primary", destinations: ["34.160.111.145"], gateway: "10.116.0.4" },
    secondary: { name: "secondary", destinations: ["34.160.111.145"], gateway: "10.116.0.12" },
  };
  const dnsServer = `127.0.0.1:${d}`;
  const dns = (record: string, primary: string, secondary: string) => ({
    kind: "dns-flip",
    provider: {
      type: "rfc2136",
      server: dnsServer,
      zone: "example.test",
      tsig: { name: "turnout-key", algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
    },
    record: { name: record, type: "A", ttl: 60 },
    values: { primary: [primary], secondary: [secondary] },
    verify: { servers: [dnsServer], timeoutSeconds: 5 },
  });
  const config = AgentConfigSchema.parse({
    reportUrl: "http://127.0.0.1:1/v1/agent/reports",
    targets: {
      "egress-gw": { kind: "route-swap", routes: egressRoutes },
      "bootstrap-dns": dns("www.example.test", "172.30.41.193", "172.30.41.194"),
      "platform-dns": dns("platform.example.test", "172.30.50.10", "172.30.51.10"),
      "global-dr": {
        kind: "etcd-sync-teardown",
        etcd: {
          primary: { endpoints: [`http://127.0.0.1:${p}`] },
          standby: { endpoints: [`http://127.0.0.1:${s}`] },
          prefixes: ["/registry/"],
          heartbeat: { key: HEARTBEAT_KEY, maxLagSeconds: 30 },
        },
        sync: { namespace: "cpaas-system", name: "etcd-sync" },
        dns: "platform-dns",
        restart: [{ kind: "Deployment", namespace: "cpaas-system", name: "cluster-transformer" }],
      },
      "dc-nodes": {
        kind: "node-fence",
        nodes: {
          primary: { selector: "topology.kubernetes.io/zone=dc-1" },
          secondary: { selector: "topology.kubernetes.io/zone=cloud-a" },
        },
        workloads: [{ kind: "StatefulSet", namespace: "db", name: "postgres" }],
      },
      // The plan's routeSwap step acts on egress-gw's routes, which the sandbox creates for it.
      [PLAN]: shopPlan(lbUrl, egressRoutes),
    },
  });
  const env = { TSIG_SECRET, LB_TOKEN };
  const servers = await startLocalServers(config, env, silentLogger);
  let cluster: SandboxCluster;
  try {
    cluster = await startSandboxCluster(config, { operatorDelayMs: 10 });
  } catch (err) {
    await servers.stop();
    throw err;
  }
  seedPlanObjects(cluster);
  await eventually(async () => planWorkloadsReady(cluster), "the plan's Deployments Ready");
  const clock = { t: Date.now() };
  const metrics = createAgentMetrics({ processMetrics: false });
  const faults = createSandboxFaults({
    config,
    store: cluster.api.store,
    kubeConfig: cluster.kubeConfig,
    ...(cluster.controlPlane ? { controlPlane: cluster.controlPlane } : {}),
    localServers: () => servers.summary,
  });
  const primary = createEtcdClient({ endpoints: [`http://127.0.0.1:${p}`] });
  const standby = createEtcdClient({ endpoints: [`http://127.0.0.1:${s}`] });
  const sandbox: ReadinessSandbox = {
    config,
    cluster,
    servers,
    ports: { dns: d, primary: p, standby: s },
    lbRequests,
    env,
    faults,
    metrics,
    clock,
    readiness: (overrides = {}) =>
      createReadiness({
        config,
        kubeConfig: cluster.kubeConfig,
        log: silentLogger,
        env,
        metrics,
        clock: { now: () => clock.t, sleep: () => new Promise(() => {}) },
        ...overrides,
      }),
    beat: async () => {
      const value = String(clock.t);
      await primary.put(HEARTBEAT_KEY).value(value).exec();
      await eventually(async () => (await standby.get(HEARTBEAT_KEY).string()) === value, "heartbeat mirrored");
    },
    stop: async () => {
      primary.close();
      standby.close();
      await cluster.stop();
      await servers.stop();
      await new Promise((resolve) => lb.close(resolve));
    },
  };
  await sandbox.beat();
  return sandbox;
}

const DEPLOYMENTS = { group: "apps", resource: "deployments" };
const CONFIGMAPS = { resource: "configmaps" };
const PLAN_DEPLOYMENTS = ["web-secondary", "orders"];

/** The objects the plan acts on, created as `kubectl apply` would (the primary is active). */
export function seedPlanObjects(cluster: SandboxCluster, namespace = "shop"): void {
  const { store } = cluster.api;
  store.create({ resource: "namespaces" }, { metadata: { name: namespace } });
  for (const name of PLAN_DEPLOYMENTS) {
    const labels = { app: name };
    store.create(DEPLOYMENTS, {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace },
      spec: {
        replicas: 1,
        selector: { matchLabels: labels },
        template: { metadata: { labels }, spec: { containers: [{ name, image: "sandbox.invalid/web:1" }] } },
      },
    });
  }
  const configMap = (name: string, data: Record<string, string>) =>
    store.create(CONFIGMAPS, { apiVersion: "v1", kind: "ConfigMap", metadata: { name, namespace }, data });
  configMap("orders-db", { DATABASE_HOST: "pg-dc1" });
  configMap("gate", { open: "yes" });
}

/** Whether the plan's Deployments in `namespace` are Ready (their controllers make them so). */
export function planWorkloadsReady(cluster: SandboxCluster, namespace = "shop"): boolean {
  return PLAN_DEPLOYMENTS.every((name) => {
    const status = cluster.api.store.get(DEPLOYMENTS, namespace, name)?.status as
      | { readyReplicas?: number }
      | undefined;
    return status?.readyReplicas === 1;
  });
}

/** One target's readiness toward `to` in a report; throws, showing the report, when it is missing. */
export function side(report: ReadinessReport, target: string, to: Side = "secondary"): SideReadiness {
  const s = report[target]?.[to];
  if (!s) throw new Error(`no readiness of ${target} toward ${to} in ${JSON.stringify(report)}`);
  return s;
}

/** The names of the destination checks that failed. */
export const failing = (s: SideReadiness) => s.checks.filter((c) => c.destination && !c.ok).map((c) => c.name);

/** The value of one series in Prometheus text, or undefined when it is not exposed. */
export function metricValue(text: string, name: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(",");
  for (const line of text.split("\n")) {
    const m = /^([a-z_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const got = (m[2] ?? "").split(",").sort().join(",");
    if (got === want) return Number(m[3]);
  }
  return undefined;
}
