/**
 * Real etcd 3.4 for tests (real-components §2): independent single-member clusters on 127.0.0.1
 * with random free ports and throwaway data dirs, plus a real `etcdctl make-mirror` between two
 * of them. Every test file that starts these must call `stop()` in afterAll.
 */
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { createEtcdClient } from "../../agent/etcd/client.ts";
import { ETCD_SETUP_HINT, type EtcdMirror, startEtcdMirror } from "../../agent/sandbox/etcd-mirror.ts";

export interface EtcdInstance {
  readonly name: string;
  /** `http://127.0.0.1:<port>` */
  readonly url: string;
  readonly dataDir: string;
  /** Kills the server (SIGKILL: the data dir is throwaway) and removes its data dir. */
  stop(): Promise<void>;
}

/** Throws an error naming `npm run setup` when etcd or etcdctl is missing. */
export function requireEtcdBinaries(): void {
  for (const bin of ["etcd", "etcdctl"]) {
    const r = spawnSync(bin, ["--version"], { stdio: "ignore", env: { ...process.env, ETCDCTL_API: "3" } });
    if (r.error || r.status !== 0) {
      // etcdctl v3 answers `version`, not `--version`, on some builds; try that before failing.
      const alt = spawnSync(bin, ["version"], { stdio: "ignore", env: { ...process.env, ETCDCTL_API: "3" } });
      if (alt.error || alt.status !== 0) throw new Error(`${bin}: ${ETCD_SETUP_HINT}`);
    }
  }
}

/** Reserves `n` distinct free ports on 127.0.0.1 (all held open at once so they differ). */
async function freePorts(n: number): Promise<number[]> {
  const servers: Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = createServer();
      servers.push(s);
      ports.push(
        await new Promise<number>((resolve, reject) => {
          s.once("error", reject);
          s.listen(0, "127.0.0.1", () => {
            const addr = s.address();
            resolve(typeof addr === "object" && addr ? addr.port : 0);
          });
        }),
      );
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((resolve) => s.close(() => resolve()))));
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
  tls?: TlsFiles,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null)
      throw new Error(`etcd exited with ${child.exitCode} before becoming healthy:\n${output()}`);
    if (tls) {
      const client = createEtcdClient({ endpoints: [url], tls: clientTls(tls), callTimeoutMs: 500 });
      try {
        await client.maintenance.status();
        return;
      } catch {
        // not listening yet
      } finally {
        client.close();
      }
      await new Promise((r) => setTimeout(r, 50));
      continue;
    }
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(500) });
      const body = (await res.json()) as { health?: string };
      if (body.health === "true") return;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`etcd at ${url} not healthy after ${timeoutMs} ms:\n${output()}`);
}

export interface StartEtcdOptions {
  extraArgs?: readonly string[];
  /** Serve clients over TLS and require client certificates signed by `caFile`. */
  tls?: TlsFiles;
  /** @default 15000 */
  timeoutMs?: number;
}

/** Starts one single-member etcd cluster on random ports; resolves when healthy. */
export async function startEtcd(name = "etcd", options: StartEtcdOptions = {}): Promise<EtcdInstance> {
  requireEtcdBinaries();
  const timeoutMs = options.timeoutMs ?? 15_000;
  const tls = options.tls;
  const [clientPort, peerPort] = await freePorts(2);
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
  const dataDir = mkdtempSync(join(tmpdir(), `turnout-etcd-${name}-`));
  const child = spawn("etcd", [...args, `--data-dir=${join(dataDir, "data")}`], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let output = "";
  const keep = (chunk: Buffer) => {
    output = (output + chunk.toString()).slice(-8000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  // 'error' (spawn failed) may come without 'exit'; either ends the process's life.
  let dead = false;
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => resolve());
    child.once("error", (err) => {
      output += `\n${err.message}`;
      dead = true;
      resolve();
    });
  });
  const stop = async () => {
    if (!dead && child.exitCode === null && child.signalCode === null) {
      child.kill("SIGKILL");
      await exited;
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  try {
    await waitHealthy(url, child, () => output, timeoutMs, tls);
  } catch (err) {
    await stop();
    throw err;
  }
  return { name, url, dataDir, stop };
}

/** Starts `n` independent etcd clusters in parallel. */
export async function startEtcds(names: readonly string[], options: StartEtcdOptions = {}): Promise<EtcdInstance[]> {
  const settled = await Promise.allSettled(names.map((n) => startEtcd(n, options)));
  const failed = settled.find((s) => s.status === "rejected");
  if (failed) {
    await Promise.all(settled.map((s) => (s.status === "fulfilled" ? s.value.stop() : undefined)));
    throw failed.reason;
  }
  return settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
}

/** A real `etcdctl make-mirror` per prefix from `primary` to `standby` (with client certs when `tls`). */
export function startMirror(
  primary: EtcdInstance,
  standby: EtcdInstance,
  prefixes: readonly string[],
  tls?: TlsFiles,
): EtcdMirror {
  requireEtcdBinaries();
  return startEtcdMirror({
    primaryEndpoints: [primary.url],
    standbyEndpoints: [standby.url],
    prefixes,
    tls: tls ? clientTls(tls) : undefined,
  });
}

/** A throwaway CA with a server certificate for 127.0.0.1 and a client certificate (openssl). */
export interface TlsFiles {
  dir: string;
  caFile: string;
  serverCertFile: string;
  serverKeyFile: string;
  clientCertFile: string;
  clientKeyFile: string;
  remove(): void;
}

/** The client half, in the shape of the target config's `etcd.tls`. */
export function clientTls(t: TlsFiles): { caFile: string; certFile: string; keyFile: string } {
  return { caFile: t.caFile, certFile: t.clientCertFile, keyFile: t.clientKeyFile };
}

/** Creates a CA, a server cert (SAN IP 127.0.0.1) and a client cert with openssl, P-256 keys. */
export function makeTlsFiles(): TlsFiles {
  const dir = mkdtempSync(join(tmpdir(), "turnout-etcd-tls-"));
  const f = (name: string) => join(dir, name);
  const ossl = (args: string[]) => {
    const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
    if (r.error || r.status !== 0) {
      throw new Error(
        `openssl ${args[0]} failed (is openssl installed? run \`npm run setup\`): ${r.stderr ?? r.error}`,
      );
    }
  };
  const key = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  ossl([
    "req",
    "-x509",
    ...key,
    "-keyout",
    f("ca.key"),
    "-out",
    f("ca.crt"),
    "-days",
    "1",
    "-subj",
    "/CN=turnout-test-ca",
  ]);
  const issue = (name: string, cn: string, ext: string) => {
    writeFileSync(f(`${name}.ext`), ext);
    ossl(["req", ...key, "-keyout", f(`${name}.key`), "-out", f(`${name}.csr`), "-subj", `/CN=${cn}`]);
    ossl([
      "x509",
      "-req",
      "-in",
      f(`${name}.csr`),
      "-CA",
      f("ca.crt"),
      "-CAkey",
      f("ca.key"),
      "-CAcreateserial",
      "-out",
      f(`${name}.crt`),
      "-days",
      "1",
      "-extfile",
      f(`${name}.ext`),
    ]);
  };
  issue("server", "127.0.0.1", "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n");
  issue("client", "turnout-agent", "extendedKeyUsage=clientAuth\n");
  return {
    dir,
    caFile: f("ca.crt"),
    serverCertFile: f("server.crt"),
    serverKeyFile: f("server.key"),
    clientCertFile: f("client.crt"),
    clientKeyFile: f("client.key"),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** etcd 3.4's default `--max-txn-ops`. */
export const MAX_TXN_OPS = 128;

/**
 * Loads keys fast: one txn of `batch` puts per request (at most the server's --max-txn-ops),
 * `parallel` requests in flight.
 */
export async function loadKeys(
  client: Etcd3,
  entries: Iterable<readonly [string, string]>,
  batch = MAX_TXN_OPS,
  parallel = 8,
): Promise<number> {
  let total = 0;
  const inflight = new Set<Promise<unknown>>();
  let ops: { request_put: { key: Buffer; value: Buffer } }[] = [];
  const flush = async () => {
    if (ops.length === 0) return;
    const p = client.kv.txn({ success: ops });
    ops = [];
    inflight.add(p);
    void p.finally(() => inflight.delete(p)).catch(() => {});
    if (inflight.size >= parallel) await Promise.race(inflight);
  };
  for (const [key, value] of entries) {
    ops.push({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });
    total += 1;
    if (ops.length >= batch) await flush();
  }
  await flush();
  await Promise.all(inflight);
  return total;
}

/** Polls `check` every 20 ms until it returns true, bounded; for waiting on a real mirror. */
export async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}
