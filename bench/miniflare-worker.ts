/**
 * Runs a worker loaded directly into Miniflare (the `miniflare` package's API): no `wrangler dev`
 * in front, so no proxy worker and no second workerd process, and the benches' figures show the
 * worker's own cost. The entry is bundled with esbuild the way wrangler does (ESM, the `workerd`
 * export condition, `cloudflare:*` and `node:*` left to the runtime).
 */
import { mkdtempSync, rmSync } from "node:fs";
import { builtinModules } from "node:module";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { build, type Plugin } from "esbuild";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";
import { freePorts } from "../test/support/free-port.ts";
import { workerdDescendants } from "./workerd-cpu.ts";

const root = join(import.meta.dirname, "..");

/** A running worker and the workerd processes that serve it. */
export interface DirectWorker {
  url: string;
  /** The DevTools protocol port, when one was asked for. */
  inspectorPort?: number;
  /** workerd processes started for this worker (for {@link cpuMs}). */
  pids: number[];
  stop(): Promise<void>;
}

export interface DirectWorkerOptions {
  /** Entry module, relative to the repo root (e.g. `worker/index.ts`) or absolute. */
  entry: string;
  vars: Record<string, string>;
  /** Durable Object bindings: binding name → class name (SQLite-backed, as in wrangler.toml). */
  durableObjects?: Record<string, string>;
  /** Serve the DevTools protocol on this 127.0.0.1 port (`npm run profile:ingest -- --miniflare`). */
  inspectorPort?: number;
}

/**
 * Node builtins as the cloudevents SDK asks for them: bare (`"util"`) and through CommonJS
 * `require`, which an ESM bundle cannot do at run time. An `import` becomes `node:util`, left to
 * workerd (`nodejs_compat`); a `require` becomes a small module that imports `node:util` and
 * exports it, so the require is resolved inside the bundle. Wrangler's bundler does the same.
 */
const nodeBuiltins: Plugin = {
  name: "node-builtins",
  setup(b) {
    const names = builtinModules.filter((m) => !m.startsWith("_"));
    const escaped = names.map((n) => n.replace(/^node:/, "").replace(/[/]/g, "\\/"));
    const filter = new RegExp(`^(node:)?(${[...new Set(escaped)].join("|")})$`);
    b.onResolve({ filter }, (args) => {
      const path = args.path.startsWith("node:") ? args.path : `node:${args.path}`;
      if (args.kind === "require-call") return { path, namespace: "node-require" };
      return { path, external: true };
    });
    b.onLoad({ filter: /.*/, namespace: "node-require" }, (args) => ({
      contents: `import * as m from ${JSON.stringify(args.path)}; module.exports = m.default ?? m;`,
      loader: "js",
    }));
  },
};

/** Bundles `entry` and starts it in Miniflare on a free 127.0.0.1 port; resolves once it answers. */
export async function startDirectWorker(options: DirectWorkerOptions): Promise<DirectWorker> {
  const dir = mkdtempSync(join(tmpdir(), "turnout-miniflare-"));
  const outfile = join(dir, "worker.js");
  await build({
    entryPoints: [resolve(root, options.entry)],
    // Packages resolve from the repo's node_modules, also for an entry outside the repo.
    nodePaths: [join(root, "node_modules")],
    outfile,
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2023",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["module", "main"],
    external: ["cloudflare:*", "node:*"],
    plugins: [nodeBuiltins],
    jsx: "automatic",
    jsxImportSource: "hono/jsx",
    sourcemap: "linked",
    logLevel: "silent",
  });
  const [port = 0] = await freePorts(1);
  const before = new Set(workerdDescendants(process.pid));
  // Miniflare 5 takes a new options shape; the v4 one (one worker, script + bindings) converts.
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      host: "127.0.0.1",
      port,
      modules: true,
      scriptPath: outfile,
      // Module names are paths relative to this root; the bundle lives outside the repo.
      modulesRoot: dir,
      compatibilityDate: "2026-11-01",
      compatibilityFlags: ["nodejs_compat"],
      ...(options.inspectorPort === undefined ? {} : { inspectorPort: options.inspectorPort }),
      bindings: options.vars,
      durableObjects: Object.fromEntries(
        Object.entries(options.durableObjects ?? {}).map(([binding, className]) => [
          binding,
          { className, useSQLite: true },
        ]),
      ),
    }),
  );
  const stop = async () => {
    await mf.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const url = (await mf.ready).origin;
    const pids = workerdDescendants(process.pid).filter((p) => !before.has(p));
    if (pids.length === 0) throw new Error("Miniflare started no workerd process that this bench can see");
    return {
      url,
      pids,
      stop,
      ...(options.inspectorPort === undefined ? {} : { inspectorPort: options.inspectorPort }),
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
