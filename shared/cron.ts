/**
 * Cron expressions compare field by field: Cloudflare hands `controller.cron` over exactly as
 * configured, but a config written with two spaces between fields still means the same schedule.
 * Used by the worker's scheduled handler and by `npm run config:check`, so both match alike.
 */
export function normalizeCron(cron: string): string {
  return cron.trim().split(/\s+/).join(" ");
}
