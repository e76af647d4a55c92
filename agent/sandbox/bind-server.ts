/**
 * A real BIND 9 on 127.0.0.1: `named -g` with one primary zone that accepts RFC 2136 updates
 * signed with an hmac-sha256 TSIG key, all state in a data dir. The sandbox starts it for dns-flip
 * targets whose server is local (design §9); tests start it on a random free port
 * (test/support/bind.ts). Recipe: real-components.md §1 (the directory must be writable: named
 * writes `<zone>.jnl`).
 */
import { type ChildProcess, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as packet from "dns-packet";
import { freePort } from "./free-port.ts";
import { outputTail, spawnTied } from "./tied-child.ts";

/** A running BIND. */
export interface BindServer {
  /** `127.0.0.1:<port>` */
  server: string;
  port: number;
  zone: string;
  keyName: string;
  /** The TSIG secret, base64 (what `tsig-keygen` prints). */
  secret: string;
  /** Path of the key file (`key "<name>" { algorithm hmac-sha256; secret "…"; };`) for nsupdate -k. */
  keyFile: string;
  dir: string;
  /** The named process id. */
  pid: number;
  /** Runs nsupdate with the key against this server; `lines` are update commands (no server/zone/send). */
  nsupdate(lines: string[]): { status: number | null; output: string };
  /** The last 8000 characters named logged. */
  log(): string;
  stop(): Promise<void>;
}

export interface BindOptions {
  zone?: string;
  /** Zone file lines after SOA/NS, e.g. `www IN A 172.30.41.193`. */
  records?: string[];
  keyName?: string;
  /** Fixed secret (base64) to share a key between servers. */
  secret?: string;
  /** Fixed port (default: a random free one, retried on a clash). */
  port?: number;
  /** More ports the same named answers on (e.g. a target's separate verify server). */
  extraPorts?: number[];
  /** Directory for config, zone and journal (default: a fresh temp dir, removed on stop; a given one is kept). */
  dataDir?: string;
  /** How long to wait for the first SOA answer (default 10 s). */
  timeoutMs?: number;
}

const NAMED_CANDIDATES = ["/usr/sbin/named", "/usr/bin/named"];

/** The `named` binary, or undefined when BIND is not installed. */
export function namedPath(): string | undefined {
  for (const path of NAMED_CANDIDATES) if (existsSync(path)) return path;
  const which = spawnSync("sh", ["-c", "command -v named"], { encoding: "utf8" });
  const found = which.stdout.trim();
  return which.status === 0 && found ? found : undefined;
}

function findNamed(): string {
  const found = namedPath();
  if (found) return found;
  throw new Error("BIND's `named` is not installed: run `npm run setup` (installs bind9 and dnsutils)");
}

/** Fails with a message naming `npm run setup` when `nsupdate` is missing. */
export function requireNsupdate(): string {
  const which = spawnSync("sh", ["-c", "command -v nsupdate"], { encoding: "utf8" });
  const found = which.stdout.trim();
  if (which.status !== 0 || !found) {
    throw new Error("`nsupdate` is not installed: run `npm run setup` (installs bind9-dnsutils)");
  }
  return found;
}

/** True when something on 127.0.0.1:`port` answers an SOA query for `zone` within `timeoutMs`. */
export function soaAnswers(port: number, zone: string, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = createSocket("udp4");
    const timer = setTimeout(() => {
      socket.close();
      resolve(false);
    }, timeoutMs);
    socket.on("error", () => {
      clearTimeout(timer);
      socket.close();
      resolve(false);
    });
    socket.on("message", () => {
      clearTimeout(timer);
      socket.close();
      resolve(true);
    });
    socket.send(packet.encode({ type: "query", id: 1, questions: [{ name: zone, type: "SOA" }] }), port, "127.0.0.1");
  });
}

/** Starts BIND and resolves once it answers an SOA query (bounded: 10 s by default). */
export async function startBindServer(options: BindOptions = {}): Promise<BindServer> {
  const named = findNamed();
  const zone = options.zone ?? "example.test";
  const keyName = options.keyName ?? "turnout-key";
  const secret = options.secret ?? randomBytes(32).toString("base64");
  const ownDir = options.dataDir === undefined;
  const dir = options.dataDir ?? mkdtempSync(join(tmpdir(), "turnout-bind-"));
  if (!ownDir) mkdirSync(dir, { recursive: true });
  const removeDir = () => {
    if (ownDir) rmSync(dir, { recursive: true, force: true });
  };
  const timeoutMs = options.timeoutMs ?? 10_000;
  const keyFile = join(dir, "tsig.key");
  writeFileSync(keyFile, `key "${keyName}" {\n  algorithm hmac-sha256;\n  secret "${secret}";\n};\n`);
  writeFileSync(
    join(dir, `${zone}.zone`),
    [
      "$TTL 60",
      `@ IN SOA ns1.${zone}. admin.${zone}. ( 1 60 60 3600 60 )`,
      `  IN NS ns1.${zone}.`,
      "ns1 IN A 127.0.0.1",
      ...(options.records ?? []),
      "",
    ].join("\n"),
  );

  const attempts = options.port === undefined ? 3 : 1;
  for (let attempt = 0; attempt < attempts; attempt++) {
    const port = options.port ?? (await freePort());
    const listen = [port, ...(options.extraPorts ?? []).filter((p) => p !== port)]
      .map((p) => `listen-on port ${p} { 127.0.0.1; };`)
      .join(" ");
    writeFileSync(
      join(dir, "named.conf"),
      `include "${keyFile}";
options { directory "${dir}"; pid-file "${dir}/named.pid"; session-keyfile "${dir}/session.key";
  ${listen} listen-on-v6 { none; };
  recursion no; allow-query { 127.0.0.1; }; dnssec-validation no; notify no; };
controls { };
zone "${zone}" { type primary; file "${dir}/${zone}.zone"; allow-update { key "${keyName}"; }; };
`,
    );
    const child: ChildProcess = spawnTied(named, ["-g", "-c", join(dir, "named.conf")], {
      stdio: ["ignore", "pipe", "pipe"],
    });
    const output = outputTail(child, 8000);
    // 'error' (spawn failed) may come without 'exit'; either ends the process's life.
    const exited = new Promise<void>((resolve) => {
      child.once("exit", () => resolve());
      child.once("error", () => resolve());
    });
    let running = true;
    void exited.then(() => {
      running = false;
    });

    const deadline = Date.now() + timeoutMs;
    let up = false;
    while (running && Date.now() < deadline) {
      if (await soaAnswers(port, zone, 200)) {
        up = true;
        break;
      }
    }
    // Another server on a fixed port may have answered the probe while named failed to bind.
    if (up && !running) up = false;
    if (!up) {
      child.kill("SIGKILL");
      await exited;
      if (/address in use/i.test(output()) && attempt < attempts - 1) continue;
      removeDir();
      throw new Error(`named did not answer on 127.0.0.1:${port} within ${timeoutMs} ms; its log:\n${output()}`);
    }

    const server = `127.0.0.1:${port}`;
    return {
      server,
      port,
      zone,
      keyName,
      secret,
      keyFile,
      dir,
      pid: child.pid ?? -1,
      nsupdate(lines) {
        const script = [`server 127.0.0.1 ${port}`, `zone ${zone}`, ...lines, "send", ""].join("\n");
        const r = spawnSync(requireNsupdate(), ["-k", keyFile], { input: script, encoding: "utf8", timeout: 10_000 });
        return { status: r.status, output: `${r.stdout}${r.stderr}` };
      },
      log: output,
      async stop() {
        if (running) {
          // Throwaway data dir: SIGKILL is fine and avoids named's ~1 s graceful stop.
          child.kill("SIGKILL");
          await exited;
        }
        removeDir();
      },
    };
  }
  throw new Error("could not start named on a free port after 3 attempts");
}
