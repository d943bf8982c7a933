// What every consumer does around its transport: turn the command line into a URL and a
// StreamCollector, then read until the collector is satisfied or the time is up, and report.

import { UsageError, deadline, finish, numberOption, parseArgs, parseSinkUrl } from "./cli.mjs";
import { StreamCollector, loadValidator } from "./wire.mjs";

/** Usage lines of the options every consumer takes; `unit` is what --count counts ("records", "messages"). */
export function sharedUsage(unit) {
  return `  --executions N       stop after N executions ended (end or error event with parent_id null; default 1, 0 = never)
  --count N            stop after N ${unit} (default: no limit)
  --execution-id ID    only this execution's end stops the consumer
  --timeout SECONDS    give up after this long (default 30; exit code 2)

Prints {"valid", "invalid", "duplicates", "messages", "fields", "executions", "timed_out"} as JSON.
Exit codes: 0 ok, 1 invalid events, 2 timed out, 3 usage or connection error.`;
}

/**
 * Read a consumer's command line (`process.argv`). Returns null when --help printed `usage`,
 * else { options, url, timeout, collector }: the URL comes from the first positional, else
 * `$env`, else `defaultUrl`, and must use one of `schemes`; `prefix` is the CloudEvents
 * header prefix ("ce-", "ce_"); `flags` are extra options without a value.
 */
export function setup({ usage, transport, schemes, env, defaultUrl, defaultPort, prefix, flags = [] }) {
  const { options, positionals } = parseArgs(process.argv.slice(2), ["help", ...flags]);
  if (options.help) {
    process.stdout.write(usage + "\n");
    return null;
  }
  const url = parseSinkUrl(positionals[0] || process.env[env] || defaultUrl, defaultPort);
  if (!schemes.includes(url.scheme)) throw new UsageError(`not a ${transport} URL: ${url.scheme}://`);
  const timeout = numberOption(options, "timeout", 30);
  const collector = new StreamCollector({
    validate: loadValidator(),
    prefix,
    executions: numberOption(options, "executions", 1),
    count: numberOption(options, "count", 0),
    executionId: options["execution-id"] || null,
  });
  return { options, url, timeout, collector };
}

/**
 * Wait for `reading` (it resolves once the collector said stop) at most `seconds`, print the
 * summary with `fields` added, and return the exit code. `close` runs in every case.
 */
export async function readFor(seconds, reading, collector, fields, close) {
  const timer = deadline(seconds);
  try {
    const outcome = await Promise.race([reading, timer.promise]);
    return finish(collector.summary({ timed_out: outcome === "timeout", ...fields }));
  } finally {
    timer.cancel();
    await close();
  }
}
