/**
 * The etcd-sync-teardown executor end to end (runbook C, design §7): two real etcd 3.4 servers, a
 * real `etcdctl make-mirror` backing the synchronizer Deployment of the fake Kubernetes API (so
 * scaling it to zero really stops the sync), a real BIND for the DNS flip.
 */
import { AppsV1Api } from "@kubernetes/client-node";
import type { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InMemoryActionStore } from "../../agent/action-store.ts";
import { queryRecord } from "../../agent/dns/rfc2136.ts";
import { createEtcdClient } from "../../agent/etcd/client.ts";
import { startHeartbeatWriter } from "../../agent/etcd/heartbeat.ts";
import { type DurableMemory, type StepContext, StepError } from "../../agent/executor.ts";
import {
  createEtcdSyncTeardownExecutor,
  type EtcdSyncTeardownDeps,
  RESTARTED_BY,
} from "../../agent/executors/etcd-sync-teardown.ts";
import { silentLogger } from "../../agent/log.ts";
import { createReportSender } from "../../agent/report-sender.ts";
import { ActionRunner } from "../../agent/runner.ts";
import { createEtcdMirrorBackend, type EtcdMirrorBackend } from "../../agent/sandbox/etcd-mirror.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { startWorkloadControllers, type WorkloadControllers } from "../../agent/sandbox/workloads.ts";
import { type AgentConfig, AgentConfigSchema, type EtcdSyncTeardownTarget } from "../../shared/config.ts";
import { type ActionRequest, ActionRequestSchema } from "../../shared/protocol.ts";
import { type BindServer, startBind } from "../support/bind.ts";
import { type EtcdInstance, eventually, loadKeys, startEtcds } from "../support/etcd.ts";
import { processAlive } from "../support/processes.ts";
import { type ReportReceiver, startReportReceiver } from "../support/report-receiver.ts";
import { actionRequest } from "../support/test-executors.ts";

const PRIMARY_VIP = "172.30.41.193";
const STANDBY_VIP = "172.30.41.194";
const NS = "cpaas-system";
const STEPS = ["consistency", "stop-sync", "flip-dns", "restart", "follow-ups"];
const FOLLOW_UPS = [
  "Remove the port-2379 forwarding from both VIPs' load balancers",
  "On the old primary, enable sync in reverse once it is repaired",
];

let bind: BindServer;
let pair: { primary: EtcdInstance; standby: EtcdInstance };
let worldCount = 0;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  const [b, etcds] = await Promise.all([startBind(), startEtcds(["primary", "standby"])]);
  bind = b;
  const [primary, standby] = etcds;
  if (!primary || !standby) throw new Error("etcd pair did not start");
  pair = { primary, standby };
});

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await Promise.all([bind?.stop(), pair?.primary.stop(), pair?.standby.stop()]);
});

/** One isolated DR setup: its own key prefix, DNS name, fake cluster and synchronizer. */
interface World {
  prefix: string;
  record: string;
  api: FakeKubeApi;
  controllers: WorkloadControllers;
  backend: EtcdMirrorBackend;
  config: AgentConfig;
  target: EtcdSyncTeardownTarget;
  p: Etcd3;
  s: Etcd3;
  memory: DurableMemory;
  etcd: { primary: EtcdInstance; standby: EtcdInstance };
}

function workload(name: string, replicas: number) {
  return {
    metadata: { name, namespace: NS },
    spec: {
      replicas,
      serviceName: name,
      selector: { matchLabels: { app: name } },
      template: { metadata: { labels: { app: name } }, spec: { containers: [{ name: "main", image: "busybox" }] } },
    },
  };
}

interface WorldOptions {
  syncAction?: "scale-to-zero" | "delete";
  restart?: { kind: "Deployment" | "StatefulSet" | "DaemonSet"; namespace: string; name: string }[];
  restartTimeoutSeconds?: number;
}

const DEFAULT_RESTART = [
  { kind: "StatefulSet", namespace: NS, name: "elasticsearch" },
  { kind: "Deployment", namespace: NS, name: "cluster-transformer" },
] as const;

async function makeWorld(keys: number, etcd = pair, opts: WorldOptions = {}): Promise<World> {
  worldCount += 1;
  const prefix = `/w${worldCount}/`;
  const record = `dr${worldCount}.${bind.zone}`;
  const r = bind.nsupdate([`update add ${record}. 60 A ${PRIMARY_VIP}`]);
  if (r.status !== 0) throw new Error(`nsupdate failed: ${r.output}`);

  const p = createEtcdClient({ endpoints: [etcd.primary.url] });
  const s = createEtcdClient({ endpoints: [etcd.standby.url] });
  await loadKeys(p, [
    ...Array.from({ length: keys }, (_, i): [string, string] => [
      `${prefix}registry/k${String(i).padStart(5, "0")}`,
      `v${i}`,
    ]),
    // Excluded from the check (the runbook's synchronizer skips some namespaces).
    ...Array.from({ length: 5 }, (_, i): [string, string] => [`${prefix}registry/events/e${i}`, "e"]),
  ]);
  // One real heartbeat write on the primary (no further ticks: the timer is inert).
  const writer = startHeartbeatWriter({
    client: p,
    key: `${prefix}turnout/heartbeat`,
    now: Date.now,
    timer: { schedule: () => () => {} },
  });
  await writer.stop();

  const config = AgentConfigSchema.parse({
    reportUrl: "http://127.0.0.1:1/v1/agent/reports",
    targets: {
      "platform-dns": {
        kind: "dns-flip",
        provider: {
          type: "rfc2136",
          server: bind.server,
          zone: bind.zone,
          tsig: { name: bind.keyName, algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
        },
        record: { name: record, type: "A", ttl: 60 },
        values: { primary: [PRIMARY_VIP], secondary: [STANDBY_VIP] },
        verify: { servers: [bind.server], timeoutSeconds: 5 },
      },
      "global-dr": {
        kind: "etcd-sync-teardown",
        etcd: {
          primary: { endpoints: [etcd.primary.url] },
          standby: { endpoints: [etcd.standby.url] },
          prefixes: [`${prefix}registry/`],
          excludePrefixes: [`${prefix}registry/events/`],
          heartbeat: { key: `${prefix}turnout/heartbeat`, maxLagSeconds: 30 },
          maxMissedKeys: 0,
        },
        sync: { kind: "Deployment", namespace: NS, name: "etcd-sync", action: opts.syncAction ?? "scale-to-zero" },
        dns: "platform-dns",
        restart: opts.restart ?? DEFAULT_RESTART,
        followUps: FOLLOW_UPS,
        allowUnverified: false,
        restartTimeoutSeconds: opts.restartTimeoutSeconds ?? 10,
      },
    },
  });
  const target = config.targets["global-dr"];
  if (target?.kind !== "etcd-sync-teardown") throw new Error("config");

  const api = await startFakeKubeApi();
  const backend = createEtcdMirrorBackend([
    {
      namespace: NS,
      name: "etcd-sync",
      mirror: {
        primaryEndpoints: [etcd.primary.url],
        standbyEndpoints: [etcd.standby.url],
        prefixes: [`${prefix}registry/`, `${prefix}turnout/`],
      },
    },
  ]);
  const controllers = startWorkloadControllers(api.store, { rolloutDelayMs: 20, onScale: backend.onScale });
  cleanups.push(async () => {
    controllers.stop();
    await backend.stop();
    await api.close();
    p.close();
    s.close();
  });
  api.store.create({ resource: "namespaces" }, { metadata: { name: NS } });
  const apps = { group: "apps", resource: "deployments" };
  api.store.create(apps, workload("etcd-sync", 1));
  api.store.create(apps, workload("cluster-transformer", 1));
  api.store.create({ group: "apps", resource: "statefulsets" }, workload("elasticsearch", 2));
  api.store.create({ group: "apps", resource: "daemonsets" }, workload("warlock", 0));
  await controllers.settled();
  await backend.idle();
  // The real mirror's initial copy: every key (events included) and the heartbeat.
  await eventually(
    async () => (await s.getAll().prefix(prefix).count()) === keys + 6,
    `make-mirror copying ${keys + 6} keys`,
  );
  const mem = new Map<string, unknown>();
  const memory: DurableMemory = {
    get: async <T>(key: string) => mem.get(key) as T | undefined,
    set: async (key, value) => {
      mem.set(key, structuredClone(value));
    },
  };
  return { prefix, record, api, controllers, backend, config, target, p, s, memory, etcd };
}

function action(id: number, extra: Partial<ActionRequest> = {}): ActionRequest {
  return ActionRequestSchema.parse(actionRequest("global-dr", id, extra));
}

interface StepResult {
  name: string;
  status: "succeeded" | "skipped" | "failed";
  detail: string;
  code?: string;
}

interface RunOptions {
  /** Overrides of the executor's dependencies. */
  deps?: Partial<EtcdSyncTeardownDeps>;
  /** Sees each step's progress reports. */
  progress?: (step: string, detail: string) => void;
}

/** What the runner hands a step of `a`, on the world's target and memory. */
function stepContext(
  w: World,
  a: ActionRequest,
  how: Pick<StepContext<EtcdSyncTeardownTarget>, "sleep" | "progress">,
): StepContext<EtcdSyncTeardownTarget> {
  return {
    action: a,
    targetName: "global-dr",
    target: w.target,
    log: silentLogger,
    memory: w.memory,
    signal: new AbortController().signal,
    now: Date.now,
    ...how,
  };
}

/** Runs the executor's steps in order, like the runner, stopping at the first failure or after `stopAfter`. */
async function run(w: World, a: ActionRequest, stopAfter?: string, opts: RunOptions = {}): Promise<StepResult[]> {
  const executor = createEtcdSyncTeardownExecutor({
    kubeConfig: w.api.kubeConfig(),
    agentConfig: w.config,
    env: { TSIG_SECRET: bind.secret },
    pollMs: 20,
    verifyIntervalMs: 50,
    etcdCallTimeoutMs: 500,
    ...opts.deps,
  });
  const out: StepResult[] = [];
  for (const step of executor.steps(a, w.target)) {
    const ctx = stepContext(w, a, {
      sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
      progress: (detail) => opts.progress?.(step.name, detail),
    });
    try {
      const outcome = await step.run(ctx);
      out.push({ name: step.name, status: outcome?.status ?? "succeeded", detail: outcome?.detail ?? "" });
    } catch (err) {
      if (!(err instanceof StepError)) throw err;
      out.push({ name: step.name, status: "failed", detail: err.message, code: err.code });
      return out;
    }
    if (step.name === stopAfter) return out;
  }
  return out;
}

const dnsAnswer = async (w: World) => queryRecord(bind.server, w.record, "A");

/** PATCH requests the fake API received for a workload with the rollout-restart content type. */
function restartPatches(w: World, resource: string, name: string): number {
  return w.api.requests.filter(
    (r) =>
      r.method === "PATCH" &&
      r.path.endsWith(`/${resource}/${name}`) &&
      r.contentType === "application/strategic-merge-patch+json" &&
      r.query.dryRun === undefined,
  ).length;
}

function writes(w: World): string[] {
  return w.api.requests.filter((r) => r.method !== "GET").map((r) => `${r.method} ${r.path}`);
}

async function syncReplicas(w: World): Promise<number | undefined> {
  const apps = w.api.kubeConfig().makeApiClient(AppsV1Api);
  return (await apps.readNamespacedDeployment({ namespace: NS, name: "etcd-sync" })).spec?.replicas;
}

async function restartedBy(w: World): Promise<(string | undefined)[]> {
  const apps = w.api.kubeConfig().makeApiClient(AppsV1Api);
  const es = await apps.readNamespacedStatefulSet({ namespace: NS, name: "elasticsearch" });
  const ct = await apps.readNamespacedDeployment({ namespace: NS, name: "cluster-transformer" });
  return [es, ct].map((o) => o.spec?.template?.metadata?.annotations?.[RESTARTED_BY]);
}

describe("etcd-sync-teardown failover", () => {
  it("in sync: stops the real mirror, flips DNS to the standby VIP, restarts each workload once, lists follow-ups", async () => {
    const w = await makeWorld(1000);
    const pids = w.backend.pids(NS, "etcd-sync");
    expect(pids.length).toBe(2);

    // A dry run first: the check runs for real, every write is dryRun=All, nothing changes.
    const dry = await run(w, action(1, { dryRun: true }));
    expect(dry.map((s) => s.status)).toEqual(["succeeded", "succeeded", "succeeded", "succeeded", "succeeded"]);
    expect(dry[0]?.detail).toMatch(
      /^consistent; primary 1000 keys .* standby 1000 keys .* missed 0, differing 0, surplus 0; lag 0\.0 s/,
    );
    expect(dry[1]?.detail).toMatch(/^dry run: .*would be scaled from 1 to 0 \(accepted with dryRun=All\)/);
    expect(writes(w).length).toBeGreaterThan(0);
    expect(w.api.requests.filter((r) => r.method !== "GET").every((r) => r.query.dryRun === "All")).toBe(true);
    expect(await syncReplicas(w)).toBe(1);
    expect(await dnsAnswer(w)).toEqual([PRIMARY_VIP]);
    expect(await restartedBy(w)).toEqual([undefined, undefined]);
    expect(w.backend.running(NS, "etcd-sync")).toBe(true);

    const steps = await run(w, action(2));
    expect(steps.map((s) => [s.name, s.status])).toEqual(STEPS.map((n) => [n, "succeeded"]));
    expect(steps[0]?.detail).toMatch(/^consistent; primary 1000 keys/);
    expect(steps[1]?.detail).toBe(`Deployment ${NS}/etcd-sync scaled from 1 to 0; its pods are gone`);
    expect(steps[2]?.detail).toMatch(
      /^platform-dns \(flipped\): .*1\/1 authoritative server\(s\) answer 172\.30\.41\.194/,
    );
    expect(steps[3]?.detail).toMatch(/2\/2 rollouts complete$/);
    expect(steps[4]?.detail).toBe(`manual follow-ups: [ ] 1. ${FOLLOW_UPS[0]} [ ] 2. ${FOLLOW_UPS[1]}`);

    // The synchronizer is really stopped: the make-mirror processes are gone and a write to the
    // primary no longer reaches the standby.
    await w.backend.idle();
    expect(w.backend.running(NS, "etcd-sync")).toBe(false);
    expect(pids.map(processAlive)).toEqual([false, false]);
    expect(await syncReplicas(w)).toBe(0);
    await w.p.put(`${w.prefix}registry/after-failover`).value("x");
    // A live mirror copies a put in ~30 ms (real-components §2); give a dead one ten times that.
    await new Promise((r) => setTimeout(r, 300));
    expect(await w.s.get(`${w.prefix}registry/after-failover`).string()).toBeNull();

    expect(await dnsAnswer(w)).toEqual([STANDBY_VIP]);
    expect(await restartedBy(w)).toEqual(["global-dr:2", "global-dr:2"]);
    expect(restartPatches(w, "statefulsets", "elasticsearch")).toBe(1);
    expect(restartPatches(w, "deployments", "cluster-transformer")).toBe(1);

    // A later action sees the standby fall behind (the sync is off by design now): it is refused,
    // and the refusal says which action stopped the synchronizer.
    const hbKey = `${w.prefix}turnout/heartbeat`;
    await w.p.put(hbKey).value(String(Number(await w.p.get(hbKey).string()) + 60_000));
    const later = await run(w, action(3));
    expect(later).toEqual([
      expect.objectContaining({ name: "consistency", status: "failed", code: "etcd-inconsistent" }),
    ]);
    expect(later[0]?.detail).toMatch(/sync lag 60\.0 s exceeds maxLagSeconds 30/);
    expect(later[0]?.detail).toMatch(
      /note: global-dr:2 stopped the synchronizer at \S+, so the standby is expected to lag/,
    );
  });

  it("after the mirror stalls: fails at consistency with exact counts and examples, changing nothing; forced proceeds and says so", async () => {
    const w = await makeWorld(200);
    // etcd issue #9569: the mirror stays alive but stops syncing. SIGSTOP does exactly that.
    for (const pid of w.backend.pids(NS, "etcd-sync")) process.kill(pid, "SIGSTOP");
    const hbKey = `${w.prefix}turnout/heartbeat`;
    const standbyBeat = Number(await w.s.get(hbKey).string());
    await loadKeys(w.p, [
      [`${w.prefix}registry/z-after-stall-1`, "x"],
      [`${w.prefix}registry/z-after-stall-2`, "x"],
      [`${w.prefix}registry/z-after-stall-3`, "x"],
      [hbKey, String(standbyBeat + 120_000)],
    ]);
    await w.s.put(`${w.prefix}registry/surplus-on-standby`).value("y");

    const steps = await run(w, action(1));
    expect(steps).toHaveLength(1);
    expect(steps[0]).toMatchObject({ name: "consistency", status: "failed", code: "etcd-inconsistent" });
    const pre = `${w.prefix}registry/`;
    expect(steps[0]?.detail).toContain("3 missed + 0 differing keys exceed maxMissedKeys 0");
    expect(steps[0]?.detail).toContain("sync lag 120.0 s exceeds maxLagSeconds 30");
    expect(steps[0]?.detail).toContain(
      `missed 3 (e.g. ${pre}z-after-stall-1, ${pre}z-after-stall-2, ${pre}z-after-stall-3), differing 0, surplus 1 (e.g. ${pre}surplus-on-standby)`,
    );
    expect(steps[0]?.detail).toContain("primary 203 keys");
    expect(steps[0]?.detail).toContain("standby 201 keys");
    // Nothing changed: no Kubernetes write, DNS on the primary, synchronizer still scaled up.
    expect(writes(w)).toEqual([]);
    expect(await dnsAnswer(w)).toEqual([PRIMARY_VIP]);
    expect(await syncReplicas(w)).toBe(1);
    expect(await restartedBy(w)).toEqual([undefined, undefined]);
    // The surplus key is reported, never deleted.
    expect(await w.s.get(`${pre}surplus-on-standby`).string()).toBe("y");

    const forced = await run(w, action(2, { force: true }));
    expect(forced.map((s) => [s.name, s.status])).toEqual(STEPS.map((n) => [n, "succeeded"]));
    expect(forced[0]?.detail).toMatch(
      /^FORCED: proceeding past 3 missed \+ 0 differing keys exceed maxMissedKeys 0; sync lag 120\.0 s/,
    );
    expect(await dnsAnswer(w)).toEqual([STANDBY_VIP]);
    expect(await syncReplicas(w)).toBe(0);
    await w.backend.idle();
    expect(w.backend.running(NS, "etcd-sync")).toBe(false);
    expect(await restartedBy(w)).toEqual(["global-dr:2", "global-dr:2"]);
  });

  it("primary etcd stopped: unforced fails with 'primary unreachable', forced proceeds", async () => {
    const [primary, standby] = await startEtcds(["lost-primary", "dr-standby"]);
    if (!primary || !standby) throw new Error("etcd pair did not start");
    cleanups.push(async () => {
      await Promise.all([primary.stop(), standby.stop()]);
    });
    const w = await makeWorld(100, { primary, standby });
    await primary.stop();

    const steps = await run(w, action(1));
    expect(steps).toEqual([
      expect.objectContaining({ name: "consistency", status: "failed", code: "primary-unreachable" }),
    ]);
    expect(steps[0]?.detail).toMatch(/^primary unreachable \(/);
    expect(steps[0]?.detail).toMatch(/standby 100 keys/);
    expect(steps[0]?.detail).toMatch(/lag \d+\.\d s \(now − standby heartbeat; max 30 s\)/);
    expect(writes(w)).toEqual([]);
    expect(await dnsAnswer(w)).toEqual([PRIMARY_VIP]);

    const forced = await run(w, action(2, { force: true }));
    expect(forced.map((s) => [s.name, s.status])).toEqual(STEPS.map((n) => [n, "succeeded"]));
    expect(forced[0]?.detail).toMatch(/^FORCED: proceeding past primary unreachable/);
    expect(await dnsAnswer(w)).toEqual([STANDBY_VIP]);
    expect(await syncReplicas(w)).toBe(0);
  });

  it.each(STEPS)("a crash after %s and a re-delivery converge without a second restart", async (crashAfter) => {
    const w = await makeWorld(50);
    const a = action(7);
    const first = await run(w, a, crashAfter);
    expect(first.at(-1)).toMatchObject({ name: crashAfter });
    expect(first.every((s) => s.status !== "failed")).toBe(true);
    // The worst case for idempotency: the runner recorded nothing, so every step runs again.
    const again = await run(w, a);
    expect(again.map((s) => [s.name, s.status])).toEqual(STEPS.map((n) => [n, "succeeded"]));
    const crashIndex = STEPS.indexOf(crashAfter);
    if (crashIndex >= 0) expect(again[0]?.detail).toMatch(/^already checked for this action: consistent/);
    if (crashIndex >= 1)
      expect(again[1]?.detail).toBe(`Deployment ${NS}/etcd-sync already at 0 replicas; its pods are gone`);
    if (crashIndex >= 2) expect(again[2]?.detail).toMatch(/already-converged/);
    if (crashIndex >= 3) expect(again[3]?.detail).toContain(`already restarted by ${a.id}`);
    expect(await dnsAnswer(w)).toEqual([STANDBY_VIP]);
    expect(await syncReplicas(w)).toBe(0);
    expect(await restartedBy(w)).toEqual([a.id, a.id]);
    expect(restartPatches(w, "statefulsets", "elasticsearch")).toBe(1);
    expect(restartPatches(w, "deployments", "cluster-transformer")).toBe(1);
  });

  it("a retry (new action id) does not restart again what the failed action restarted; a later switch does", async () => {
    const w = await makeWorld(20);
    const deployments = { group: "apps", resource: "deployments" };
    // cluster-transformer is missing when the first action reaches it: Elasticsearch is restarted, then the step fails.
    w.api.store.delete(deployments, NS, "cluster-transformer");
    await w.controllers.settled();
    const failed = await run(w, action(1));
    expect(failed.at(-1)).toMatchObject({ name: "restart", status: "failed", code: "workload-not-found" });
    expect(restartPatches(w, "statefulsets", "elasticsearch")).toBe(1);

    w.api.store.create(deployments, workload("cluster-transformer", 1));
    await w.controllers.settled();
    const retry = await run(w, action(2, { reason: "retry of global-dr:1: operator" }));
    expect(retry.map((s) => [s.name, s.status])).toEqual(STEPS.map((n) => [n, "succeeded"]));
    expect(retry[3]?.detail).toContain(`StatefulSet ${NS}/elasticsearch already restarted by global-dr:1`);
    expect(restartPatches(w, "statefulsets", "elasticsearch")).toBe(1);
    expect(await restartedBy(w)).toEqual(["global-dr:1", "global-dr:2"]);

    // The switch finished with the retry: a later action is a new switch and restarts everything.
    const later = await run(w, action(3));
    expect(later.map((s) => [s.name, s.status])).toEqual(STEPS.map((n) => [n, "succeeded"]));
    expect(restartPatches(w, "statefulsets", "elasticsearch")).toBe(2);
    expect(await restartedBy(w)).toEqual(["global-dr:3", "global-dr:3"]);
  });

  it("with action delete: deletes the synchronizer Deployment and waits until its pods are gone", async () => {
    const w = await makeWorld(20, pair, { syncAction: "delete", restart: [] });
    const steps = await run(w, action(1));
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ["consistency", "succeeded"],
      ["stop-sync", "succeeded"],
      ["flip-dns", "succeeded"],
      ["restart", "skipped"],
      ["follow-ups", "succeeded"],
    ]);
    expect(steps[1]?.detail).toBe(`Deployment ${NS}/etcd-sync deleted; its pods are gone`);
    expect(w.api.store.get({ group: "apps", resource: "deployments" }, NS, "etcd-sync")).toBeUndefined();
    await w.backend.idle();
    expect(w.backend.running(NS, "etcd-sync")).toBe(false);
    const again = await run(w, action(1));
    expect(again[1]?.detail).toBe(`Deployment ${NS}/etcd-sync already deleted by global-dr:1; its pods are gone`);
    // A later switch did not delete it: an absent synchronizer is not one it stopped.
    const later = await run(w, action(2));
    expect(later.at(-1)).toMatchObject({ name: "stop-sync", status: "failed", code: "sync-not-found" });
  });

  it("with action delete: a step resumed after the delete still waits for the pods that are terminating", async () => {
    const w = await makeWorld(20, pair, { syncAction: "delete", restart: [] });
    const pods = { resource: "pods" };
    const syncPods = () => w.api.store.list(pods, NS, { labelSelector: "app=etcd-sync" });
    // A finalizer keeps the synchronizer's pod Terminating after the delete, as a grace period does.
    for (const pod of syncPods()) {
      w.api.store.mutate(pods, NS, pod.metadata.name ?? "", (p) => {
        p.metadata.finalizers = ["test.turnout.dev/hold"];
      });
    }
    expect(syncPods()).toHaveLength(1);

    // The first attempt deletes the Deployment and gives up waiting at once (timeout 0).
    const first = await run(w, action(1), undefined, { deps: { stopSyncTimeoutSeconds: 0 } });
    expect(first.at(-1)).toMatchObject({ name: "stop-sync", status: "failed", code: "sync-stop-timeout" });
    expect(first.at(-1)?.detail).toBe(
      `Deployment ${NS}/etcd-sync deleted, but after 0 s 1 pod(s) (1 terminating) remain`,
    );
    expect(w.api.store.get({ group: "apps", resource: "deployments" }, NS, "etcd-sync")).toBeUndefined();

    // Resumed: the Deployment is gone, the pod is not; the step waits until the pod goes.
    let released = false;
    const resumed = await run(w, action(1), "stop-sync", {
      progress: (step, detail) => {
        if (step !== "stop-sync" || released) return;
        expect(detail).toBe(
          `Deployment ${NS}/etcd-sync already deleted by global-dr:1; waiting for 1 pod(s) (1 terminating) to go`,
        );
        released = true;
        for (const pod of syncPods()) {
          w.api.store.mutate(pods, NS, pod.metadata.name ?? "", (p) => {
            p.metadata.finalizers = [];
          });
        }
      },
    });
    expect(released).toBe(true);
    expect(resumed.at(-1)).toEqual({
      name: "stop-sync",
      status: "succeeded",
      detail: `Deployment ${NS}/etcd-sync already deleted by global-dr:1; its pods are gone`,
    });
    expect(syncPods()).toEqual([]);
  });

  it("a synchronizer Deployment that does not exist fails stop-sync, naming it, unless forced", async () => {
    const w = await makeWorld(20, pair, { restart: [] });
    // A typo in the name: the real synchronizer keeps running under its own name.
    const typo: World = { ...w, target: { ...w.target, sync: { ...w.target.sync, name: "etcd-synk" } } };
    const missing = `Deployment ${NS}/etcd-synk not found, so no synchronizer was stopped (check the target's sync kind, namespace and name)`;

    const dry = await run(typo, action(1, { dryRun: true }));
    expect(dry.at(-1)).toMatchObject({ name: "stop-sync", status: "failed", code: "sync-not-found" });
    const steps = await run(typo, action(2));
    expect(steps.map((s) => [s.name, s.status])).toEqual([
      ["consistency", "succeeded"],
      ["stop-sync", "failed"],
    ]);
    expect(steps[1]).toMatchObject({
      code: "sync-not-found",
      detail: `${missing}; force to proceed without stopping it`,
    });
    expect(writes(w)).toEqual([]);
    expect(await dnsAnswer(w)).toEqual([PRIMARY_VIP]);
    expect(w.backend.running(NS, "etcd-sync")).toBe(true);

    const forced = await run(typo, action(3, { force: true }));
    expect(forced.map((s) => s.status)).toEqual(["succeeded", "succeeded", "succeeded", "skipped", "succeeded"]);
    expect(forced[1]?.detail).toBe(`FORCED: proceeding although ${missing}`);
    expect(await dnsAnswer(w)).toEqual([STANDBY_VIP]);
  });

  it("fails at restart when a rollout does not complete within restartTimeoutSeconds, naming the workload", async () => {
    const w = await makeWorld(20, pair, {
      restart: [{ kind: "DaemonSet", namespace: NS, name: "warlock" }],
      restartTimeoutSeconds: 1,
    });
    // One node's pods never turn Ready, so the DaemonSet's rollout cannot finish.
    w.controllers.setNodeReady(w.controllers.nodes[0] ?? "node-1", false);
    const started = Date.now();
    const steps = await run(w, action(1));
    expect(Date.now() - started).toBeLessThan(8000);
    expect(steps.at(-1)).toMatchObject({ name: "restart", status: "failed", code: "restart-timeout" });
    expect(steps.at(-1)?.detail).toMatch(
      new RegExp(`^after 1 s, 1 rollout\\(s\\) incomplete: DaemonSet ${NS}/warlock: 3/3 updated, 2 ready`),
    );
  });

  it("failback checks the reverse direction: the old standby is the source", async () => {
    const w = await makeWorld(5);
    const seen: string[][] = [];
    const executor = createEtcdSyncTeardownExecutor({
      kubeConfig: w.api.kubeConfig(),
      agentConfig: w.config,
      checkConsistency: async (o) => {
        seen.push([...o.primaryEndpoints, ...o.standbyEndpoints]);
        throw new StepError("stop-here", "only the direction matters");
      },
    });
    const a = action(9, { kind: "failback", from: "secondary", to: "primary" });
    const [consistency] = executor.steps(a, w.target);
    await expect(consistency?.run(stepContext(w, a, { sleep: async () => {}, progress: () => {} }))).rejects.toThrow(
      "only the direction matters",
    );
    expect(seen).toEqual([[w.etcd.standby.url, w.etcd.primary.url]]);
  });
});

describe("etcd-sync-teardown through the agent's runner", () => {
  const SECRET = "etcd-runner-secret";
  let receiver: ReportReceiver;
  beforeAll(async () => {
    receiver = await startReportReceiver(SECRET);
  });
  afterAll(async () => {
    await receiver?.close();
  });

  function runner(w: World): ActionRunner {
    return new ActionRunner({
      config: w.config,
      executors: new Map([
        [
          "etcd-sync-teardown",
          createEtcdSyncTeardownExecutor({
            kubeConfig: w.api.kubeConfig(),
            agentConfig: w.config,
            env: { TSIG_SECRET: bind.secret },
            pollMs: 20,
            verifyIntervalMs: 50,
          }),
        ],
      ]),
      store: new InMemoryActionStore(),
      reports: createReportSender({
        reportUrl: receiver.url,
        secret: SECRET,
        log: silentLogger,
        initialDelayMs: 1,
        maxDelayMs: 5,
      }),
      log: silentLogger,
    });
  }

  it("reports the refusal with its code and leaves later steps pending; the forced action succeeds on the standby", async () => {
    const w = await makeWorld(30);
    for (const pid of w.backend.pids(NS, "etcd-sync")) process.kill(pid, "SIGSTOP");
    await w.p.put(`${w.prefix}registry/written-after-stall`).value("x");
    const r = runner(w);
    expect(await r.submit(action(41))).toEqual({ outcome: "accepted", id: "global-dr:41" });
    await r.idle();
    const refused = await r.report("global-dr:41");
    expect(refused).toMatchObject({
      status: "failed",
      error: { code: "etcd-inconsistent" },
      steps: [
        { name: "consistency", status: "failed" },
        { name: "stop-sync", status: "pending" },
        { name: "flip-dns", status: "pending" },
        { name: "restart", status: "pending" },
        { name: "follow-ups", status: "pending" },
      ],
    });
    expect(refused?.error?.message).toContain(`missed 1 (e.g. ${w.prefix}registry/written-after-stall)`);

    await r.submit(action(42, { force: true }));
    await r.idle();
    const forced = await r.report("global-dr:42");
    expect(forced).toMatchObject({ status: "succeeded", activeSide: "secondary" });
    expect(forced?.steps.map((s) => s.status)).toEqual([
      "succeeded",
      "succeeded",
      "succeeded",
      "succeeded",
      "succeeded",
    ]);
    expect(forced?.steps[0]?.detail).toMatch(/^FORCED: /);
    expect(forced?.steps[4]?.detail).toContain(FOLLOW_UPS[0]);
    expect(receiver.reports.filter((x) => x.actionId === "global-dr:42").at(-1)?.status).toBe("succeeded");
    expect(await dnsAnswer(w)).toEqual([STANDBY_VIP]);
  });
});
