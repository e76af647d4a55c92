import { createServer, request, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { CoreV1Api, KubeConfig } from "@kubernetes/client-node";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { LeadershipState } from "../../agent/leadership.ts";
import { type LeaseElector, type LeaseElectorOptions, startLeaseElector } from "../../agent/lease.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";

let api: FakeKubeApi;
const LEASES = { group: "coordination.k8s.io", resource: "leases" };

beforeAll(async () => {
  api = await startFakeKubeApi();
  await api
    .kubeConfig()
    .makeApiClient(CoreV1Api)
    .createNamespace({ body: { metadata: { name: "turnout" } } });
});

afterAll(async () => {
  await api.close();
});

/** A clock the test moves by hand. */
function clock(start = Date.parse("2026-11-22T10:00:00Z")) {
  let t = start;
  return {
    now: () => t,
    advance: (ms: number) => {
      t += ms;
    },
  };
}

function elector(name: string, identity: string, extra: Partial<LeaseElectorOptions> = {}): LeaseElector {
  return startLeaseElector({
    kubeConfig: api.kubeConfig(),
    namespace: "turnout",
    name,
    durationSeconds: 15,
    renewSeconds: 5,
    identity,
    autoStart: false,
    ...extra,
  });
}

function leaseSpec(name: string) {
  const lease = api.store.get(LEASES, "turnout", name);
  return (lease?.spec ?? {}) as {
    holderIdentity?: string;
    renewTime?: string;
    leaseTransitions?: number;
    leaseDurationSeconds?: number;
  };
}

describe("Lease leadership", () => {
  it("elects exactly one of two replicas and writes MicroTime renewals", async () => {
    const c = clock();
    const a = elector("one", "a", { now: c.now });
    const b = elector("one", "b", { now: c.now });
    await a.tick();
    await b.tick();
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    expect(b.state()).toMatchObject({ leader: false, holder: "a" });
    expect(leaseSpec("one")).toMatchObject({ holderIdentity: "a", leaseDurationSeconds: 15, leaseTransitions: 0 });
    expect(leaseSpec("one").renewTime).toBe("2026-11-22T10:00:00.000000Z");
    c.advance(5000);
    await a.tick();
    await b.tick();
    expect(leaseSpec("one").renewTime).toBe("2026-11-22T10:00:05.000000Z");
    expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    const puts = api.requests.filter((r) => r.method === "PUT" && r.path.endsWith("/leases/one"));
    expect(puts.length).toBeGreaterThan(0);
    for (const p of puts) expect(JSON.parse(p.body).spec.renewTime).toMatch(/\.\d{6}Z$/);
    await a.stop();
    await b.stop();
  });

  it("lets the standby take over only after the leader's Lease expires, counting the transition", async () => {
    const c = clock();
    const a = elector("two", "a", { now: c.now });
    const b = elector("two", "b", { now: c.now });
    const seen: LeadershipState[] = [];
    a.onChange((s) => seen.push(s));
    await a.tick();
    await b.tick();
    expect(b.state().detail).toBe("standing by; a holds the Lease (takes over if it is not renewed within 15 s)");
    // The leader stops renewing (crashed). Before expiry the standby waits.
    c.advance(14_000);
    await b.tick();
    expect(b.isLeader()).toBe(false);
    c.advance(2_000);
    expect(a.isLeader()).toBe(false); // its own view is bounded by the lease duration too
    await b.tick();
    expect(b.isLeader()).toBe(true);
    expect(leaseSpec("two")).toMatchObject({ holderIdentity: "b", leaseTransitions: 1 });
    // The old leader comes back, sees a live holder and stands by.
    await a.tick();
    expect(a.state()).toMatchObject({ leader: false, holder: "b" });
    expect(seen.map((s) => s.leader)).toEqual([true, false]);
    await a.stop({ release: false });
    await b.stop();
  });

  it("judges expiry by its own clock: a leader whose clock runs an hour behind keeps the Lease", async () => {
    const behind = clock(Date.parse("2026-11-22T09:00:00Z"));
    const ours = clock();
    const a = elector("skew", "a", { now: behind.now });
    const b = elector("skew", "b", { now: ours.now });
    await a.tick();
    // renewTime says 09:00 while b's clock says 10:00: comparing the two would call it expired.
    expect(leaseSpec("skew").renewTime).toBe("2026-11-22T09:00:00.000000Z");
    await b.tick();
    expect(b.state()).toMatchObject({ leader: false, holder: "a" });
    for (let i = 0; i < 6; i++) {
      behind.advance(5000);
      ours.advance(5000);
      await a.tick();
      await b.tick();
      expect([a.isLeader(), b.isLeader()]).toEqual([true, false]);
    }
    // Once a stops renewing, b takes over a lease duration after it last saw a change.
    ours.advance(15_000);
    await b.tick();
    expect(b.isLeader()).toBe(false);
    ours.advance(1);
    await b.tick();
    expect(b.isLeader()).toBe(true);
    await a.stop({ release: false });
    await b.stop();
  });

  it("a replica that starts after the holder died waits one full lease duration from first sight", async () => {
    const c = clock();
    const a = elector("late", "a", { now: c.now });
    await a.tick();
    await a.stop({ release: false });
    c.advance(60_000); // the Lease's renewTime is long past
    const b = elector("late", "b", { now: c.now });
    await b.tick();
    expect(b.isLeader()).toBe(false);
    c.advance(15_001);
    await b.tick();
    expect(b.isLeader()).toBe(true);
    await b.stop();
  });

  it("resolves a simultaneous takeover by resourceVersion: one wins, the loser re-reads (409)", async () => {
    const c = clock();
    const electors = ["x", "y", "z"].map((id) => elector("three", id, { now: c.now }));
    await Promise.all(electors.map((e) => e.tick()));
    expect(electors.filter((e) => e.isLeader())).toHaveLength(1);
    c.advance(20_000); // expired: all three race to take over
    await Promise.all(electors.map((e) => e.tick()));
    const leaders = electors.filter((e) => e.isLeader());
    expect(leaders).toHaveLength(1);
    expect(leaseSpec("three").holderIdentity).toBe(leaders[0]?.identity);
    for (const e of electors.filter((x) => !x.isLeader())) expect(e.state().holder).toBe(leaders[0]?.identity);
    for (const e of electors) await e.stop({ release: false });
  });

  it("releases the Lease on stop so the standby takes over at once", async () => {
    const c = clock();
    const a = elector("four", "a", { now: c.now });
    const b = elector("four", "b", { now: c.now });
    await a.tick();
    await b.tick();
    await a.stop();
    expect(leaseSpec("four").holderIdentity).toBeUndefined();
    await b.tick();
    expect(b.isLeader()).toBe(true);
    await b.stop();
  });

  it("stops leading by the renew deadline when Lease calls hang, without waiting for them", async () => {
    // A proxy in front of the fake API that, once told to, never answers (a dead kept-alive
    // connection, a wedged API server): the renewal neither succeeds nor fails.
    let hang = false;
    const held: ServerResponse[] = [];
    const proxy = createServer((req, res) => {
      if (hang) {
        held.push(res);
        return;
      }
      const upstream = request(`${api.url}${req.url}`, { method: req.method, headers: req.headers }, (up) => {
        res.writeHead(up.statusCode ?? 502, up.headers);
        up.pipe(res);
      });
      req.pipe(upstream);
    });
    await new Promise<void>((resolve) => proxy.listen(0, "127.0.0.1", resolve));
    const { port } = proxy.address() as AddressInfo;
    const kc = new KubeConfig();
    kc.loadFromOptions({
      clusters: [{ name: "proxied", server: `http://127.0.0.1:${port}`, skipTLSVerify: true }],
      users: [{ name: "agent", token: api.token ?? "" }],
      contexts: [{ name: "proxied", cluster: "proxied", user: "agent" }],
      currentContext: "proxied",
    });
    const a = elector("hang", "a", { kubeConfig: kc, durationSeconds: 1, renewSeconds: 0.2, autoStart: true });
    try {
      await expect.poll(() => a.isLeader(), { timeout: 5000, interval: 20 }).toBe(true);
      const lost = new Promise<LeadershipState>((resolve) => a.onChange(resolve));
      hang = true;
      const state = await lost;
      expect(state).toMatchObject({ leader: false, detail: "could not renew the Lease within the renew deadline" });
      expect(held.length).toBeGreaterThan(0); // the calls were still hanging when it stepped down
    } finally {
      for (const res of held) res.destroy();
      await a.stop({ release: false });
      proxy.closeAllConnections();
      await new Promise<void>((resolve) => proxy.close(() => resolve()));
    }
  });

  it("takes over in real time when the leader stops renewing (1 s lease)", async () => {
    const fast = { durationSeconds: 1, renewSeconds: 0.2, autoStart: true };
    const a = elector("five", "a", fast);
    await expect.poll(() => a.isLeader(), { timeout: 5000, interval: 20 }).toBe(true);
    const b = elector("five", "b", fast);
    await expect.poll(() => b.state().holder, { timeout: 5000, interval: 20 }).toBe("a");
    expect(b.isLeader()).toBe(false);
    await a.stop({ release: false });
    const stoppedAt = Date.now();
    await expect.poll(() => b.isLeader(), { timeout: 5000, interval: 20 }).toBe(true);
    // The exact bound is the fake-clock tests' job; here only that it happens in about a lease
    // duration (1 s) plus renew ticks, with room for a loaded machine.
    expect(Date.now() - stoppedAt).toBeLessThan(3000);
    await b.stop();
  });
});
