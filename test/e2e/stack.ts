/**
 * The whole system on one machine for end-to-end tests and the demo: the real worker in workerd
 * (`wrangler dev`), the agent as a separate `node agent/main.ts` process in sandbox mode, and a
 * real BIND for dns-flip targets. They talk over real HTTP with real Turnout-Signatures; nothing
 * is injected. Actions go to the agent directly, or through a QStash (`StackOptions.qstash`, the
 * fake of test/support/fake-qstash.ts) that delivers them with real Upstash-Signatures. Time is
 * real (a separate workerd process has no injectable clock), so callers use short policy times.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { AgentTarget, Side } from "../../shared/config.ts";
import { type ActionReport, ActionReportSchema, DEFAULT_AGENT } from "../../shared/protocol.ts";
import type { AuditEvent, TargetView } from "../../worker/target/target-view.ts";
import { type BindServer, startBind } from "../support/bind.ts";
import { type EtcdInstance, startEtcds } from "../support/etcd.ts";
import { freePorts } from "../support/free-port.ts";
import { signedGet } from "../support/signed-get.ts";
import { startWorker, type WorkerProcess } from "../support/worker-process.ts";

const root = join(import.meta.dirname, "../..");

export const TOKENS = {
  alertmanager: "e2e-alertmanager-token",
  nagios: "e2e-nagios-token",
  operator: "e2e-operator-token",
  agentSecret: "e2e-agent-secret-0123456789abcdef",
} as const;

/** Each agent's own key in a two-agent stack (design §11.1: `TURNOUT_AGENT_SECRETS`). */
export const AGENT_KEYS = {
  "agent-a": "e2e-agent-a-key-0123456789abcdef0123",
  "agent-b": "e2e-agent-b-key-0123456789abcdef0123",
} as const;
export type TwoAgentName = keyof typeof AGENT_KEYS;

/**
 * Which agents serve a target's sides in a two-agent stack (design §11.1 "Local"): the kinds
 * whose sides share one cluster (route-swap, node-fence) name agent-a for both; the others go
 * to agent-a toward the primary and agent-b toward the secondary.
 */
export function sideAgents(kind: StackTarget["kind"]): Record<Side, TwoAgentName> {
  return kind === "route-swap" || kind === "node-fence"
    ? { primary: "agent-a", secondary: "agent-a" }
    : { primary: "agent-a", secondary: "agent-b" };
}

/** The zones (node groups) of a node-fence target; the sandbox names nodes dc-1-1…3 and cloud-a-1…3. */
export const NODE_GROUPS = { primary: "dc-1", secondary: "cloud-a" } as const;

/** The heartbeat key etcd-sync-teardown targets use (outside the compared prefix, like production). */
export const HEARTBEAT_KEY = "/turnout/heartbeat";

/** The record of the first dns-flip target and its two values (as in agent-a.config.json); others use `<target>.example.test`. */
export const DNS = {
  zone: "example.test",
  record: "www.example.test",
  primary: "172.30.41.193",
  secondary: "172.30.41.194",
} as const;

/** One failover target of the stack: how its sides are recognised and what the agent does. */
export interface StackTarget {
  /**
   * What the agent does: route-swap (sides matched by `gateway`, routes in the sandbox cluster) or
   * dns-flip (sides matched by `node`, the record in the stack's BIND), node-fence (sides matched
   * by `zone`, KubeNodeNotReady per zone, groups dc-1 and cloud-a of the sandbox; one per stack).
   */
  kind: "route-swap" | "dns-flip" | "etcd-sync-teardown" | "node-fence" | "plan";
  /** plan: the agent's target as given (`{kind: "plan", steps}`). */
  plan?: AgentTarget;
  holdSeconds: number;
  /** etcd-sync-teardown: the dns-flip target of this stack it flips (design §7). */
  dns?: string;
  /** More policy keys (quorum, approval, …); design §5 defaults otherwise, failback manual. */
  policy?: Record<string, unknown>;
  /** Configured in the worker only: the agent answers 404 for it, so its actions fail at once. */
  agentless?: boolean;
  /**
   * The worker's `sides` for this target (e.g. from examples/turnout.fragment.json); default:
   * the alert labels of `labels()` or the Nagios host `<target>-<side>`.
   */
  sides?: Record<Side, unknown>;
}

export interface StackOptions {
  targets: Record<string, StackTarget>;
  /** Start the agent with the stack (default true); false leaves it to `startAgent()`. */
  agent?: boolean;
  /** Agent log lines go here (default: kept in memory only). */
  onAgentLine?: (line: string) => void;
  /** Where the agent sends reports, given the worker's `/v1/agent/reports` (e.g. a flaky proxy). */
  reportUrl?: (workerReportUrl: string) => Promise<string>;
  /**
   * Dispatch through QStash (`agent.transport: "qstash"`, design §6) instead of directly: the
   * worker publishes to `baseUrl` with `token` and `retries`, and gets the signing keys for the
   * failure callback; the agent gets them to verify deliveries.
   */
  qstash?: StackQstash;
  /** More worker variables (e.g. SLACK_WEBHOOK_URL pointing at a test receiver). */
  workerVars?: Record<string, string>;
  /** More top-level worker config keys (e.g. `chatops`). */
  workerConfig?: Record<string, unknown>;
  /**
   * `two`: `agent-a` and `agent-b` (design §11.1), each its own process with its own simulated
   * cluster, key and config holding only the targets it serves ({@link sideAgents}). Default:
   * the single agent `default` with `TURNOUT_AGENT_SECRET`, as before.
   */
  agents?: "one" | "two";
  /** Two agents: the worker's `agents.<name>.silentAfterSeconds` (default 60). */
  silentAfterSeconds?: number;
  /** Two agents: each agent's `heartbeatSeconds` (default 15). */
  heartbeatSeconds?: number;
  /** `readiness.intervalSeconds` of the agents and of the worker (design §11.3; default 300). */
  readinessIntervalSeconds?: number;
}

/** One agent process of the stack. */
export interface StackAgent {
  name: string;
  url: string;
  /** The kubeconfig its sandbox writes for kubectl (exists while it runs). */
  sandboxKubeconfig: string;
  /** Starts the process (idempotent while it runs); resolves when it listens. */
  start(): Promise<void>;
  /** SIGTERM (a graceful stop), SIGKILL after 10 s. */
  stop(): Promise<void>;
  /** SIGKILL at once (its sandbox cluster and the servers it started die with it). */
  kill(): Promise<void>;
  output(): string;
  /** Its latest report for an action (`GET /v1/actions/:id`, signed with its key), or undefined on 404. */
  report(actionId: string): Promise<ActionReport | undefined>;
}

export interface StackQstash {
  baseUrl: string;
  token: string;
  keys: { current: string; next: string };
  /** `agent.qstash.retries`. */
  retries: number;
}

export interface Stack {
  worker: WorkerProcess;
  /** Every agent by name: `default`, or `agent-a` and `agent-b`. The single-agent members below are the first's. */
  agents: Record<string, StackAgent>;
  bind: BindServer | undefined;
  /** The primary and standby etcd, when an etcd-sync-teardown target is configured. */
  etcd: { primary: EtcdInstance; standby: EtcdInstance } | undefined;
  /** The record name a dns-flip target flips. */
  recordOf(target: string): string;
  agentUrl: string;
  /** The kubeconfig the agent's sandbox writes for kubectl (exists while the agent runs). */
  sandboxKubeconfig: string;
  /** Starts the agent process (idempotent while it runs); resolves when it listens. */
  startAgent(): Promise<void>;
  stopAgent(): Promise<void>;
  agentOutput(): string;
  /** The alert labels that make `side` of `target` down. */
  labels(target: string, side: Side): Record<string, string>;
  /** POSTs an Alertmanager v4 webhook; returns the ingest answer. */
  alert(alerts: AlertSpec[]): Promise<IngestAnswer>;
  /**
   * POSTs a Nagios host notification (JSON) for host `<target>-<side>`, which the target's side
   * also matches: PROBLEM with a HARD DOWN state, or RECOVERY.
   */
  nagios(target: string, side: Side, type: "PROBLEM" | "RECOVERY"): Promise<IngestAnswer>;
  view(target: string): Promise<TargetView>;
  events(target: string): Promise<AuditEvent[]>;
  command(target: string, command: string, extra?: Record<string, unknown>): Promise<Response>;
  /** The agent's latest report for an action (`GET /v1/actions/:id`), or undefined on 404. */
  agentReport(actionId: string): Promise<ActionReport | undefined>;
  stop(): Promise<void>;
}

export interface AlertSpec {
  target: string;
  side: Side;
  status: "firing" | "resolved";
  /** startsAt (firing) or endsAt (resolved), ms. */
  at: number;
  /** The first time the alert fired (startsAt of a resolved alert); default `at`. */
  startsAt?: number;
  fingerprint?: string;
}

export interface IngestAnswer {
  status: number;
  body: { accepted: number; duplicates: number; ignored: number; targets: string[] };
}

const ZERO_TIME = "0001-01-01T00:00:00Z";

/** A 16-hex fingerprint per (target, side), stable like Alertmanager's. */
export function fingerprintOf(target: string, side: Side): string {
  let h = 0x811c9dc5;
  for (const ch of `${target}/${side}`) h = Math.imul(h ^ ch.charCodeAt(0), 0x01000193) >>> 0;
  return `${h.toString(16).padStart(8, "0")}${side === "primary" ? "00000001" : "00000002"}`;
}

/** Each target gets its own gateway addresses, route names and destinations in the sandbox. */
function routeSwap(index: number): AgentTarget {
  return {
    kind: "route-swap",
    routes: {
      primary: {
        name: `route-${index}-primary`,
        destinations: [`34.160.111.${index + 1}`],
        gateway: `10.116.${index}.4`,
      },
      secondary: {
        name: `route-${index}-secondary`,
        destinations: [`34.160.111.${index + 1}`],
        gateway: `10.116.${index}.12`,
      },
    },
    operator: { namespace: "static-routes", daemonSet: "k8s-staticroute-operator" },
    settleSeconds: 15,
  };
}

/** Starts BIND (when a dns-flip target is configured), the worker and (by default) the agent. */
export async function startStack(options: StackOptions): Promise<Stack> {
  const names = Object.keys(options.targets);
  const dnsTargets = names.filter((n) => options.targets[n]?.kind === "dns-flip");
  const needsBind = dnsTargets.length > 0;
  const needsEtcd = names.some((n) => options.targets[n]?.kind === "etcd-sync-teardown");
  const recordOf = (target: string) => (target === dnsTargets[0] ? DNS.record : `${target}.${DNS.zone}`);
  const stops: (() => Promise<void>)[] = [];
  // One stop for every caller: a second stop() (a signal handler and a finally block) waits for
  // the first instead of returning while processes are still being stopped.
  let stopping: Promise<void> | undefined;
  const cleanup = () => {
    stopping ??= (async () => {
      for (const stop of stops.splice(0).reverse()) await stop().catch(() => {});
    })();
    return stopping;
  };

  try {
    const bind = needsBind
      ? await startBind({
          zone: DNS.zone,
          records: dnsTargets.map((t) => `${recordOf(t).replace(`.${DNS.zone}`, "")} IN A ${DNS.primary}`),
        })
      : undefined;
    if (bind) stops.push(() => bind.stop());
    let etcd: Stack["etcd"];
    if (needsEtcd) {
      const [primary, standby] = await startEtcds(["e2e-primary", "e2e-standby"]);
      if (!primary || !standby) throw new Error("etcd did not start");
      etcd = { primary, standby };
      stops.push(() => Promise.all([primary.stop(), standby.stop()]).then(() => {}));
    }

    const labelsOf = new Map<string, Record<Side, Record<string, string>>>();
    const workerTargets: Record<string, unknown> = {};
    const agentTargets: Record<string, AgentTarget> = {};
    names.forEach((name, index) => {
      const t = options.targets[name];
      if (!t) return;
      const labels: Record<Side, Record<string, string>> = t.kind === "route-swap"
        ? {
            primary: { alertname: "GatewayDown", gateway: `10.116.${index}.4` },
            secondary: { alertname: "GatewayDown", gateway: `10.116.${index}.12` },
          }
        : t.kind === "dns-flip"
          ? {
              primary: { alertname: "BootstrapNodeDown", node: `${name}-a` },
              secondary: { alertname: "BootstrapNodeDown", node: `${name}-b` },
            }
          : t.kind === "node-fence"
            ? {
                primary: { alertname: "KubeNodeNotReady", zone: NODE_GROUPS.primary },
                secondary: { alertname: "KubeNodeNotReady", zone: NODE_GROUPS.secondary },
              }
            : {
                primary: { alertname: "GlobalClusterDown", cluster: `${name}-primary` },
                secondary: { alertname: "GlobalClusterDown", cluster: `${name}-standby` },
              };
      labelsOf.set(name, labels);
      const matchers = (l: Record<string, string>) => Object.entries(l).map(([k, v]) => `${k}=${JSON.stringify(v)}`);
      // Each side takes the Alertmanager alert or the Nagios host check (design §4 `anyOf`).
      const side = (s: Side) => ({ anyOf: [matchers(labels[s]), [`host="${name}-${s}"`]] });
      workerTargets[name] = {
        sides: t.sides ?? { primary: side("primary"), secondary: side("secondary") },
        policy: { holdSeconds: t.holdSeconds, quorum: 1, approval: "auto", failback: "manual", ...t.policy },
      };
      if (t.agentless) {
        // Unknown to the agent (404): every action of this target fails at once.
      } else if (t.kind === "plan") {
        if (t.plan?.kind !== "plan") throw new Error(`plan target ${name} needs \`plan\``);
        agentTargets[name] = t.plan;
      } else if (t.kind === "route-swap") agentTargets[name] = routeSwap(index);
      else if (t.kind === "node-fence") {
        agentTargets[name] = {
          kind: "node-fence",
          nodes: {
            primary: { selector: `topology.kubernetes.io/zone=${NODE_GROUPS.primary}` },
            secondary: { selector: `topology.kubernetes.io/zone=${NODE_GROUPS.secondary}` },
          },
          notReadySeconds: 60,
          maxFenceFraction: 0.5,
          settleSeconds: 60,
          workloads: [{ kind: "StatefulSet", namespace: "db", name: "postgres" }],
        };
      } else if (t.kind === "etcd-sync-teardown") {
        if (!etcd || !t.dns) throw new Error("etcd-sync-teardown needs etcd and a dns target");
        agentTargets[name] = {
          kind: "etcd-sync-teardown",
          etcd: {
            primary: { endpoints: [etcd.primary.url] },
            standby: { endpoints: [etcd.standby.url] },
            prefixes: ["/registry/"],
            excludePrefixes: [],
            // The agent writes it on the primary; the sandbox's make-mirror copies it.
            heartbeat: { key: HEARTBEAT_KEY, maxLagSeconds: 30, write: true },
            maxMissedKeys: 0,
          },
          sync: { kind: "Deployment", namespace: "cpaas-system", name: `${name}-sync`, action: "scale-to-zero" },
          dns: t.dns,
          restart: [{ kind: "Deployment", namespace: "cpaas-system", name: `${name}-transformer` }],
          followUps: ["Remove the port-2379 forwarding from both VIPs' load balancers"],
          allowUnverified: false,
          restartTimeoutSeconds: 30,
        };
      } else {
        if (!bind) throw new Error("dns-flip needs BIND");
        agentTargets[name] = {
          kind: "dns-flip",
          provider: {
            type: "rfc2136",
            server: bind.server,
            zone: DNS.zone,
            tsig: { name: bind.keyName, algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
          },
          record: { name: recordOf(name), type: "A", ttl: 60 },
          values: { primary: [DNS.primary], secondary: [DNS.secondary] },
          verify: { servers: [bind.server], timeoutSeconds: 10 },
        };
      }
    });

    const two = options.agents === "two";
    const agentNames: string[] = two ? ["agent-a", "agent-b"] : [DEFAULT_AGENT];
    // Distinct ports (two freePort calls may return the same one). QStash's failure callback goes
    // to the worker's own URL (publicUrl), so it is known before the worker starts.
    const [workerPort = 0, ...agentPorts] = await freePorts(1 + agentNames.length);
    const agentUrlOf = (i: number) => `http://127.0.0.1:${agentPorts[i] ?? 0}`;
    const agentUrl = agentUrlOf(0);
    const qstash = options.qstash;
    const endpoint = (url: string) =>
      qstash
        ? { url, transport: "qstash", qstash: { baseUrl: qstash.baseUrl, retries: qstash.retries } }
        : { url, transport: "direct" };
    if (two) {
      // Each side names its agent (design §11.1); `sides` given by the caller are kept as they are.
      for (const name of names) {
        const t = options.targets[name];
        const w = workerTargets[name] as { sides: Record<Side, Record<string, unknown>> };
        if (!t || t.sides) continue;
        const by = sideAgents(t.kind);
        w.sides = {
          primary: { ...w.sides.primary, agent: by.primary },
          secondary: { ...w.sides.secondary, agent: by.secondary },
        };
      }
    }
    const workerConfig = {
      ...(two
        ? {
            agents: Object.fromEntries(
              agentNames.map((n, i) => [
                n,
                { ...endpoint(agentUrlOf(i)), mode: "sandbox", silentAfterSeconds: options.silentAfterSeconds ?? 60 },
              ]),
            ),
          }
        : { agent: endpoint(agentUrl) }),
      ...(qstash ? { publicUrl: `http://127.0.0.1:${workerPort}` } : {}),
      ...(options.readinessIntervalSeconds ? { readiness: { intervalSeconds: options.readinessIntervalSeconds } } : {}),
      ...options.workerConfig,
      targets: workerTargets,
    };
    const signingKeys: Record<string, string> = qstash
      ? { QSTASH_CURRENT_SIGNING_KEY: qstash.keys.current, QSTASH_NEXT_SIGNING_KEY: qstash.keys.next }
      : {};
    const worker = await startWorker({
      port: workerPort,
      vars: {
        TURNOUT_CONFIG: JSON.stringify(workerConfig),
        ALERTMANAGER_TOKEN: TOKENS.alertmanager,
        NAGIOS_TOKEN: TOKENS.nagios,
        OPERATOR_TOKEN: TOKENS.operator,
        ...(two ? { TURNOUT_AGENT_SECRETS: JSON.stringify(AGENT_KEYS) } : { TURNOUT_AGENT_SECRET: TOKENS.agentSecret }),
        ...(qstash ? { QSTASH_TOKEN: qstash.token, ...signingKeys } : {}),
        ...options.workerVars,
      },
    });
    stops.push(() => worker.stop());

    const dir = mkdtempSync(join(tmpdir(), "turnout-e2e-agent-"));
    stops.push(async () => rmSync(dir, { recursive: true, force: true }));
    const reportUrl = options.reportUrl
      ? await options.reportUrl(`${worker.url}/v1/agent/reports`)
      : `${worker.url}/v1/agent/reports`;
    const agents: Record<string, StackAgent> = {};
    agentNames.forEach((agentName, i) => {
      // Each agent serves only the targets some side of which names it (design §11.1).
      const served = Object.fromEntries(
        Object.entries(agentTargets).flatMap(([name, target]): [string, AgentTarget][] => {
          const t = options.targets[name];
          if (!two || !t) return [[name, target]];
          const by = sideAgents(t.kind);
          if (by.primary !== agentName && by.secondary !== agentName) return [];
          // The lag heartbeat is written on the primary etcd by the primary cluster's agent only (design §7).
          if (target.kind === "etcd-sync-teardown" && by.primary !== agentName && target.etcd.heartbeat) {
            return [
              [name, { ...target, etcd: { ...target.etcd, heartbeat: { ...target.etcd.heartbeat, write: false } } }],
            ];
          }
          return [[name, target]];
        }),
      );
      const url = agentUrlOf(i);
      const configFile = join(dir, `${agentName}.json`);
      writeFileSync(
        configFile,
        JSON.stringify(
          {
            ...(two ? { name: agentName } : {}),
            listen: `127.0.0.1:${agentPorts[i] ?? 0}`,
            reportUrl,
            // The worker's own heartbeat endpoint, also when reports go through a test proxy.
            heartbeatUrl: `${worker.url}/v1/agent/heartbeats`,
            ...(options.heartbeatSeconds ? { heartbeatSeconds: options.heartbeatSeconds } : {}),
            ...(options.readinessIntervalSeconds
              ? { readiness: { intervalSeconds: options.readinessIntervalSeconds } }
              : {}),
            // Short lease so a restarted agent leads again at once.
            lease: { durationSeconds: 5, renewSeconds: 1 },
            // Deliveries must be signed for the agent's own action URL (the JWT's `sub`).
            ...(qstash ? { qstash: { url: `${url}/v1/actions` } } : {}),
            targets: served,
          },
          null,
          2,
        ),
      );
      agents[agentName] = agentProcess({
        name: agentName,
        url,
        configFile,
        sandboxKubeconfig: join(dir, `${agentName}-sandbox.kubeconfig`),
        secret: two ? AGENT_KEYS[agentName as TwoAgentName] : TOKENS.agentSecret,
        env: { ...signingKeys, ...(bind ? { TSIG_SECRET: bind.secret } : {}) },
        ...(options.onAgentLine ? { onLine: options.onAgentLine } : {}),
      });
    });
    const first = agents[agentNames[0] ?? DEFAULT_AGENT] as StackAgent;
    for (const a of Object.values(agents)) stops.push(() => a.stop());
    if (options.agent !== false) for (const a of Object.values(agents)) await a.start();

    const operator = { authorization: `Bearer ${TOKENS.operator}` };
    const getJson = async <T>(path: string): Promise<T> => {
      const res = await fetch(`${worker.url}${path}`, { headers: operator });
      if (!res.ok) throw new Error(`GET ${path}: ${res.status} ${await res.text()}`);
      return (await res.json()) as T;
    };

    return {
      worker,
      bind,
      etcd,
      recordOf,
      agents,
      agentUrl,
      sandboxKubeconfig: first.sandboxKubeconfig,
      startAgent: () => first.start(),
      stopAgent: () => first.stop(),
      agentOutput: () => first.output(),
      labels(target, side) {
        const l = labelsOf.get(target)?.[side];
        if (!l) throw new Error(`no target ${target} in the stack`);
        return l;
      },
      async alert(specs) {
        const alerts = specs.map((a) => {
          const l = labelsOf.get(a.target)?.[a.side];
          if (!l) throw new Error(`no target ${a.target} in the stack`);
          return {
            status: a.status,
            labels: { ...l, severity: "critical" },
            annotations: { summary: `${a.target} ${a.side} is down` },
            startsAt: new Date(a.status === "firing" ? a.at : (a.startsAt ?? a.at - 60_000)).toISOString(),
            endsAt: a.status === "firing" ? ZERO_TIME : new Date(a.at).toISOString(),
            generatorURL: "http://prometheus.local/graph",
            fingerprint: a.fingerprint ?? fingerprintOf(a.target, a.side),
          };
        });
        const body = {
          version: "4",
          groupKey: '{}:{alertname="GatewayDown"}',
          truncatedAlerts: 0,
          status: alerts.some((a) => a.status === "firing") ? "firing" : "resolved",
          receiver: "turnout",
          groupLabels: {},
          commonLabels: {},
          commonAnnotations: {},
          externalURL: "http://alertmanager.local",
          alerts,
        };
        const res = await fetch(`${worker.url}/v1/alertmanager`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKENS.alertmanager}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as IngestAnswer["body"] };
      },
      async nagios(target, side, type) {
        if (!labelsOf.has(target)) throw new Error(`no target ${target} in the stack`);
        const host = `${target}-${side}`;
        const body = {
          NOTIFICATIONTYPE: type,
          HOSTNAME: host,
          HOSTALIAS: host,
          HOSTADDRESS: "192.0.2.21",
          HOSTSTATE: type === "PROBLEM" ? "DOWN" : "UP",
          HOSTSTATETYPE: "HARD",
          HOSTOUTPUT: type === "PROBLEM" ? "CRITICAL - Host Unreachable (192.0.2.21)" : "PING OK",
          TIMET: String(Math.floor(Date.now() / 1000)),
        };
        const res = await fetch(`${worker.url}/v1/nagios`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKENS.nagios}`, "content-type": "application/json" },
          body: JSON.stringify(body),
        });
        return { status: res.status, body: (await res.json()) as IngestAnswer["body"] };
      },
      view: (target) => getJson<TargetView>(`/v1/targets/${target}`),
      async events(target) {
        const all: AuditEvent[] = [];
        let after = 0;
        for (;;) {
          const page = await getJson<{ events: AuditEvent[]; next?: number }>(
            `/v1/targets/${target}/events?after=${after}&limit=1000`,
          );
          all.push(...page.events);
          if (page.next === undefined) return all;
          after = page.next;
        }
      },
      command: (target, command, extra = {}) =>
        fetch(`${worker.url}/v1/targets/${target}/commands`, {
          method: "POST",
          headers: { ...operator, "content-type": "application/json" },
          body: JSON.stringify({ command, actor: "e2e", ...extra }),
        }),
      agentReport: (actionId) => first.report(actionId),
      stop: cleanup,
    };
  } catch (err) {
    await cleanup();
    throw err;
  }
}

/** Polls `check` every 100 ms until it returns a value; throws with `what` after `timeoutMs`. */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined | false>,
  timeoutMs = 20_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${String(last)}` : ""}`);
}

interface AgentProcessOptions {
  name: string;
  url: string;
  configFile: string;
  sandboxKubeconfig: string;
  secret: string;
  env: Record<string, string>;
  onLine?: (line: string) => void;
}

/** One `node agent/main.ts` process in sandbox mode, started and stopped on demand. */
function agentProcess(options: AgentProcessOptions): StackAgent {
  let agent: ChildProcess | undefined;
  let out = "";
  const start = async () => {
    if (agent && agent.exitCode === null && agent.signalCode === null) return;
    // The output of an earlier run stays in `out`; only this run's "listening" counts.
    const startedAt = out.length;
    const child = spawn(process.execPath, ["agent/main.ts", "--config", options.configFile], {
      cwd: root,
      env: {
        PATH: process.env.PATH ?? "",
        HOME: process.env.HOME ?? tmpdir(),
        TURNOUT_AGENT_SECRET: options.secret,
        TURNOUT_SANDBOX_KUBECONFIG: options.sandboxKubeconfig,
        ...options.env,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    agent = child;
    let pending = "";
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      pending += chunk.toString();
      const lines = pending.split("\n");
      pending = lines.pop() ?? "";
      for (const line of lines) options.onLine?.(line);
    };
    child.stdout?.on("data", onData);
    child.stderr?.on("data", onData);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        clearInterval(poll);
        reject(new Error(`agent ${options.name} did not listen within 20 s; output:\n${out}`));
      }, 20_000);
      const poll = setInterval(() => {
        if (child.exitCode !== null) {
          clearTimeout(timer);
          clearInterval(poll);
          reject(new Error(`agent ${options.name} exited with ${child.exitCode}; output:\n${out}`));
        } else if (out.slice(startedAt).includes('"msg":"agent listening"')) {
          clearTimeout(timer);
          clearInterval(poll);
          resolve();
        }
      }, 25);
    });
  };
  const end = async (signal: "SIGTERM" | "SIGKILL") => {
    const child = agent;
    agent = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill(signal);
    const timer = setTimeout(() => child.kill("SIGKILL"), 10_000);
    await exited;
    clearTimeout(timer);
  };
  return {
    name: options.name,
    url: options.url,
    sandboxKubeconfig: options.sandboxKubeconfig,
    start,
    stop: () => end("SIGTERM"),
    kill: () => end("SIGKILL"),
    output: () => out,
    async report(actionId) {
      const res = await signedGet(options.url, `/v1/actions/${encodeURIComponent(actionId)}`, options.secret);
      if (res.status === 404) return undefined;
      if (!res.ok)
        throw new Error(`GET agent ${options.name} /v1/actions/${actionId}: ${res.status} ${await res.text()}`);
      return ActionReportSchema.parse(await res.json());
    },
  };
}
