/**
 * A real Icinga 2 (Debian `icinga2`) for tests: its own config tree and every state path (data,
 * log, cache, spool, run) in a temp dir through `-D` constants, so nothing under /etc or /var is
 * read or written; the checker and notification components, the external command pipe, a file
 * log. The test gives its objects and the files to include as shipped
 * (examples/icinga2/turnout.conf); checks read their exit code from a state file (`setState`).
 */
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { CheckServer } from "./monitoring-process.ts";
import {
  currentUserAndGroup,
  installStateCheck,
  logText,
  requireBinary,
  spawnCheckServer,
} from "./monitoring-process.ts";

export interface Icinga2Options {
  /** Config files to include as they are (the shipped example). */
  includeFiles: readonly string[];
  /** `const` definitions the includes expect (e.g. `{ TurnoutToken: "<token>" }`, as constants.conf holds). */
  constants: Record<string, string>;
  /** The test's own objects; `check_command = "turnout-test-state"` with `vars.state_name` reads a state file. */
  objects: string;
}

/** `setState(name, …)` sets the checks whose `vars.state_name` is `name`; `command` writes to the compat pipe. */
export interface Icinga2Server extends CheckServer {
  /** The Icinga log so far. */
  log(): string;
  /** The Nagios-style compat log so far (`SERVICE ALERT: host;service;CRITICAL;SOFT;1;…` lines). */
  alertLog(): string;
}

/** Starts Icinga 2 and resolves once it has activated its objects and opened the command pipe. */
export async function startIcinga2(options: Icinga2Options): Promise<Icinga2Server> {
  const binary = requireBinary("/usr/sbin/icinga2", "icinga2");
  const dir = mkdtempSync(join(tmpdir(), "turnout-icinga2-"));
  for (const sub of ["data", "log", "cache", "spool", "run", "states", "compat"]) mkdirSync(join(dir, sub));
  const states = join(dir, "states");
  const stateCheck = installStateCheck(dir, states);
  const { script } = stateCheck;
  const commandPipe = join(dir, "run", "icinga2.cmd");
  const logFile = join(dir, "log", "icinga2.log");
  const constants = Object.entries(options.constants)
    .map(([k, v]) => `const ${k} = ${JSON.stringify(v)}`)
    .join("\n");
  const configFile = join(dir, "icinga2.conf");
  writeFileSync(
    configFile,
    `${constants}
include <itl>
object CheckerComponent "checker" { }
object NotificationComponent "notification" { enable_ha = false }
object ExternalCommandListener "command" { command_path = ${JSON.stringify(commandPipe)} }
object FileLogger "main-log" { severity = "information"; path = ${JSON.stringify(logFile)} }
object CompatLogger "compatlog" { log_dir = ${JSON.stringify(join(dir, "compat"))} }
object CheckCommand "turnout-test-state" {
  command = [ ${JSON.stringify(script)}, ${JSON.stringify(`${states}/`)} + "$state_name$" ]
}
${options.includeFiles.map((f) => `include ${JSON.stringify(f)}`).join("\n")}
${options.objects}
`,
  );
  const { user, group } = currentUserAndGroup();
  const defines = [
    `DataDir=${join(dir, "data")}`,
    `LogDir=${join(dir, "log")}`,
    `CacheDir=${join(dir, "cache")}`,
    `SpoolDir=${join(dir, "spool")}`,
    `InitRunDir=${join(dir, "run")}`,
    `PidPath=${join(dir, "run", "icinga2.pid")}`,
    `VarsPath=${join(dir, "data", "icinga2.vars")}`,
    `ObjectsPath=${join(dir, "cache", "icinga2.debug")}`,
    `RunAsUser=${user}`,
    `RunAsGroup=${group}`,
  ].flatMap((d) => ["-D", d]);
  const log = () => logText(logFile);
  const server = await spawnCheckServer({
    name: "icinga2",
    command: binary,
    args: ["daemon", "-c", configFile, ...defines],
    dir,
    commandFile: commandPipe,
    stateCheck,
    ready: async () => existsSync(commandPipe) && log().includes("Activated all objects"),
  });
  return {
    ...server,
    log,
    alertLog: () => logText(join(dir, "compat", "icinga.log")),
  };
}
