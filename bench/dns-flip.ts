/**
 * Benchmark: DNS flips end to end against a local BIND 9 through the dns-flip executor
 * (preflight query → signed compare-and-swap UPDATE → verify query), alternating primary ↔
 * secondary, next to `nsupdate -y` doing the same signed update (prerequisite + delete + add),
 * spawned once per flip, in the same run. Also times the bare signed UPDATE (`sendUpdate`) for
 * a like-for-like figure. Prints a table with ratios and writes bench/results/dns-flip.json.
 * Run with `node bench/dns-flip.ts [flips]`; `run()` returns the figures.
 */
import { spawn } from "node:child_process";
import { mkdirSync, writeFileSync } from "node:fs";
import { pathToFileURL } from "node:url";
import { queryRecord, sendUpdate } from "../agent/dns/rfc2136.ts";
import { parseTsigSecret } from "../agent/dns/tsig.ts";
import type { StepContext } from "../agent/executor.ts";
import { createDnsFlipExecutor } from "../agent/executors/dns-flip.ts";
import { silentLogger } from "../agent/log.ts";
import { type DnsFlipTarget, DnsFlipTargetSchema, type Side } from "../shared/config.ts";
import type { ActionRequest } from "../shared/protocol.ts";
import { requireNsupdate, startBind } from "../test/support/bind.ts";
import { MapMemory } from "../test/support/map-memory.ts";
import { percentile } from "./percentile.ts";

/** Timing of one way of flipping, in milliseconds. */
export interface Timing {
  medianMs: number;
  p99Ms: number;
  meanMs: number;
  maxMs: number;
}

export interface DnsFlipBenchFigures {
  flips: number;
  bind: string;
  /** The whole executor: preflight + update + verify. */
  executor: Timing;
  /** One signed UPDATE from this process (`sendUpdate`), the part nsupdate does. */
  sendUpdate: Timing;
  /** `nsupdate -y` spawned per flip (process start included, as an operator would run it). */
  nsupdate: Timing;
  /** nsupdate median ÷ ours: > 1 means turnout is faster. */
  ratio: { executorVsNsupdate: number; sendUpdateVsNsupdate: number };
  failures: number;
}

const PRIMARY = "172.30.41.193";
const SECONDARY = "172.30.41.194";

function timing(samples: number[]): Timing {
  const sorted = [...samples].sort((a, b) => a - b);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    medianMs: round(percentile(sorted, 50)),
    p99Ms: round(percentile(sorted, 99)),
    meanMs: round(sorted.reduce((a, b) => a + b, 0) / Math.max(1, sorted.length)),
    maxMs: round(sorted.at(-1) ?? Number.NaN),
  };
}

function nsupdateOnce(nsupdate: string, secretArg: string, script: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(nsupdate, ["-y", secretArg], { stdio: ["pipe", "ignore", "pipe"] });
    let err = "";
    child.stderr.on("data", (c: Buffer) => {
      err += c.toString();
    });
    child.on("error", reject);
    child.on("exit", (code) => (code === 0 ? resolve(0) : reject(new Error(`nsupdate exited ${code}: ${err.trim()}`))));
    child.stdin.end(script);
  });
}

/** Runs `flips` flips each way of doing it and returns the figures. */
export async function run(flips = 100): Promise<DnsFlipBenchFigures> {
  const nsupdate = requireNsupdate();
  const bind = await startBind({
    records: [`www IN A ${PRIMARY}`, `raw IN A ${PRIMARY}`, `ns IN A ${PRIMARY}`],
  });
  let failures = 0;
  try {
    const target = (name: string): DnsFlipTarget =>
      DnsFlipTargetSchema.parse({
        kind: "dns-flip",
        provider: {
          type: "rfc2136",
          server: bind.server,
          zone: bind.zone,
          tsig: { name: bind.keyName, algorithm: "hmac-sha256", secretEnv: "TSIG_SECRET" },
        },
        record: { name, type: "A", ttl: 60 },
        values: { primary: [PRIMARY], secondary: [SECONDARY] },
        verify: { servers: [bind.server], timeoutSeconds: 10 },
      });
    const executor = createDnsFlipExecutor({ env: { TSIG_SECRET: bind.secret } });
    const t = target("www.example.test");
    const sides = (i: number): [Side, Side] => (i % 2 === 0 ? ["primary", "secondary"] : ["secondary", "primary"]);
    const values = (side: Side) => (side === "primary" ? PRIMARY : SECONDARY);

    const executorMs: number[] = [];
    for (let i = 0; i < flips; i++) {
      const [from, to] = sides(i);
      const action: ActionRequest = {
        id: `bench-dns:${i + 1}`,
        target: "bench-dns",
        kind: "failover",
        from,
        to,
        dryRun: false,
        force: false,
        reason: "bench",
        issuedAt: new Date().toISOString(),
      };
      const mem = new MapMemory();
      const started = performance.now();
      try {
        for (const step of executor.steps(action, t)) {
          const ctx: StepContext<DnsFlipTarget> = {
            action,
            targetName: "bench-dns",
            target: t,
            log: silentLogger,
            memory: mem,
            signal: new AbortController().signal,
            now: Date.now,
            sleep: (ms) => new Promise((r) => setTimeout(r, ms)),
            progress: () => {},
          };
          const outcome = await step.run(ctx);
          if (outcome?.status === "skipped") throw new Error(`step ${step.name} skipped: ${outcome.detail}`);
        }
        executorMs.push(performance.now() - started);
      } catch {
        failures++;
      }
    }

    const key = { name: bind.keyName, algorithm: "hmac-sha256" as const, secret: parseTsigSecret(bind.secret) };
    const sendMs: number[] = [];
    for (let i = 0; i < flips; i++) {
      const [from, to] = sides(i);
      const started = performance.now();
      try {
        await sendUpdate(
          { server: bind.server, zone: bind.zone, key },
          { name: "raw.example.test", type: "A", ttl: 60, expected: [values(from)], next: [values(to)] },
        );
        sendMs.push(performance.now() - started);
      } catch {
        failures++;
      }
    }

    const nsMs: number[] = [];
    const secretArg = `hmac-sha256:${bind.keyName}:${bind.secret}`;
    for (let i = 0; i < flips; i++) {
      const [from, to] = sides(i);
      const script = [
        `server 127.0.0.1 ${bind.port}`,
        `zone ${bind.zone}`,
        `prereq yxrrset ns.example.test. A ${values(from)}`,
        "update delete ns.example.test. A",
        `update add ns.example.test. 60 A ${values(to)}`,
        "send",
        "",
      ].join("\n");
      const started = performance.now();
      try {
        await nsupdateOnce(nsupdate, secretArg, script);
        nsMs.push(performance.now() - started);
      } catch {
        failures++;
      }
    }
    // All three names must have ended where the alternation says.
    const final = values(sides(flips - 1)[1]);
    for (const name of ["www.example.test", "raw.example.test", "ns.example.test"]) {
      const got = await queryRecord(bind.server, name, "A");
      if (got.join() !== final) failures++;
    }

    const executor_ = timing(executorMs);
    const send = timing(sendMs);
    const ns = timing(nsMs);
    const ratio = (a: number, b: number) => Math.round((a / b) * 10) / 10;
    return {
      flips,
      bind: "BIND 9 on 127.0.0.1 (named -g), TSIG hmac-sha256",
      executor: executor_,
      sendUpdate: send,
      nsupdate: ns,
      ratio: {
        executorVsNsupdate: ratio(ns.medianMs, executor_.medianMs),
        sendUpdateVsNsupdate: ratio(ns.medianMs, send.medianMs),
      },
      failures,
    };
  } finally {
    await bind.stop();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const flips = Number(process.argv[2] ?? 100);
  const f = await run(flips);
  const row = (label: string, t: Timing, ratio: string) =>
    `| ${label.padEnd(44)} | ${String(t.medianMs).padStart(9)} | ${String(t.p99Ms).padStart(9)} | ${String(t.maxMs).padStart(9)} | ${ratio.padStart(22)} |`;
  console.log(`dns-flip bench: ${f.flips} flips per row against ${f.bind}; failures: ${f.failures}`);
  console.log(`| ${"".padEnd(44)} | median ms |    p99 ms |    max ms | nsupdate median ÷ this |`);
  console.log(`|${"-".repeat(46)}|----------:|----------:|----------:|-----------------------:|`);
  console.log(row("turnout executor (preflight+update+verify)", f.executor, `${f.ratio.executorVsNsupdate}×`));
  console.log(row("turnout sendUpdate (signed UPDATE only)", f.sendUpdate, `${f.ratio.sendUpdateVsNsupdate}×`));
  console.log(row("nsupdate -y (spawned per flip)", f.nsupdate, "1×"));
  mkdirSync(new URL("./results", import.meta.url), { recursive: true });
  const out = new URL("./results/dns-flip.json", import.meta.url);
  writeFileSync(out, `${JSON.stringify(f, null, 2)}\n`);
  console.log(`figures written to ${out.pathname}`);
  if (f.failures > 0) process.exitCode = 1;
}
