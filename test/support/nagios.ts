/**
 * A real Nagios Core 4 (Debian `nagios4`) for tests: its own tree in a temp dir (main config,
 * objects, resource.cfg, status, log, external command file), `interval_length=1` so check and
 * notification intervals count seconds, checks spread over at most a second. The test gives the
 * object definitions and the files to include as shipped (examples/nagios/turnout.cfg); checks
 * read their exit code from a state file the test writes (`setState`).
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

export interface NagiosOptions {
  /** Object config files to load as they are (the shipped example). */
  includeFiles: readonly string[];
  /**
   * The test's own objects. `$STATECHECK$` in them is replaced by the name of a command that
   * exits with the state last set for its argument (`check_command $STATECHECK$!<name>`).
   */
  objects: string;
  /** `$USERn$` macros of resource.cfg, e.g. `{ USER10: "<token>" }`. */
  resource: Record<string, string>;
}

export interface NagiosServer extends CheckServer {
  /** nagios.log so far. */
  log(): string;
}

const STATE_CHECK = "turnout-test-state";

/** Starts Nagios and resolves once its command file is open and the first status is written. */
export async function startNagios(options: NagiosOptions): Promise<NagiosServer> {
  const binary = requireBinary("/usr/sbin/nagios4", "nagios4");
  const dir = mkdtempSync(join(tmpdir(), "turnout-nagios-"));
  const states = join(dir, "states");
  mkdirSync(states);
  mkdirSync(join(dir, "checkresults"));
  const stateCheck = installStateCheck(dir, states);
  const { script } = stateCheck;
  writeFileSync(
    join(dir, "resource.cfg"),
    Object.entries(options.resource)
      .map(([k, v]) => `$${k}$=${v}\n`)
      .join(""),
  );
  const objects = join(dir, "objects.cfg");
  writeFileSync(
    objects,
    `define timeperiod {
  timeperiod_name 24x7
  alias 24 hours a day, 7 days a week
  sunday 00:00-24:00
  monday 00:00-24:00
  tuesday 00:00-24:00
  wednesday 00:00-24:00
  thursday 00:00-24:00
  friday 00:00-24:00
  saturday 00:00-24:00
}
define command {
  command_name ${STATE_CHECK}
  command_line ${script} ${states}/$ARG1$
}
${options.objects.replaceAll("$STATECHECK$", STATE_CHECK)}
`,
  );
  const commandFile = join(dir, "nagios.cmd");
  const statusFile = join(dir, "status.dat");
  const logFile = join(dir, "nagios.log");
  const { user, group } = currentUserAndGroup();
  const main = [
    `log_file=${logFile}`,
    ...options.includeFiles.map((f) => `cfg_file=${f}`),
    `cfg_file=${objects}`,
    `resource_file=${join(dir, "resource.cfg")}`,
    `status_file=${statusFile}`,
    "status_update_interval=1",
    `object_cache_file=${join(dir, "objects.cache")}`,
    `precached_object_file=${join(dir, "objects.precache")}`,
    `temp_file=${join(dir, "nagios.tmp")}`,
    `temp_path=${dir}`,
    `lock_file=${join(dir, "nagios.lock")}`,
    `check_result_path=${join(dir, "checkresults")}`,
    `command_file=${commandFile}`,
    "check_external_commands=1",
    `query_socket=${join(dir, "nagios.qh")}`,
    "retain_state_information=0",
    `state_retention_file=${join(dir, "retention.dat")}`,
    // Runs as whoever runs the tests (root in CI), not Debian's nagios user.
    `nagios_user=${user}`,
    `nagios_group=${group}`,
    // Intervals in seconds instead of minutes; checks not spread over minutes at start.
    "interval_length=1",
    "max_service_check_spread=1",
    "max_host_check_spread=1",
    "service_inter_check_delay_method=n",
    "host_inter_check_delay_method=n",
    "check_result_reaper_frequency=1",
    // No cached check results (default 15 s, longer than the 1 s intervals): with them Nagios
    // never re-runs a host check, so hosts never change state.
    "cached_host_check_horizon=0",
    "cached_service_check_horizon=0",
    "enable_notifications=1",
    // Flap detection off: the tests toggle checks fast and want exactly the notifications they cause.
    "enable_flap_detection=0",
    "log_service_retries=1",
    "log_host_retries=1",
    "log_notifications=1",
    "log_external_commands=1",
    "log_rotation_method=n",
    "use_syslog=0",
    // Debian's and upstream's sample value: these characters are stripped from *OUTPUT macros.
    "illegal_macro_output_chars=`~$&|'\"<>",
    "",
  ].join("\n");
  const mainFile = join(dir, "nagios.cfg");
  writeFileSync(mainFile, main);
  const server = await spawnCheckServer({
    name: "nagios4",
    command: binary,
    args: [mainFile],
    dir,
    commandFile,
    stateCheck,
    ready: async () => existsSync(commandFile) && existsSync(statusFile),
  });
  return { ...server, log: () => logText(logFile) };
}
