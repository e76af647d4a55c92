/**
 * `npm run profile:ingest [-- [--front-only|--storage-floor] [--miniflare] [requests]]`: a CPU profile of the ingest path in workerd. Starts the
 * worker with `wrangler dev --inspector-port` (test/support/worker-process.ts), warms it up, then
 * records a V8 CPU profile over the DevTools protocol (a WebSocket to wrangler's inspector proxy)
 * while it sends the ingest bench's load: 10-alert Alertmanager webhooks fanned out to 10 targets,
 * 50 in flight. In local workerd a Durable Object runs in its worker's isolate, so one profile
 * covers both the front worker and the TargetObjects.
 *
 * `--front-only` profiles bench/front-only-worker.ts instead: the same front worker before a
 * Durable Object that does nothing, to see the front worker's and the RPC calls' costs alone.
 * `--storage-floor` profiles bench/storage-floor-worker.ts, the ingest bench's baseline, so that
 * what turnout spends beyond the floor can be read function by function. `--miniflare` loads the
 * worker straight into Miniflare (the bench's second runtime, with no wrangler proxy in front)
 * and profiles it through Miniflare's own inspector.
 *
 * Writes bench/results/ingest.cpuprofile (open it in Chrome DevTools or speedscope) and
 * bench/results/profile-ingest.json, and prints the split (front worker vs Durable Object vs
 * runtime), the top self-time functions (ours by file:line, through wrangler's source map) and the
 * top inclusive times of our own functions.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { SourceMap, type SourceMapPayload } from "node:module";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { type Endpoint, type Runtime, startEndpoint } from "../bench/endpoint.ts";
import { load, stubAgent, TOKENS, workerConfig } from "../bench/ingest.ts";

const root = join(import.meta.dirname, "..");
const SAMPLING_INTERVAL_US = 200;
const resultsDir = join(root, "bench/results");

/** The parts of the DevTools protocol's Profiler.Profile this script reads. */
interface ProfileNode {
  id: number;
  callFrame: { functionName: string; scriptId: string; url: string; lineNumber: number; columnNumber: number };
  hitCount?: number;
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples?: number[];
  timeDeltas?: number[];
}

/** A minimal DevTools protocol client over the WebSocket the inspector offers. */
class Inspector {
  private nextId = 1;
  private readonly pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  readonly scripts = new Map<string, { url: string; sourceMapURL: string }>();

  private readonly ws: WebSocket;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.addEventListener("message", (ev) => {
      const msg = JSON.parse(String(ev.data)) as {
        id?: number;
        result?: unknown;
        error?: { message: string };
        method?: string;
        params?: { scriptId?: string; url?: string; sourceMapURL?: string };
      };
      if (msg.id !== undefined) {
        const p = this.pending.get(msg.id);
        this.pending.delete(msg.id);
        if (msg.error) p?.reject(new Error(msg.error.message));
        else p?.resolve(msg.result);
      } else if (msg.method === "Debugger.scriptParsed" && msg.params?.scriptId) {
        this.scripts.set(msg.params.scriptId, {
          url: msg.params.url ?? "",
          sourceMapURL: msg.params.sourceMapURL ?? "",
        });
      }
    });
  }

  /** Connects to the first target the inspector at `port` lists. */
  static async connect(port: number): Promise<Inspector> {
    const targets = (await (await fetch(`http://127.0.0.1:${port}/json`)).json()) as {
      title?: string;
      webSocketDebuggerUrl?: string;
    }[];
    const url = targets.find((t) => t.webSocketDebuggerUrl)?.webSocketDebuggerUrl;
    if (!url) throw new Error(`the inspector on port ${port} lists no debuggable target: ${JSON.stringify(targets)}`);
    // The inspector proxy accepts only local origins (a guard against drive-by pages).
    const ws = new WebSocket(url, { headers: { origin: "http://127.0.0.1" } } as unknown as string[]);
    await new Promise<void>((resolve, reject) => {
      ws.addEventListener("open", () => resolve(), { once: true });
      ws.addEventListener("error", () => reject(new Error(`could not open ${url}`)), { once: true });
    });
    return new Inspector(ws);
  }

  send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
    const id = this.nextId++;
    this.ws.send(JSON.stringify({ id, method, params }));
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { resolve: (v) => resolve(v as T), reject });
    });
  }

  close(): void {
    this.ws.close();
  }
}

/**
 * Source maps per script, from the script's sourceMapURL (a file next to it, or a data: URL). The
 * profile names wrangler's bundle by its file name only (`index.js`), so a frame's URL matches the
 * parsed script whose URL ends with it.
 */
class Sources {
  private readonly maps = new Map<string, { map: SourceMap; root: string } | null>();
  private readonly scripts: Inspector["scripts"];

  constructor(scripts: Inspector["scripts"]) {
    this.scripts = scripts;
  }

  private mapFor(url: string): { map: SourceMap; root: string } | null {
    const cached = this.maps.get(url);
    if (cached !== undefined) return cached;
    let found: { map: SourceMap; root: string } | null = null;
    try {
      const script = [...this.scripts.values()].find((s) => s.url === url || s.url.endsWith(`/${url}`));
      const declared = script?.sourceMapURL ?? "";
      const scriptFile = script?.url.startsWith("file://") ? fileURLToPath(script.url) : undefined;
      let text: string | undefined;
      let base = scriptFile ? join(scriptFile, "..") : root;
      if (declared.startsWith("data:")) {
        text = Buffer.from(declared.slice(declared.indexOf(",") + 1), "base64").toString("utf8");
      } else if (scriptFile) {
        const file = declared.startsWith("file://")
          ? fileURLToPath(declared)
          : join(scriptFile, "..", declared || `${scriptFile}.map`);
        if (existsSync(file)) text = readFileSync(file, "utf8");
      }
      if (text) {
        const payload = JSON.parse(text) as SourceMapPayload;
        if (payload.sourceRoot) base = payload.sourceRoot;
        // Resolve sources ourselves (against sourceRoot), so findEntry hands back what the map says.
        found = { map: new SourceMap({ ...payload, sourceRoot: "" }), root: base };
      }
    } catch {
      found = null;
    }
    this.maps.set(url, found);
    return found;
  }

  /** `file:line` of a profile frame (1-based line), repo-relative when the file is in the repo. */
  where(frame: ProfileNode["callFrame"]): string {
    if (!frame.url) return "";
    const found = this.mapFor(frame.url);
    const entry = found?.map.findEntry(frame.lineNumber, frame.columnNumber);
    if (found && entry && "originalSource" in entry && entry.originalSource) {
      const source = entry.originalSource.startsWith("file://")
        ? fileURLToPath(entry.originalSource)
        : entry.originalSource;
      const abs = source.startsWith("/") ? source : join(found.root, source);
      const rel = relative(root, abs);
      return `${rel.startsWith("..") ? abs : rel}:${entry.originalLine + 1}`;
    }
    return `${frame.url}:${frame.lineNumber + 1}`;
  }
}

type Side = "durable object" | "front worker" | "runtime";

/** Where a sample's CPU went: any TargetObject frame on the stack means the Durable Object. */
function sideOf(files: readonly string[]): Side {
  if (files.some((f) => f.startsWith("worker/target/target-object.ts"))) return "durable object";
  if (files.some((f) => /^(worker|shared)\//.test(f) || f.includes("node_modules/hono/"))) return "front worker";
  return "runtime";
}

const pct = (n: number, total: number) => `${((100 * n) / total).toFixed(1)}%`;

/** Self time, inclusive time of our functions, and the side split, from a profile. */
export function analyse(profile: CpuProfile, sources: Sources) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  const samples = profile.samples ?? [];
  // Count samples, not the gaps between them: on a busy machine the sampler thread itself is
  // descheduled, and a gap then says nothing about where the isolate's CPU went. Each sample
  // stands for one sampling interval.
  const interval = samples.length > 1 ? (profile.endTime - profile.startTime) / 1000 / samples.length : 0;
  const duration = (_i: number) => interval;
  const label = (n: ProfileNode) => n.callFrame.functionName || "(anonymous)";
  const stackCache = new Map<number, { frames: ProfileNode[]; files: string[] }>();
  const stackOf = (id: number) => {
    const hit = stackCache.get(id);
    if (hit) return hit;
    const frames: ProfileNode[] = [];
    for (let cur: number | undefined = id; cur !== undefined; cur = parent.get(cur)) {
      const n = byId.get(cur);
      if (n) frames.push(n);
    }
    const out = { frames, files: frames.map((f) => sources.where(f.callFrame)) };
    stackCache.set(id, out);
    return out;
  };
  let total = 0;
  let idle = 0;
  const sides = new Map<Side, number>();
  const self = new Map<string, { ms: number; side: Map<Side, number> }>();
  const inclusive = new Map<string, number>();
  // Inclusive time per package (zod, hono, …) and side: what validation or routing costs in all.
  const packages = new Map<string, number>();
  // Each sample charged to the nearest of our functions on its stack: its own code plus the
  // library (zod) and runtime (SQL, JSON, RPC) work it called, i.e. what changing it can save.
  const charged = new Map<string, number>();
  samples.forEach((id, i) => {
    const node = byId.get(id);
    if (!node) return;
    const ms = duration(i);
    if (label(node) === "(idle)") {
      idle += ms;
      return;
    }
    total += ms;
    const { frames, files } = stackOf(id);
    const side = sideOf(files);
    sides.set(side, (sides.get(side) ?? 0) + ms);
    const where = files[0] ?? "";
    const key = `${label(node)}${where ? ` ${where}` : ""}`;
    const entry = self.get(key) ?? { ms: 0, side: new Map<Side, number>() };
    entry.ms += ms;
    entry.side.set(side, (entry.side.get(side) ?? 0) + ms);
    self.set(key, entry);
    for (const pkg of new Set(files.map((f) => /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f)?.[1]))) {
      if (pkg) packages.set(`${pkg} (${side})`, (packages.get(`${pkg} (${side})`) ?? 0) + ms);
    }
    const nearest = files.findIndex((f) => /^(worker|shared|bench)\//.test(f));
    const owner = frames[nearest];
    if (nearest >= 0 && owner) {
      const name = `${label(owner)} ${files[nearest]}`;
      charged.set(name, (charged.get(name) ?? 0) + ms);
    }
    // Inclusive time of our own functions, each counted once per sample (recursion).
    const seen = new Set<string>();
    frames.forEach((f, k) => {
      const file = files[k] ?? "";
      if (!/^(worker|shared)\//.test(file)) return;
      const name = `${label(f)} ${file}`;
      if (seen.has(name)) return;
      seen.add(name);
      inclusive.set(name, (inclusive.get(name) ?? 0) + ms);
    });
  });
  const topSelf = [...self.entries()]
    .sort((a, b) => b[1].ms - a[1].ms)
    .slice(0, 30)
    .map(([fn, e]) => ({
      function: fn,
      selfMs: Math.round(e.ms),
      selfPct: pct(e.ms, total),
      side: [...e.side.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? "runtime",
    }));
  const topInclusive = [...inclusive.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 30)
    .map(([fn, ms]) => ({ function: fn, totalMs: Math.round(ms), totalPct: pct(ms, total) }));
  const topPackages = [...packages.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 10)
    .map(([pkg, ms]) => ({ package: pkg, totalMs: Math.round(ms), totalPct: pct(ms, total) }));
  const topCharged = [...charged.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 25)
    .map(([fn, ms]) => ({ function: fn, chargedMs: Math.round(ms), chargedPct: pct(ms, total) }));
  return {
    busyMs: Math.round(total),
    idleMs: Math.round(idle),
    sides: Object.fromEntries([...sides.entries()].map(([s, ms]) => [s, { ms: Math.round(ms), pct: pct(ms, total) }])),
    topSelf,
    topInclusive,
    topPackages,
    topCharged,
  };
}

type Profiled = "turnout" | "front-only" | "storage-floor";

const NAMES: Record<Profiled, { stem: string; what: string }> = {
  turnout: { stem: "ingest", what: "turnout's worker" },
  "front-only": { stem: "ingest-front-only", what: "the front-only worker" },
  "storage-floor": { stem: "ingest-storage-floor", what: "the storage floor" },
};

async function main(kind: Profiled, runtime: Runtime, requests: number): Promise<void> {
  const agent = await stubAgent();
  let worker: Endpoint | undefined;
  try {
    const vars = {
      TURNOUT_CONFIG: workerConfig(agent.url),
      ALERTMANAGER_TOKEN: TOKENS.alertmanager,
      OPERATOR_TOKEN: TOKENS.operator,
      TURNOUT_AGENT_SECRET: TOKENS.agent,
    };
    worker = await startEndpoint(runtime, kind, vars, { inspect: true });
    const inspectorPort = worker.inspectorPort;
    if (inspectorPort === undefined) throw new Error("no inspector port");
    // Warm up (isolate, Durable Objects, JIT) before recording, with earlier startsAt values.
    await load(worker, 100, 50, 10);
    const inspector = await Inspector.connect(inspectorPort);
    await inspector.send("Debugger.enable");
    await inspector.send("Profiler.enable");
    await inspector.send("Profiler.setSamplingInterval", { interval: SAMPLING_INTERVAL_US });
    await inspector.send("Profiler.start");
    const figures = await load(worker, requests, 50, 10, 100);
    const { profile } = await inspector.send<{ profile: CpuProfile }>("Profiler.stop");
    await inspector.send("Debugger.disable");
    inspector.close();

    mkdirSync(resultsDir, { recursive: true });
    const { stem, what } = NAMES[kind];
    const profilePath = join(resultsDir, `${stem}.cpuprofile`);
    writeFileSync(profilePath, JSON.stringify(profile));
    const summary = analyse(profile, new Sources(inspector.scripts));
    writeFileSync(
      join(resultsDir, `profile-${stem}.json`),
      `${JSON.stringify({ at: new Date().toISOString(), load: figures, ...summary }, null, 2)}\n`,
    );

    console.log(
      `profiled ${requests} webhooks to ${what} under ${runtime} (10 alerts → 10 targets, 50 in flight): ${figures.requestsPerSecond} req/s, ` +
        `${figures.cpuMsPerRequest} ms workerd CPU each; ${summary.busyMs} ms busy in the isolate, ${summary.idleMs} ms idle`,
    );
    console.log("\nsplit of busy time:");
    for (const [side, v] of Object.entries(summary.sides))
      console.log(`  ${side.padEnd(16)} ${v.pct.padStart(6)}  ${v.ms} ms`);
    console.log("\ntop self time:");
    for (const r of summary.topSelf)
      console.log(
        `  ${r.selfPct.padStart(6)}  ${String(r.selfMs).padStart(6)} ms  ${r.side.padEnd(14)}  ${r.function}`,
      );
    console.log("\ntop inclusive time, our functions:");
    for (const r of summary.topInclusive)
      console.log(`  ${r.totalPct.padStart(6)}  ${String(r.totalMs).padStart(6)} ms  ${r.function}`);
    console.log("\nself time charged to the nearest of our functions (its library and runtime calls included):");
    for (const r of summary.topCharged)
      console.log(`  ${r.chargedPct.padStart(6)}  ${String(r.chargedMs).padStart(6)} ms  ${r.function}`);
    console.log("\ninclusive time per package:");
    for (const r of summary.topPackages)
      console.log(`  ${r.totalPct.padStart(6)}  ${String(r.totalMs).padStart(6)} ms  ${r.package}`);
    console.log(`\nprofile written to ${profilePath}`);
  } finally {
    await worker?.stop();
    await agent.close();
  }
}

const args = process.argv.slice(2);
const kind: Profiled = args.includes("--front-only")
  ? "front-only"
  : args.includes("--storage-floor")
    ? "storage-floor"
    : "turnout";
await main(
  kind,
  args.includes("--miniflare") ? "miniflare" : "wrangler",
  Number(args.find((a) => /^\d+$/.test(a)) ?? 1000),
);
