/**
 * A real etcd 3.4 single-member cluster on 127.0.0.1 (real-components §2). The sandbox starts a
 * pair of them for etcd-sync-teardown targets whose endpoints are local (design §9); tests start
 * them on random free ports (test/support/etcd.ts).
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createEtcdClient } from "../etcd/client.ts";
import { ETCD_SETUP_HINT } from "./etcd-mirror.ts";
import { freePorts } from "./free-port.ts";
import { outputTail, spawnTied } from "./tied-child.ts";

export interface EtcdInstance {
  readonly name: string;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly dataDir: string;
  /** The etcd process id. */
  readonly pid: number;
  /** Kills the server (SIGKILL: the data dir is throwaway) and removes its data dir (a temp one). */
  stop(): Promise<void>;
}

/** Server and client certificates for an etcd that requires client certs (tests). */
export interface EtcdServerTls {
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
}

let binariesAvailable: boolean | undefined;

/**
 * True when both `etcd` and `etcdctl` can be run. Looked up once per process: every
 * startEtcdServer checks it, and a test file starts many servers.
 */
export function etcdBinariesAvailable(): boolean {
  binariesAvailable ??= ["etcd", "etcdctl"].every((bin) => {
    const env = { ...process.env, ETCDCTL_API: "3" };
    const r = spawnSync(bin, ["--version"], { stdio: "ignore", env });
    if (!r.error && r.status === 0) return true;
    // etcdctl v3 answers `version`, not `--version`, on some builds; try that before failing.
    const alt = spawnSync(bin, ["version"], { stdio: "ignore", env });
    return !alt.error && alt.status === 0;
  });
  return binariesAvailable;
}

/** Throws an error naming `npm run setup` when etcd or etcdctl is missing. */
export function requireEtcdBinaries(): void {
  if (!etcdBinariesAvailable()) throw new Error(`etcd: ${ETCD_SETUP_HINT}`);
}

/** True when a plain-HTTP etcd at `url` reports `{"health":"true"}` within `timeoutMs`. */
export async function etcdHealthy(url: string, timeoutMs = 500): Promise<boolean> {
  try {
    const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(timeoutMs) });
    const body = (await res.json()) as { health?: string };
    return body.health === "true";
  } catch {
    return false;
  }
}

/**
 * Polls etcd every 50 ms until it answers, bounded: `/health` on the client URL, or (TLS with
 * client-cert auth, where a plain fetch cannot authenticate) a status call with the client cert.
 */
async function waitHealthy(
  url: string,
  child: ChildProcess,
  output: () => string,
  timeoutMs: number,
  tls?: EtcdServerTls,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`etcd exited with ${child.exitCode} before becoming healthy:\n${output()}`);
    if (tls) {
      const client = createEtcdClient({
        endpoints: [url],
        tls: { caFile: tls.caFile, certFile: tls.clientCertFile, keyFile: tls.clientKeyFile },
        callTimeoutMs: 500,
      });
      try {
        await client.maintenance.status();
        return;
      } catch {
        // not listening yet
      } finally {
        client.close();
      }
    } else if (await etcdHealthy(url)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${url} not healthy after ${timeoutMs} ms:\n${output()}`);
}

export interface StartEtcdOptions {
  extraArgs?: readonly string[];
  /** Serve clients over TLS and require client certificates signed by `caFile`. */
  tls?: EtcdServerTls;
  /** @default 15000 */
  timeoutMs?: number;
  /** Fixed client port (default: a random free one). */
  clientPort?: number;
  /** Fixed peer port (default: a random free one). */
  peerPort?: number;
  /** Directory for the member's data (default: a fresh temp dir, removed on stop; a given one is kept). */
  dataDir?: string;
}

/** Starts one single-member etcd cluster; resolves when healthy. */
export async function startEtcdServer(name = "etcd", options: StartEtcdOptions = {}): Promise<EtcdInstance> {
  requireEtcdBinaries();
  const timeoutMs = options.timeoutMs ?? 15_000;
  const tls = options.tls;
  const [randomClient = 0, randomPeer = 0] = await freePorts(2);
  const clientPort = options.clientPort ?? randomClient;
  const peerPort = options.peerPort ?? (randomPeer === clientPort ? randomClient : randomPeer);
  const url = `${tls ? "https" : "http"}://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  const args = [
    `--name=${name}`,
    `--listen-client-urls=${url}`,
    `--advertise-client-urls=${url}`,
    `--listen-peer-urls=${peer}`,
    `--initial-advertise-peer-urls=${peer}`,
    `--initial-cluster=${name}=${peer}`,
    "--initial-cluster-state=new",
    `--initial-cluster-token=${name}-${clientPort}`,
    "--logger=zap",
    "--log-level=warn",
    ...(tls
      ? [
          `--cert-file=${tls.serverCertFile}`,
          `--key-file=${tls.serverKeyFile}`,
          `--trusted-ca-file=${tls.caFile}`,
          "--client-cert-auth",
        ]
      : []),
    ...(options.extraArgs ?? []),
  ];
  const ownDir = options.dataDir === undefined;
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), `turnout-etcd-${name}-`));
  if (!ownDir) mkdirSync(dataDir, { recursive: true });
  const child = spawnTied("etcd", [...args, `--data-dir=${join(dataDir, "data")}`], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = outputTail(child, 8000);
  // 'error' (spawn failed) may come without 'exit'; either ends the process's life.
  let dead = false;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", () => {
      dead = true;
      resolve();
    });
  });
  const stop = async () => {
    if (!dead && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    if (ownDir) rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(url, child, output, timeoutMs, tls);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name, url, dataDir, pid: child.pid ?? -1, stop };
}
