import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ActionRecord } from "../../agent/action-store.ts";
import { ConfigMapActionStore, configMapName } from "../../agent/memory.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import { ActionRequestSchema } from "../../shared/protocol.ts";
import { actionRequest } from "../support/test-executors.ts";

let api: FakeKubeApi;
const CM = { resource: "configmaps" };

beforeAll(async () => {
  api = await startFakeKubeApi();
});

afterAll(async () => {
  await api.close();
});

function record(
  target: string,
  epoch: number,
  status: "running" | "succeeded" | "failed" = "succeeded",
  delivered = true,
): ActionRecord {
  const id = `${target}:${epoch}`;
  return {
    request: ActionRequestSchema.parse(actionRequest(target, epoch)),
    report: {
      actionId: id,
      target,
      status,
      dryRun: false,
      steps: [{ name: "delete-primary-route", status: status === "running" ? "running" : "succeeded" }],
      at: "2026-11-22T10:00:01.000Z",
    },
    completedSteps: status === "running" ? [] : ["delete-primary-route"],
    reportDelivered: delivered,
    updatedAt: "2026-11-22T10:00:01.000Z",
  };
}

/** Action ids as stored in the target's ConfigMap, in stored order. */
function storedIds(namespace: string): string[] {
  const data = (api.store.get(CM, namespace, "turnout-egress-gw")?.data ?? {}) as Record<string, string>;
  return (JSON.parse(data["actions.json"] ?? "[]") as ActionRecord[]).map((r) => r.request.id);
}

const store = (namespace: string, extra: { keep?: number; maxBytes?: number; targets?: string[] } = {}) =>
  new ConfigMapActionStore({ kubeConfig: api.kubeConfig(), namespace, ...extra });

describe("ConfigMap-backed action store", () => {
  it("creates the namespace and a labelled ConfigMap per target, and reads records back", async () => {
    const s = store("agent-a");
    expect(await s.latest("egress-gw")).toBeUndefined();
    await s.put(record("egress-gw", 1));
    await s.put(record("egress-gw", 2, "running", false));
    await s.put(record("bootstrap-dns", 7));
    const cm = api.store.get(CM, "agent-a", configMapName("egress-gw"));
    expect(cm?.metadata.labels).toMatchObject({
      "app.kubernetes.io/managed-by": "turnout-agent",
      "turnout/target": "egress-gw",
    });
    expect(api.store.get({ resource: "namespaces" }, undefined, "agent-a")).toBeDefined();
    expect((await s.get("egress-gw", "egress-gw:1"))?.report.status).toBe("succeeded");
    expect(await s.get("bootstrap-dns", "egress-gw:1")).toBeUndefined();
    expect((await s.latest("egress-gw"))?.request.id).toBe("egress-gw:2");
    expect((await s.unfinished()).map((r) => r.request.id)).toEqual(["egress-gw:2"]);
    // Replacing a record keeps one copy.
    await s.put({ ...record("egress-gw", 2), reportDelivered: true });
    expect(await s.unfinished()).toEqual([]);
    expect(storedIds("agent-a")).toEqual(["egress-gw:2", "egress-gw:1"]);
  });

  it("keeps executor memory per target across a restart (a new store instance)", async () => {
    const before = store("agent-b");
    await before.memory("egress-gw").set("savedRoute", { name: "primary", gateway: "10.116.0.4" });
    await before.put(record("egress-gw", 3, "running", false));
    const after = store("agent-b");
    expect(await after.memory("egress-gw").get("savedRoute")).toEqual({ name: "primary", gateway: "10.116.0.4" });
    expect(await after.memory("other").get("savedRoute")).toBeUndefined();
    expect((await after.unfinished()).map((r) => r.request.id)).toEqual(["egress-gw:3"]);
    expect((await after.get("egress-gw", "egress-gw:3"))?.completedSteps).toEqual([]);
  });

  it("with its targets named, finds unfinished actions by reading their ConfigMaps, never listing", async () => {
    const s = store("agent-n", { targets: ["egress-gw", "bootstrap-dns", "never-written"] });
    await s.put(record("egress-gw", 4, "running", false));
    await s.put(record("bootstrap-dns", 5));
    const listsBefore = api.requests.filter((r) => r.method === "GET" && r.path.endsWith("/configmaps")).length;
    expect((await s.unfinished()).map((r) => r.request.id)).toEqual(["egress-gw:4"]);
    const lists = api.requests.filter((r) => r.method === "GET" && r.path.endsWith("/configmaps")).length;
    expect(lists).toBe(listsBefore);
  });

  it("loses no update when two writers race on one ConfigMap (409 → re-read and retry)", async () => {
    const a = store("agent-c", { keep: 50 });
    const b = store("agent-c", { keep: 50 });
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 10; i++) {
      writes.push(a.put(record("egress-gw", i)));
      writes.push(b.put(record("egress-gw", 100 + i)));
      writes.push(a.memory("egress-gw").set(`a${i}`, i));
      writes.push(b.memory("egress-gw").set(`b${i}`, i));
    }
    await Promise.all(writes);
    const fresh = store("agent-c", { keep: 50 });
    for (let i = 1; i <= 10; i++) {
      expect(await fresh.get("egress-gw", `egress-gw:${i}`)).toBeDefined();
      expect(await fresh.get("egress-gw", `egress-gw:${100 + i}`)).toBeDefined();
      expect(await fresh.memory("egress-gw").get(`a${i}`)).toBe(i);
      expect(await fresh.memory("egress-gw").get(`b${i}`)).toBe(i);
    }
    // The race really happened: more PUT/POST attempts than the 40 writes.
    const attempts = api.requests.filter(
      (r) => (r.method === "PUT" || r.method === "POST") && r.path.startsWith("/api/v1/namespaces/agent-c/configmaps"),
    );
    expect(attempts.length).toBeGreaterThan(40);
  });

  it("keeps the newest records per target (and unfinished ones) within the size bound", async () => {
    const s = store("agent-d", { keep: 20 });
    await s.put(record("egress-gw", 1, "running", false));
    for (let i = 2; i <= 30; i++) await s.put(record("egress-gw", i));
    const ids = storedIds("agent-d");
    expect(ids).toHaveLength(21);
    expect(ids.slice(0, 20)).toEqual(Array.from({ length: 20 }, (_, i) => `egress-gw:${30 - i}`));
    expect(ids).toContain("egress-gw:1");

    const small = store("agent-e", { maxBytes: 4000 });
    for (let i = 1; i <= 10; i++) await small.put(record("egress-gw", i));
    const data = api.store.get(CM, "agent-e", "turnout-egress-gw")?.data as Record<string, string>;
    expect(
      Buffer.byteLength(data["actions.json"] ?? "") + Buffer.byteLength(data["memory.json"] ?? ""),
    ).toBeLessThanOrEqual(4000);
    expect((await small.latest("egress-gw"))?.request.id).toBe("egress-gw:10");
  });

  it("skips malformed data in the ConfigMap instead of failing, and repairs it on the next write", async () => {
    const s = store("agent-f");
    await s.put(record("egress-gw", 1));
    api.store.mutate(CM, "agent-f", "turnout-egress-gw", (cm) => {
      cm.data = { "actions.json": '[{"request":{"id":"nope"}}, 5]', "memory.json": "not json" };
    });
    expect(await s.latest("egress-gw")).toBeUndefined();
    expect(await s.memory("egress-gw").get("x")).toBeUndefined();
    await s.put(record("egress-gw", 2));
    expect((await s.latest("egress-gw"))?.request.id).toBe("egress-gw:2");
    await expect(s.put({ ...record("egress-gw", 3), completedSteps: "x" as unknown as string[] })).rejects.toThrow(
      /invalid action record/,
    );
  });
});
