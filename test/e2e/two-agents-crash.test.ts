/**
 * SIGKILL of the agent executing a failover, at every step, with two agents (issue 25, design
 * §11.1, §11.6): the real worker in workerd and two real agent processes, `agent-a` (primary)
 * and `agent-b` (secondary), each with its own Kubernetes API (the fake one, over real HTTP,
 * outliving the processes as a real API server does), its own key, ConfigMap action store and
 * Lease. The failover goes to agent-b, and agent-b is killed and restarted at every point of it:
 * accepted and stored but step one not begun, each step mid-run, the final report stored but not
 * delivered, and delivered but its acknowledgement not recorded (test hooks of
 * test/support/restart-agent-child.ts). Each step still runs exactly once, the final report moves
 * the worker once and its repeat changes nothing, and nothing about the action ever reaches
 * agent-a: every request the worker makes is counted by a recording hop in front of each agent.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer, request, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConfigMapActionStore } from "../../agent/memory.ts";
import { type FakeKubeApi, startFakeKubeApi } from "../../agent/sandbox/fake-kube-api.ts";
import type { AuditEvent, TargetView } from "../../worker/target/target-view.ts";
import { alertmanagerBody, postAlertmanager } from "../support/alertmanager-body.ts";
import { freePorts } from "../support/free-port.ts";
import { testAgentConfig } from "../support/test-executors.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";
import { waitFor } from "./stack.ts";

const root = join(import.meta.dirname, "../..");
const TARGET = "app";
const TOKENS = { operator: "crash2-operator-token", alertmanager: "crash2-am-token" };
const KEYS = {
  "agent-a": "crash2-agent-a-key-0123456789abcdef0123",
  "agent-b": "crash2-agent-b-key-0123456789abcdef0123",
} as const;
type AgentName = keyof typeof KEYS;

/** One agent: its cluster, its state dir (gates and step log), its port and the hop in front of it. */
interface Agent {
  name: AgentName;
  kube: FakeKubeApi;
  dir: string;
  port: number;
  /** Every request the worker sent this agent, as `METHOD path`. */
  seen: string[];
  hop: Server;
  hopUrl: string;
  child?: ChildProcess;
  output: string;
}

let worker: WorkerProcess;
const agents = {} as Record<AgentName, Agent>;

/** A hop that forwards to the agent and records each request (a dead agent: 502, as a proxy says). */
async function recordingHop(agent: Omit<Agent, "hop" | "hopUrl">): Promise<{ hop: Server; hopUrl: string }> {
  const hop = createServer((req, res) => {
    agent.seen.push(`${req.method} ${req.url}`);
    const out = request(
      { host: "127.0.0.1", port: agent.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    out.on("error", () => {
      if (!res.headersSent) res.writeHead(502).end();
      else res.destroy();
    });
    req.pipe(out);
  });
  await new Promise<void>((resolve) => hop.listen(0, "127.0.0.1", resolve));
  return { hop, hopUrl: `http://127.0.0.1:${(hop.address() as AddressInfo).port}` };
}

/**
 * Starts the agent's process; resolves with its pid once it listens and holds its Lease (after a
 * killed holder's expiry). `env` adds the child's test hooks (test/support/restart-agent-child.ts).
 */
async function start(agent: Agent, env: Record<string, string> = {}): Promise<string> {
  const config = testAgentConfig([TARGET], `${worker.url}/v1/agent/reports`, {
    name: agent.name,
    listen: `127.0.0.1:${agent.port}`,
    kubeconfig: join(agent.dir, "kubeconfig.json"),
    heartbeatSeconds: 1,
    // A SIGKILLed holder never releases: its successor waits out the lease, so keep it short.
    lease: { name: "turnout-agent", durationSeconds: 2, renewSeconds: 0.5 },
  });
  const c = spawn(process.execPath, ["test/support/restart-agent-child.ts"], {
    cwd: root,
    env: {
      ...process.env,
      AGENT_CONFIG: JSON.stringify(config),
      STATE_DIR: agent.dir,
      TURNOUT_AGENT_SECRET: KEYS[agent.name],
      GATED_STEPS: "one,two,three",
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  agent.child = c;
  await new Promise<void>((resolve, reject) => {
    let seen = "";
    const timer = setTimeout(() => reject(new Error(`${agent.name} did not start:\n${seen}`)), 20_000);
    const onData = (b: Buffer) => {
      seen += b.toString();
      agent.output += b.toString();
      if (seen.includes("agent listening") && seen.includes("became leader")) {
        clearTimeout(timer);
        resolve();
      }
    };
    c.stdout?.on("data", onData);
    c.stderr?.on("data", onData);
    c.once("exit", (code) => reject(new Error(`${agent.name} exited ${code}:\n${seen}`)));
  });
  return String(c.pid);
}

async function kill9(agent: Agent): Promise<void> {
  const c = agent.child;
  if (!c || c.exitCode !== null || c.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => c.once("exit", () => resolve()));
  c.kill("SIGKILL");
  await exited;
}

const stepLog = (agent: Agent) => {
  const file = join(agent.dir, "steps.log");
  if (!existsSync(file)) return [];
  return readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .map((l) => l.split(" "));
};

async function getJson<T>(path: string): Promise<T> {
  const res = await fetch(`${worker.url}${path}`, { headers: { authorization: `Bearer ${TOKENS.operator}` } });
  if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}
/** Waits until the agent's process reached a hold point; resolves with the pid that did. */
const held = (agent: Agent, point: string) =>
  waitFor(`${agent.name} held at ${point}`, async () => {
    const file = join(agent.dir, `held-${point}`);
    return existsSync(file) ? readFileSync(file, "utf8") : undefined;
  });

/** The action's record as the agent's durable store (its cluster's ConfigMap) holds it. */
const storedRecord = (agent: Agent) =>
  new ConfigMapActionStore({ kubeConfig: agent.kube.kubeConfig(), namespace: "turnout" }).get(TARGET, `${TARGET}:1`);

/** What one of the agent's processes logged (its JSON lines carry its pid). */
const outputOf = (agent: Agent, pid: string) =>
  agent.output
    .split("\n")
    .filter((l) => l.includes(`"pid":${pid}`))
    .join("\n");

/** Waits for a heartbeat the worker heard from the agent at least a second after `pid` started leading. */
async function heardAfterStart(agent: Agent, pid: string): Promise<void> {
  const since = Date.now() + 1000;
  await waitFor(`${agent.name} (pid ${pid}) heard`, async () => {
    const { agents: rows } = await getJson<{ agents: { name: string; lastHeardAt: string | null }[] }>("/v1/agents");
    const heard = rows.find((r) => r.name === agent.name)?.lastHeardAt;
    return heard !== null && heard !== undefined && Date.parse(heard) > since;
  });
}

const view = () => getJson<TargetView>(`/v1/targets/${TARGET}`);
const stepStatus = async (name: string) => (await view()).action?.steps.find((s) => s.name === name)?.status;
/** The target's audit events, oldest first. */
const actionEvents = async () =>
  (await getJson<{ events: AuditEvent[] }>(`/v1/targets/${TARGET}/events?limit=500`)).events;

beforeAll(async () => {
  const ports = await freePorts(2);
  for (const [i, name] of (["agent-a", "agent-b"] as const).entries()) {
    const dir = mkdtempSync(join(tmpdir(), `turnout-crash2-${name}-`));
    const kube = await startFakeKubeApi({ namespaces: ["turnout"] });
    writeFileSync(join(dir, "kubeconfig.json"), kube.kubeConfig().exportConfig());
    const partial = { name, kube, dir, port: ports[i] ?? 0, seen: [] as string[], output: "" };
    // The hop records into the same `seen` array the agent's record holds.
    agents[name] = { ...partial, ...(await recordingHop(partial)) };
  }
  const side = (s: string, agent: AgentName) => ({ matchers: [`target="${TARGET}"`, `side="${s}"`], agent });
  const config = {
    agents: {
      "agent-a": { url: agents["agent-a"].hopUrl, transport: "direct", silentAfterSeconds: 120 },
      "agent-b": { url: agents["agent-b"].hopUrl, transport: "direct", silentAfterSeconds: 120 },
    },
    targets: {
      [TARGET]: {
        sides: { primary: side("primary", "agent-a"), secondary: side("secondary", "agent-b") },
        policy: { holdSeconds: 1 },
      },
    },
  };
  worker = await startWorker({
    vars: {
      TURNOUT_CONFIG: JSON.stringify(config),
      OPERATOR_TOKEN: TOKENS.operator,
      ALERTMANAGER_TOKEN: TOKENS.alertmanager,
      TURNOUT_AGENT_SECRETS: JSON.stringify(KEYS),
    },
  });
}, 90_000);

afterAll(async () => {
  for (const a of Object.values(agents)) {
    await kill9(a);
    await new Promise<void>((resolve) => a.hop.close(() => resolve()));
    await a.kube.close();
    rmSync(a.dir, { recursive: true, force: true });
  }
  await worker?.stop();
}, 30_000);

beforeEach(({ onTestFailed }) => {
  onTestFailed(() => {
    for (const a of Object.values(agents)) {
      console.error(`${a.name} saw: ${a.seen.join(", ")}\n${a.name} output (tail):\n${a.output.slice(-3000)}`);
    }
    console.error(`worker output (tail):\n${worker?.output().slice(-4000)}`);
  });
});

describe("SIGKILL of the executing agent at every step, with two agents", () => {
  it("each step runs once on agent-b across eight processes, the final report lands once, and nothing reaches agent-a", {
    timeout: 120_000,
  }, async () => {
    const a = agents["agent-a"];
    const b = agents["agent-b"];
    const id = `${TARGET}:1`;
    await start(a);

    // Process 1 accepts and stores the action, then stops short of step one: SIGKILL there.
    const pid1 = await start(b, { HOLD: "start-one" });
    await waitFor("both agents heard", async () => {
      const { agents: rows } = await getJson<{ agents: { name: string; lastHeardAt: string | null }[] }>("/v1/agents");
      return rows.every((r) => r.lastHeardAt !== null);
    });
    const alert = alertmanagerBody({
      labels: { alertname: "AppDown", target: TARGET, side: "primary" },
      fingerprint: "crash2primary0001",
      startsAt: Date.now(),
    });
    expect((await postAlertmanager(worker.url, TOKENS.alertmanager, alert)).status).toBe(200);
    expect(await held(b, "start-one")).toBe(pid1);
    expect((await storedRecord(b))?.report.steps.map((s) => s.status)).toEqual(["pending", "pending", "pending"]);
    expect((await view()).action).toMatchObject({ id, to: "secondary", agent: "agent-b", status: "running" });
    await kill9(b);

    // Process 2 resumes the stored action and starts step one, which waits at its gate: SIGKILL mid-step.
    const pid2 = await start(b);
    await waitFor("step one running", async () => (await stepStatus("one")) === "running", 30_000);
    await kill9(b);

    // Process 3 runs step one again from its start (it never finished), then step two waits: SIGKILL.
    const pid3 = await start(b);
    writeFileSync(join(b.dir, "gate-one"), "");
    await waitFor("step one reported", async () => (await stepStatus("one")) === "succeeded", 30_000);
    await kill9(b);

    // Process 4 resumes at step two; step three waits at its gate: SIGKILL mid-step.
    const pid4 = await start(b);
    writeFileSync(join(b.dir, "gate-two"), "");
    await waitFor("step two reported", async () => (await stepStatus("two")) === "succeeded", 30_000);
    await kill9(b);

    // Process 5 finishes step three and stores the final report, whose delivery it holds: SIGKILL.
    const pid5 = await start(b, { HOLD: "final-report" });
    writeFileSync(join(b.dir, "gate-three"), "");
    expect(await held(b, "final-report")).toBe(pid5);
    expect(await storedRecord(b)).toMatchObject({ report: { status: "succeeded" }, reportDelivered: false });
    expect((await view()).action?.status).toBe("running");
    await kill9(b);

    // Process 6 re-sends the stored final report; the worker takes it, and the process is killed
    // before it records the acknowledgement.
    const pid6 = await start(b, { HOLD: "delivered-record" });
    const done = await waitFor("steady on secondary", async () => {
      const v = await view();
      return v.phase === "steady" && v.activeSide === "secondary" && v.action?.status === "succeeded" ? v : undefined;
    });
    expect(done.action?.id).toBe(id);
    expect(await held(b, "delivered-record")).toBe(pid6);
    expect(await storedRecord(b)).toMatchObject({ report: { status: "succeeded" }, reportDelivered: false });
    const eventsAtDone = await actionEvents();
    await kill9(b);

    // Process 7 sends the same final report again (the worker already has it) and records the
    // acknowledgement this time; process 8 finds nothing to do.
    const pid7 = await start(b);
    await waitFor("acknowledgement recorded", async () => (await storedRecord(b))?.reportDelivered === true);
    await kill9(b);
    const pid8 = await start(b);
    await heardAfterStart(b, pid8);
    expect(outputOf(b, pid8)).not.toContain("re-sending unacknowledged report");
    expect(outputOf(b, pid8)).not.toContain("resuming action");

    // The worker stays where the first final report put it: the repeat changed nothing.
    const after = await view();
    expect(after).toMatchObject({ phase: "steady", activeSide: "secondary" });
    expect(after.action).toEqual(done.action);
    // The repeat is audited as ignored (the action already succeeded), and nothing else happened.
    const events = await actionEvents();
    expect(events.slice(0, eventsAtDone.length)).toEqual(eventsAtDone);
    // One repeat: process 7's; process 8 sent none.
    expect(events.slice(eventsAtDone.length)).toMatchObject([
      { type: "report.ignored", detail: { actionId: id, status: "succeeded", reason: "action already succeeded" } },
    ]);

    // One execution per step, each by the agent-b process alive when it finished.
    const pids = [pid1, pid2, pid3, pid4, pid5, pid6, pid7, pid8];
    expect(new Set(pids).size).toBe(pids.length);
    expect(stepLog(b)).toEqual([
      [pid3, id, "one"],
      [pid4, id, "two"],
      [pid5, id, "three"],
    ]);
    // agent-a executed nothing and was sent nothing about actions (a probe of /healthz would be fine).
    expect(stepLog(a)).toEqual([]);
    expect(a.seen.filter((r) => r.includes("/v1/actions"))).toEqual([]);
    // Every action request the worker made, re-sends and polls included, went to agent-b, for this id.
    const toB = b.seen.filter((r) => r.includes("/v1/actions"));
    expect(toB.length).toBeGreaterThanOrEqual(1);
    for (const r of toB) expect(r === "POST /v1/actions" || r.startsWith(`GET /v1/actions/${TARGET}`)).toBe(true);
    // One action in the audit log, dispatched once to agent-b.
    const sent = events
      .filter((e) => e.type === "action.dispatched")
      .map((e) => e.detail as { id?: string; agent?: string });
    expect(sent.map((d) => [d.id, d.agent])).toEqual([[id, "agent-b"]]);
  });
});
