/**
 * The sandbox's real servers (design §9, issue 9): for `npm start` on one machine, the sandbox
 * starts what the agent config's local targets talk to, so all three default targets really run:
 * - a BIND (agent/sandbox/bind-server.ts) per dns-flip rfc2136 server on 127.0.0.1, serving the
 *   target's zone with its TSIG key (from the env var `tsig.secretEnv` names) and its record
 *   holding `values.primary`; local `verify.servers` on other ports are answered by the same named;
 * - an etcd (agent/sandbox/etcd-server.ts) per etcd-sync-teardown endpoint on 127.0.0.1, data in
 *   a temp dir, with a few keys seeded under the target's prefixes on the primary.
 * A server that already answers on its address (a test's or a developer's own) is used as it is.
 * Missing binaries skip those servers with a warning naming `npm run setup`; the agent still
 * starts. It runs before the sandbox cluster so the synchronizer's make-mirror finds its endpoints.
 */
import { rmSync } from "node:fs";
import type { AgentConfig, DnsFlipTarget, EtcdSyncTeardownTarget } from "../../shared/config.ts";
import { createEtcdClient } from "../etcd/client.ts";
import type { Logger } from "../log.ts";
import { type BindServer, namedPath, soaAnswers, startBindServer } from "./bind-server.ts";
import { ETCD_SETUP_HINT } from "./etcd-mirror.ts";
import { type EtcdInstance, etcdBinariesAvailable, etcdHealthy, startEtcdServer } from "./etcd-server.ts";

/** One BIND the sandbox uses for dns-flip targets. */
export interface LocalBindSummary {
  server: string;
  zone: string;
  targets: string[];
  /** Other local ports the same named answers on (verify servers). */
  extraPorts: number[];
  /** False when something already answered there and the sandbox left it alone. */
  started: boolean;
  pid?: number;
}

/** One etcd endpoint the sandbox uses for an etcd-sync-teardown target. */
export interface LocalEtcdSummary {
  url: string;
  target: string;
  role: "primary" | "standby";
  started: boolean;
  pid?: number;
  /** Keys seeded under the target's prefixes (primary only). */
  seeded?: number;
}

/** What the sandbox started, for logs and `/healthz`. */
export interface LocalServersSummary {
  bind: LocalBindSummary[];
  etcd: LocalEtcdSummary[];
  /** Targets (or parts of them) the sandbox could not serve locally, and why. */
  skipped: { target: string; reason: string }[];
}

export interface LocalServers {
  summary: LocalServersSummary;
  /** Process ids of every server this call started. */
  pids(): number[];
  /** Stops every server this call started (the temp dirs go with them). */
  stop(): Promise<void>;
}

export interface LocalServersOptions {
  /** Which binaries are installed (default: looked up on this machine); tests pretend they are not. */
  installed?: { named: boolean; etcd: boolean };
}

const SEED_KEYS = 3;

/** The port of a local `host:port` (127.0.0.1 or localhost), else undefined. */
function localPort(hostPort: string): number | undefined {
  const m = /^(127\.0\.0\.1|localhost):(\d+)$/.exec(hostPort);
  return m ? Number(m[2]) : undefined;
}

/** The port of a local plain-HTTP etcd URL, else undefined. */
function localEtcdPort(url: string): number | undefined {
  const m = /^http:\/\/(127\.0\.0\.1|localhost):(\d+)\/?$/.exec(url);
  return m ? Number(m[2]) : undefined;
}

const fqdn = (name: string) => (name.endsWith(".") ? name : `${name}.`);

function inZone(name: string, zone: string): boolean {
  const n = name.replace(/\.$/, "").toLowerCase();
  const z = zone.replace(/\.$/, "").toLowerCase();
  return n === z || n.endsWith(`.${z}`);
}

/** Zone file lines for the target's record holding `values.primary`. */
function recordLines(t: DnsFlipTarget): string[] {
  return t.values.primary.map(
    (v) => `${fqdn(t.record.name)} ${t.record.ttl} IN ${t.record.type} ${t.record.type === "CNAME" ? fqdn(v) : v}`,
  );
}

type Rfc2136 = Extract<DnsFlipTarget["provider"], { type: "rfc2136" }>;

/** Starts the local BIND and etcd servers the config's sandbox targets need. */
export async function startLocalServers(
  config: Pick<AgentConfig, "targets">,
  env: Record<string, string | undefined>,
  log: Logger,
  options: LocalServersOptions = {},
): Promise<LocalServers> {
  const summary: LocalServersSummary = { bind: [], etcd: [], skipped: [] };
  const binds: BindServer[] = [];
  const etcds: EtcdInstance[] = [];
  // If the agent process exits without stop() (a failed start, an uncaught error), take the
  // servers and their temp dirs with it: kill and rmSync are synchronous, as 'exit' requires.
  const onExit = () => {
    for (const s of [...binds, ...etcds]) {
      try {
        process.kill(s.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    for (const dir of [...binds.map((b) => b.dir), ...etcds.map((e) => e.dataDir)]) {
      rmSync(dir, { recursive: true, force: true });
    }
  };
  process.once("exit", onExit);
  const stop = async () => {
    process.removeListener("exit", onExit);
    await Promise.all([...binds.splice(0), ...etcds.splice(0)].map((s) => s.stop().catch(() => {})));
  };
  const skip = (target: string, reason: string) => {
    summary.skipped.push({ target, reason });
    log.warn(`sandbox: not serving ${target} locally: ${reason}`, { target });
  };

  try {
    const installed = options.installed;
    await startBinds(config, env, summary, binds, skip, log, installed ? installed.named : namedPath() !== undefined);
    await startEtcds(config, summary, etcds, skip, log, installed ? installed.etcd : undefined);
  } catch (err) {
    await stop();
    throw err;
  }

  return {
    summary,
    pids: () => [...binds.map((b) => b.pid), ...etcds.map((e) => e.pid)],
    stop: async () => {
      await stop();
      if (summary.bind.some((b) => b.started) || summary.etcd.some((e) => e.started)) {
        log.info("sandbox: stopped the local BIND and etcd servers");
      }
    },
  };
}

async function startBinds(
  config: Pick<AgentConfig, "targets">,
  env: Record<string, string | undefined>,
  summary: LocalServersSummary,
  binds: BindServer[],
  skip: (target: string, reason: string) => void,
  log: Logger,
  namedInstalled: boolean,
): Promise<void> {
  // One named per local server port; targets sharing it must share its zone and key.
  const groups = new Map<number, { name: string; target: DnsFlipTarget; provider: Rfc2136 }[]>();
  for (const [name, t] of Object.entries(config.targets)) {
    if (t.kind !== "dns-flip" || t.provider.type !== "rfc2136") continue;
    const port = localPort(t.provider.server);
    if (port === undefined) continue;
    if (!inZone(t.record.name, t.provider.zone)) {
      skip(name, `record ${t.record.name} is outside zone ${t.provider.zone}`);
      continue;
    }
    const group = groups.get(port) ?? [];
    group.push({ name, target: t, provider: t.provider });
    groups.set(port, group);
  }
  if (groups.size === 0) return;
  if (!namedInstalled) {
    for (const group of groups.values())
      for (const g of group) skip(g.name, "BIND's `named` is not installed: run `npm run setup`");
    return;
  }

  for (const [port, group] of groups) {
    const first = group[0];
    if (!first) continue;
    const { zone, tsig } = first.provider;
    const members = group.filter((g) => {
      if (
        g.provider.zone !== zone ||
        g.provider.tsig.name !== tsig.name ||
        g.provider.tsig.secretEnv !== tsig.secretEnv
      ) {
        skip(g.name, `127.0.0.1:${port} already serves zone ${zone} with key ${tsig.name} for ${first.name}`);
        return false;
      }
      return true;
    });
    const targets = members.map((m) => m.name);
    const extraPorts = [
      ...new Set(
        members.flatMap((m) =>
          m.target.verify.servers.map(localPort).filter((p): p is number => p !== undefined && !groups.has(p)),
        ),
      ),
    ];
    const server = `127.0.0.1:${port}`;

    if (await soaAnswers(port, zone, 300)) {
      log.info(`sandbox: a DNS server already answers for ${zone} on ${server}; using it, not starting BIND`, {
        server,
        targets,
      });
      summary.bind.push({ server, zone, targets, extraPorts: [], started: false });
      continue;
    }
    const secret = env[tsig.secretEnv];
    if (!secret) {
      throw new Error(
        `sandbox: dns-flip target ${first.name} needs its TSIG secret in the environment variable ${tsig.secretEnv} ` +
          "(base64, e.g. from `tsig-keygen`; `npm start` reads it from .dev.vars) to start the local BIND",
      );
    }
    const live: number[] = [];
    for (const p of extraPorts) {
      if (await soaAnswers(p, zone, 200)) log.warn(`sandbox: 127.0.0.1:${p} already answers; not adding it to BIND`);
      else live.push(p);
    }
    const bind = await startBindServer({
      port,
      extraPorts: live,
      zone,
      keyName: tsig.name,
      secret,
      records: members.flatMap((m) => recordLines(m.target)),
    });
    binds.push(bind);
    summary.bind.push({ server, zone, targets, extraPorts: live, started: true, pid: bind.pid });
    log.info(`sandbox: started BIND on ${server} for zone ${zone}`, { server, zone, targets, pid: bind.pid });
  }
}

async function startEtcds(
  config: Pick<AgentConfig, "targets">,
  summary: LocalServersSummary,
  etcds: EtcdInstance[],
  skip: (target: string, reason: string) => void,
  log: Logger,
  etcdInstalled: boolean | undefined,
): Promise<void> {
  const wanted: {
    target: string;
    t: EtcdSyncTeardownTarget;
    role: "primary" | "standby";
    url: string;
    port: number;
  }[] = [];
  for (const [name, t] of Object.entries(config.targets)) {
    if (t.kind !== "etcd-sync-teardown") continue;
    if (t.etcd.tls) {
      skip(name, "the sandbox starts plain-HTTP etcd only; this target uses TLS");
      continue;
    }
    for (const role of ["primary", "standby"] as const) {
      const url = t.etcd[role].endpoints[0];
      const port = url === undefined ? undefined : localEtcdPort(url);
      if (url !== undefined && port !== undefined) wanted.push({ target: name, t, role, url, port });
    }
  }
  if (wanted.length === 0) return;
  if (!(etcdInstalled ?? etcdBinariesAvailable())) {
    for (const target of new Set(wanted.map((w) => w.target))) skip(target, ETCD_SETUP_HINT);
    return;
  }

  const byUrl = new Map<string, Promise<EtcdInstance | undefined>>();
  const start = (w: (typeof wanted)[number]): Promise<EtcdInstance | undefined> => {
    const known = byUrl.get(w.url);
    if (known) return known;
    const p = (async () => {
      if (await etcdHealthy(w.url)) {
        log.info(`sandbox: an etcd already answers on ${w.url}; using it, not starting one`, { target: w.target });
        return undefined;
      }
      const instance = await startEtcdServer(`${w.target}-${w.role}`, { clientPort: w.port });
      etcds.push(instance);
      log.info(`sandbox: started etcd (${w.target} ${w.role}) on ${w.url}`, { pid: instance.pid });
      return instance;
    })();
    byUrl.set(w.url, p);
    return p;
  };
  const settled = await Promise.allSettled(wanted.map(start));
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) throw failed.reason;

  for (const [i, w] of wanted.entries()) {
    const s = settled[i];
    const instance = s?.status === "fulfilled" ? s.value : undefined;
    const entry: LocalEtcdSummary = {
      url: w.url,
      target: w.target,
      role: w.role,
      started: instance !== undefined,
      ...(instance ? { pid: instance.pid } : {}),
    };
    if (instance && w.role === "primary") entry.seeded = await seed(w.url, w.t);
    summary.etcd.push(entry);
  }
}

/** Puts a few keys under each prefix on a fresh primary, so the mirror and the comparison have data. */
async function seed(url: string, t: EtcdSyncTeardownTarget): Promise<number> {
  const client = createEtcdClient({ endpoints: [url] });
  try {
    let n = 0;
    for (const prefix of t.etcd.prefixes) {
      const base = prefix.endsWith("/") ? prefix : `${prefix}/`;
      for (let i = 1; i <= SEED_KEYS; i++) {
        await client.put(`${base}sandbox/seed-${i}`).value(`sandbox seed ${i}`).exec();
        n += 1;
      }
    }
    return n;
  } finally {
    client.close();
  }
}
