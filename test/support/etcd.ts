/**
 * Real etcd 3.4 for tests (real-components §2): independent single-member clusters on 127.0.0.1
 * with random free ports and throwaway data dirs, plus a real `etcdctl make-mirror` between two
 * of them. Every test file that starts these must call `stop()` in afterAll. The process-starting
 * core lives in agent/sandbox/etcd-server.ts (the sandbox starts the same servers for `npm start`).
 */
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Etcd3 } from "etcd3";
import { type EtcdMirror, startEtcdMirror } from "../../agent/sandbox/etcd-mirror.ts";
import {
  type EtcdInstance,
  requireEtcdBinaries,
  type StartEtcdOptions,
  startEtcdServer,
} from "../../agent/sandbox/etcd-server.ts";

export { type EtcdInstance, requireEtcdBinaries, type StartEtcdOptions };

/** Starts one single-member etcd cluster on random ports; resolves when healthy. */
export function startEtcd(name = "etcd", options: StartEtcdOptions = {}): Promise<EtcdInstance> {
  return startEtcdServer(name, options);
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
