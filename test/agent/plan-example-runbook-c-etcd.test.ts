/**
 * examples/plans/runbook-c-etcd.json as shipped (design §11.2, issue 26): runbook C written as a
 * plan of its real steps, `etcdSyncTeardown` then `dnsFlip` then `restart`, run against two real
 * etcd servers (the synchronizer Deployments backed by real `etcdctl make-mirror`s, so scaling one
 * to zero really stops the sync) and a real BIND. Only the machine's addresses are substituted.
 * Drill: nothing changes (both etcd revisions, the zone's serial, every write dry-run); failover:
 * the sync stopped, DNS at the standby VIP, the consumers restarted; failback after a person set
 * up the reverse sync: data written during the outage is back on the primary, DNS at its VIP.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import * as packet from "dns-packet";
import type { Etcd3 } from "etcd3";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { exchange, queryRecord } from "../../agent/dns/rfc2136.ts";
import { createEtcdClient } from "../../agent/etcd/client.ts";
import { createEtcdMirrorBackend, type EtcdMirrorBackend } from "../../agent/sandbox/etcd-mirror.ts";
import { type BindServer, startBind } from "../support/bind.ts";
import { type EtcdInstance, eventually, loadKeys, startEtcds } from "../support/etcd.ts";
import { type PlanCluster, planAgent, startPlanCluster } from "../support/plan-sandbox.ts";
import { processAlive } from "../support/processes.ts";

const dir = join(import.meta.dirname, "../../examples/plans");
const PRIMARY_VIP = "172.30.41.193";
const STANDBY_VIP = "172.30.41.194";
const RECORD = "etcd.example.test";
const apps = { group: "apps", resource: "deployments" };

let bind: BindServer;
let primary: EtcdInstance;
let standby: EtcdInstance;
let cluster: PlanCluster;
let backend: EtcdMirrorBackend;
let p: Etcd3;
let s: Etcd3;

beforeAll(async () => {
  const [b, etcds] = await Promise.all([
    startBind({ zone: "example.test", keyName: "turnout-dns", records: [`etcd IN A ${PRIMARY_VIP}`] }),
    startEtcds(["primary", "standby"]),
  ]);
  bind = b;
  const [ep, es] = etcds;
  if (!ep || !es) throw new Error("etcd pair did not start");
  primary = ep;
  standby = es;
  p = createEtcdClient({ endpoints: [primary.url] });
  s = createEtcdClient({ endpoints: [standby.url] });
  const prefixes = ["/registry/"];
  backend = createEtcdMirrorBackend([
    {
      namespace: "etcd-sync",
      name: "etcd-synchronizer",
      mirror: { primaryEndpoints: [primary.url], standbyEndpoints: [standby.url], prefixes },
    },
    {
      namespace: "etcd-sync",
      name: "etcd-synchronizer-reverse",
      mirror: { primaryEndpoints: [standby.url], standbyEndpoints: [primary.url], prefixes },
    },
  ]);
  await loadKeys(p, [
    ...Array.from({ length: 50 }, (_, i): [string, string] => [`/registry/k${String(i).padStart(3, "0")}`, `v${i}`]),
    ["/registry/events/e0", "e"],
  ]);
  cluster = await startPlanCluster({ onScale: backend.onScale });
  cluster.apply(join(dir, "runbook-c-etcd-objects.yaml"));
  await cluster.controllers.settled();
  await backend.idle();
  await eventually(async () => (await s.getAll().prefix("/registry/").count()) === 51, "the mirror's first copy");
}, 60_000);

afterAll(async () => {
  await cluster?.close();
  await backend?.stop();
  p?.close();
  s?.close();
  await Promise.all([bind?.stop(), primary?.stop(), standby?.stop()]);
});

/** The example as shipped, with this machine's etcd and BIND addresses. */
function exampleConfig(): unknown {
  const text = readFileSync(join(dir, "runbook-c-etcd.json"), "utf8")
    .replaceAll("http://127.0.0.1:2379", primary.url)
    .replaceAll("http://127.0.0.1:22379", standby.url)
    .replaceAll("127.0.0.1:5353", bind.server);
  return JSON.parse(text);
}

async function revision(c: Etcd3): Promise<string> {
  return (await c.get("/registry/k000").exec()).header.revision;
}

async function zoneSerial(): Promise<number> {
  const { response } = await exchange(
    bind.server,
    packet.encode({ type: "query", id: 7, questions: [{ name: "example.test", type: "SOA" }] }),
    2000,
  );
  const soa = packet.decode(response).answers?.find((x) => x.type === "SOA");
  if (soa?.type !== "SOA") throw new Error("no SOA");
  return soa.data.serial ?? -1;
}

const replicas = (name: string) =>
  (cluster.api.store.read(apps, "etcd-sync", name).spec as { replicas: number }).replicas;
const restartedBy = (kind: "deployments" | "statefulsets", name: string) =>
  (
    cluster.api.store.read({ group: "apps", resource: kind }, "platform", name).spec as {
      template: { metadata?: { annotations?: Record<string, string> } };
    }
  ).template.metadata?.annotations?.["turnout.dev/restarted-by"];

describe("examples/plans/runbook-c-etcd.json against real etcd and BIND", () => {
  it("drill changes nothing; failover stops the sync and flips DNS; failback after the reverse sync returns", async () => {
    // TSIG signs with the time: BIND checks it against its own clock, so this agent keeps the real one.
    const agent = planAgent({
      config: exampleConfig(),
      kubeConfig: cluster.api.kubeConfig(),
      env: { TSIG_SECRET: bind.secret },
      clock: { now: Date.now, sleep: (ms) => new Promise((r) => setTimeout(r, ms)) },
    });

    // Drill: the consistency check reads for real; every write is dry-run; DNS only prerequisite-checked.
    const before = { p: await revision(p), s: await revision(s), serial: await zoneSerial() };
    const drill = await agent.run({ id: "global-dr:1", kind: "drill", dryRun: true });
    expect(drill.status, JSON.stringify(drill.error)).toBe("succeeded");
    expect(drill.steps.map((st) => [st.name, st.status])).toEqual([
      ["tear-down-sync", "succeeded"],
      ["flip-dns", "succeeded"],
      ["restart-consumers", "succeeded"],
    ]);
    expect(drill.steps[0]?.detail).toContain("consistency");
    expect(cluster.writes().length).toBeGreaterThan(0);
    expect(cluster.writes().every((w) => w.dryRun)).toBe(true);
    expect({ p: await revision(p), s: await revision(s), serial: await zoneSerial() }).toEqual(before);
    expect(await queryRecord(bind.server, RECORD, "A")).toEqual([PRIMARY_VIP]);
    expect(replicas("etcd-synchronizer")).toBe(1);
    expect(backend.running("etcd-sync", "etcd-synchronizer")).toBe(true);

    // Failover: sync stopped for real, DNS at the standby VIP, consumers restarted by this action.
    const mirrorPids = backend.pids("etcd-sync", "etcd-synchronizer");
    expect(mirrorPids.length).toBeGreaterThan(0);
    const failover = await agent.run({ id: "global-dr:2" });
    expect(failover.status, JSON.stringify(failover.error)).toBe("succeeded");
    expect(replicas("etcd-synchronizer")).toBe(0);
    await backend.idle();
    expect(backend.running("etcd-sync", "etcd-synchronizer")).toBe(false);
    expect(await queryRecord(bind.server, RECORD, "A")).toEqual([STANDBY_VIP]);
    expect(await zoneSerial()).toBeGreaterThan(before.serial);
    expect(restartedBy("deployments", "cluster-transformer")).toBe("global-dr:2");
    expect(restartedBy("statefulsets", "elasticsearch")).toBe("global-dr:2");
    // The sync really stopped: its make-mirror processes are gone.
    expect(mirrorPids.filter((pid) => processAlive(pid))).toEqual([]);

    // Runbook C step 7, by a person: the old primary is repaired and synced from the standby.
    await s.put("/registry/written-during-outage").value("on-standby");
    cluster.api.store.patch(apps, "etcd-sync", "etcd-synchronizer-reverse", "merge", { spec: { replicas: 1 } });
    await cluster.controllers.settled();
    await backend.idle();
    await eventually(
      async () => (await p.get("/registry/written-during-outage").string()) === "on-standby",
      "the reverse mirror copying the outage's writes",
    );

    // Failback: the reverse direction is checked (standby → primary), the reverse sync stopped, DNS back.
    const failback = await agent.run({ id: "global-dr:3", kind: "failback", from: "secondary", to: "primary" });
    expect(failback.status, JSON.stringify(failback.error)).toBe("succeeded");
    expect(failback.steps.map((st) => st.name)).toEqual([
      "tear-down-reverse-sync",
      "flip-dns-back",
      "restart-consumers-back",
    ]);
    expect(replicas("etcd-synchronizer-reverse")).toBe(0);
    await backend.idle();
    expect(backend.running("etcd-sync", "etcd-synchronizer-reverse")).toBe(false);
    expect(await queryRecord(bind.server, RECORD, "A")).toEqual([PRIMARY_VIP]);
    expect(restartedBy("deployments", "cluster-transformer")).toBe("global-dr:3");
  }, 120_000);
});
