#!/usr/bin/env node
/**
 * `turnout`: the operator CLI (design §10), the package's bin. Node 24 runs this TypeScript file
 * directly (type stripping), as it runs the repo's scripts; see cli/turnout.ts.
 */
import { main } from "../cli/turnout.ts";

const controller = new AbortController();
process.once("SIGINT", () => controller.abort());
process.once("SIGTERM", () => controller.abort());

main(
  process.argv.slice(2),
  process.env,
  { out: (line) => process.stdout.write(`${line}\n`), err: (line) => process.stderr.write(`${line}\n`) },
  controller.signal,
).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`turnout: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
