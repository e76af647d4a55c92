/**
 * A simulated DOKS cluster for route-swap tests and the bench: the fake Kubernetes API over real
 * HTTP, the simulated DaemonSet controller (one operator pod per node) and the simulated
 * static-route operator pods; plus a StepContext and a runner for the executor's steps.
 */

import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";
import { STATIC_ROUTE, type StaticRouteObject, StaticRouteObjectSchema } from "../../agent/executors/route-swap.ts";
import { type FakeKubeApi, type RecordedRequest, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { isJsonObject } from "../../agent/sandbox/kube-patch.ts";
import {
  type OperatorNodeMode,
  type StaticRouteOperators,
  startStaticRouteOperators,
} from "../../agent/sandbox/static-route-operator.ts";
import { startWorkloadControllers, type WorkloadControllers } from "../../agent/sandbox/workloads.ts";
import { type RouteSwapTarget, RouteSwapTargetSchema, type Side } from "../../shared/config.ts";
import type { ActionRequest } from "../../shared/protocol.ts";

export const OPERATOR_NS = "static-routes";
export const OPERATOR_DS = "k8s-staticroute-operator";
const SR = { group: STATIC_ROUTE.group, version: STATIC_ROUTE.version, resource: STATIC_ROUTE.plural };

/** `n` distinct /32 destinations in 100.64.0.0/10 (CGNAT space; never a default route). */
export function destinations(n: number, offset = 0): string[] {
  return Array.from({ length: n }, (_, i) => {
    const k = i + offset;
    return `100.${64 + ((k >> 16) & 63)}.${(k >> 8) & 255}.${k & 255}/32`;
  });
}

/** The egress-gw routes of the tests (unparsed config): primary via 10.116.0.4, secondary via 10.116.0.12. */
export function swapRoutes(dests = ["34.160.111.145"]) {
  return {
    primary: { name: "primary", destinations: dests, gateway: "10.116.0.4" },
    secondary: { name: "secondary", destinations: dests, gateway: "10.116.0.12" },
  };
}

/** A route-swap target (defaults filled by the real schema). */
export function routeSwapTarget(overrides: Record<string, unknown> = {}, dests = ["34.160.111.145"]): RouteSwapTarget {
  return RouteSwapTargetSchema.parse({
    kind: "route-swap",
    routes: swapRoutes(dests),
    settleSeconds: 5,
    ...overrides,
  });
}

let epoch = 1000;
/** An ActionRequest for a swap `from` → `to`. */
export function swapAction(from: Side, to: Side, extra: Partial<ActionRequest> = {}): ActionRequest {
  epoch++;
  return {
    id: `egress-gw:${epoch}`,
    target: "egress-gw",
    kind: from === "primary" ? "failover" : "failback",
    from,
    to,
    dryRun: false,
    force: false,
    reason: "test",
    issuedAt: new Date().toISOString(),
    ...extra,
  };
}

export interface SwapCluster {
  api: FakeKubeApi;
  workloads: WorkloadControllers;
  operators: StaticRouteOperators;
  nodes: string[];
  /** The stored StaticRoute, or undefined. */
  route(name: string): StaticRouteObject | undefined;
  /** Creates a StaticRoute as a person would (kubectl apply) and waits until every node has it Ready. */
  seedRoute(name: string, dests: string[], gateway: string): Promise<void>;
  /** Waits (event-driven on the store's watch) until `check` holds, or fails after `ms`. */
  until(check: () => boolean, ms?: number, what?: string): Promise<void>;
  /** Requests the agent sent that write StaticRoutes (DELETE, server-side apply). Operators never send these. */
  agentRouteWrites(): RecordedRequest[];
  /** Every write request (POST/PUT/PATCH/DELETE) recorded so far. */
  writes(): RecordedRequest[];
  close(): Promise<void>;
}

export interface SwapClusterOptions {
  nodes?: string[];
  delayMs?: number;
  modes?: Record<string, OperatorNodeMode>;
  /** The operators' reporting style (see startStaticRouteOperators). */
  reporting?: "per-node" | "kopf";
}

/** Starts the fake API, the DaemonSet with one operator pod per node, and the operator simulation. */
export async function startSwapCluster(options: SwapClusterOptions = {}): Promise<SwapCluster> {
  const nodes = options.nodes ?? ["node-1", "node-2", "node-3"];
  const api = await startFakeKubeApi({ requestLimit: 200_000, historyLimit: 20_000, bookmarkIntervalMs: 2000 });
  const store = api.store;
  const workloads = startWorkloadControllers(store, { nodes });
  store.create({ resource: "namespaces" }, { metadata: { name: OPERATOR_NS } });
  store.create(
    { group: "apps", resource: "daemonsets" },
    {
      metadata: { name: OPERATOR_DS, namespace: OPERATOR_NS },
      spec: {
        selector: { matchLabels: { name: OPERATOR_DS } },
        template: {
          metadata: { labels: { name: OPERATOR_DS } },
          spec: {
            hostNetwork: true,
            containers: [{ name: "operator", image: "digitalocean/k8s-staticroute-operator" }],
          },
        },
      },
    },
  );
  await workloads.settled();
  const operators = await startStaticRouteOperators({
    kubeConfig: api.kubeConfig(),
    namespace: OPERATOR_NS,
    daemonSet: OPERATOR_DS,
    delayMs: options.delayMs ?? 200,
    modes: options.modes,
    reporting: options.reporting,
  });

  const route = (name: string): StaticRouteObject | undefined => {
    const o = store.get(SR, undefined, name);
    return o ? StaticRouteObjectSchema.parse(o) : undefined;
  };

  const until = (check: () => boolean, ms = 10_000, what = "condition"): Promise<void> =>
    new Promise((resolve, reject) => {
      if (check()) return resolve();
      const timer = setTimeout(() => {
        off();
        offEvents();
        reject(new Error(`timed out after ${ms} ms waiting for ${what}`));
      }, ms);
      const poke = () => {
        if (!check()) return;
        clearTimeout(timer);
        off();
        offEvents();
        resolve();
      };
      const off = store.watch(SR, undefined, poke, { resourceVersion: undefined });
      const offEvents = store.watch({ resource: "events" }, undefined, poke);
    });

  return {
    api,
    workloads,
    operators,
    nodes,
    route,
    until,
    async seedRoute(name, dests, gateway) {
      store.create(SR, {
        apiVersion: "networking.digitalocean.com/v1",
        kind: "StaticRoute",
        metadata: { name },
        spec: { destinations: dests, gateway },
      });
      // Every node reported success: one Event per node, or per node and destination (kopf style).
      const needed = options.reporting === "kopf" ? nodes.length * dests.length : nodes.length;
      await until(
        () => {
          const uid = route(name)?.metadata.uid;
          const ok = store
            .list({ resource: "events" }, "default")
            .filter(
              (e) =>
                e.reason === "RouteCreateSucceeded" && isJsonObject(e.involvedObject) && e.involvedObject.uid === uid,
            );
          return uid !== undefined && ok.length >= needed;
        },
        10_000,
        `seeded route ${name} reported on every node`,
      );
      await operators.idle(); // status writes and finalizer patches done too
    },
    agentRouteWrites: () =>
      api.requests.filter(
        (r) =>
          r.path.startsWith("/apis/networking.digitalocean.com/v1/staticroutes") &&
          (r.method === "DELETE" ||
            (r.method === "PATCH" && (r.contentType ?? "").startsWith("application/apply-patch"))),
      ),
    writes: () => api.requests.filter((r) => r.method !== "GET"),
    async close() {
      await operators.stop();
      workloads.stop();
      await api.close();
    },
  };
}

/**
 * An IP-echo service (like ifconfig.me) on 127.0.0.1: answers the public NAT address of the gateway
 * that node-1's simulated routing table uses for `probe`, as a pod on that node would see it.
 */
export async function startEgressEcho(
  operators: StaticRouteOperators,
  natByGateway: Record<string, string>,
  probe = "34.160.111.145",
  node = "node-1",
): Promise<{ url: string; close(): Promise<void> }> {
  const server = createServer((_req, res) => {
    const entry = operators.table(node).find((e) => e.destination === probe || e.destination === `${probe}/32`);
    res.end(`${entry ? (natByGateway[entry.gateway] ?? "unknown") : "198.51.100.1"}\n`);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/ip`,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** A request that passed through {@link startRecordingProxy}. */
export interface ProxiedRequest {
  method: string;
  path: string;
  query: Record<string, string>;
  contentType: string | undefined;
}

/** What an API request touches, for comparing recorded requests with RBAC rules. */
export interface ApiTarget {
  /** "" for the core group. */
  group: string;
  /** "*" for cluster-scoped requests. */
  namespace: string;
  resource: string;
  name: string | undefined;
  /** e.g. "scale" or "status" (`…/deployments/<name>/scale`). */
  subresource?: string;
}

/** Parses `/api/v1/...` and `/apis/<group>/<version>/...` request paths. */
export function apiTargetOf(path: string): ApiTarget {
  const [root, ...rest] = path.split("/").filter(Boolean);
  const group = root === "api" ? "" : (rest.shift() ?? "");
  rest.shift(); // version
  let namespace = "*";
  if (rest[0] === "namespaces" && rest.length >= 3) {
    namespace = rest[1] ?? "";
    rest.splice(0, 2);
  }
  const [resource = "", name, subresource] = rest;
  return { group, namespace, resource, name, ...(subresource ? { subresource } : {}) };
}

/**
 * A forwarding proxy in front of the fake API so one client's requests (the agent's) can be told
 * apart from the simulated operators', which share the fake server's single token.
 */
export async function startRecordingProxy(
  api: FakeKubeApi,
): Promise<{ kubeConfig(): KubeConfig; requests: ProxiedRequest[]; close(): Promise<void> }> {
  const requests: ProxiedRequest[] = [];
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", async () => {
      const url = new URL(req.url ?? "/", api.url);
      const contentType = req.headers["content-type"];
      requests.push({
        method: req.method ?? "GET",
        path: url.pathname,
        query: Object.fromEntries(url.searchParams),
        contentType,
      });
      const body = chunks.length ? Buffer.concat(chunks) : undefined;
      const upstream = await fetch(url, {
        method: req.method,
        headers: {
          authorization: req.headers.authorization ?? "",
          ...(contentType ? { "content-type": contentType } : {}),
        },
        body: req.method === "GET" || req.method === "HEAD" ? undefined : body,
      });
      res.writeHead(upstream.status, { "content-type": upstream.headers.get("content-type") ?? "application/json" });
      res.end(Buffer.from(await upstream.arrayBuffer()));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    requests,
    kubeConfig() {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [{ name: "proxy", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
        users: [{ name: "agent", token: api.token ?? "" }],
        contexts: [{ name: "proxy", cluster: "proxy", user: "agent" }],
        currentContext: "proxy",
      });
      return kc;
    },
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Route-swap tests take MapMemory from here with the rest of the cluster helpers. */
export { MapMemory } from "./map-memory.ts";

/** Route-swap tests run steps with a real clock through the shared runner. */
export { runSteps, type StepRun } from "./run-steps.ts";
