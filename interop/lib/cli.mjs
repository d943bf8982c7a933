// Command-line plumbing shared by the consumers: options, sink-style URLs, the summary, exit codes.

/** Exit codes: 0 stream read and every event valid, 1 invalid events seen, 2 timed out first, 3 usage or connection error. */
export const EXIT = { ok: 0, invalid: 1, timeout: 2, error: 3 };

/**
 * Parse `--name value` / `--name=value` options and positionals.
 * `flags` lists the option names that take no value.
 */
export function parseArgs(argv, flags = []) {
  const options = {};
  const positionals = [];
  for (let index = 0; index < argv.length; index += 1) {
    const arg = argv[index];
    if (!arg.startsWith("--")) {
      positionals.push(arg);
      continue;
    }
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2);
    if (flags.includes(name)) options[name] = true;
    else if (inline !== undefined) options[name] = inline;
    else if (index + 1 < argv.length) options[name] = argv[++index];
    else throw new UsageError(`--${name} needs a value`);
  }
  return { options, positionals };
}

export class UsageError extends Error {}

/**
 * Split a sink URL the way streamll writes them: `scheme://[user[:password]@]host[:port][,host2...][/path][?k=v&...]`.
 * Returns { scheme, user, password, hosts: ["host:port", ...], path (after the first "/", e.g. a Redis db), params }.
 */
export function parseSinkUrl(text, defaultPort) {
  const match = /^([a-z][a-z0-9+.-]*):\/\/(?:([^@/?#]*)@)?([^/?#]*)(?:\/([^?#]*))?(?:\?([^#]*))?$/i.exec(text || "");
  if (!match) throw new UsageError("expected a URL like nats://127.0.0.1:4222?subject=streamll.events");
  const [, scheme, userinfo, hostList, path, query] = match;
  let user = null;
  let password = null;
  if (userinfo) {
    const colon = userinfo.indexOf(":");
    user = decodeURIComponent(colon < 0 ? userinfo : userinfo.slice(0, colon));
    password = colon < 0 ? null : decodeURIComponent(userinfo.slice(colon + 1));
  }
  const hosts = (hostList || "127.0.0.1")
    .split(",")
    .map((host) => host.trim())
    .filter(Boolean)
    .map((host) => (/:\d+$/.test(host) ? host : `${host}:${defaultPort}`));
  return { scheme: scheme.toLowerCase(), user, password, hosts, path: path || "", params: new URLSearchParams(query || "") };
}

/** A positive number option (seconds, counts), or the default. */
export function numberOption(options, name, fallback) {
  if (options[name] === undefined) return fallback;
  const value = Number(options[name]);
  if (!Number.isFinite(value) || value < 0) throw new UsageError(`--${name} must be a number >= 0, got ${options[name]}`);
  return value;
}

/** Print the summary as one JSON line on stdout and pick the exit code. */
export function finish(summary) {
  process.stdout.write(JSON.stringify(summary) + "\n");
  if (summary.invalid.length) return EXIT.invalid;
  if (summary.timed_out) return EXIT.timeout;
  return EXIT.ok;
}

/** Resolve after `seconds`, with a handle to cancel (so a finished consumer exits at once). */
export function deadline(seconds) {
  let timer;
  const promise = new Promise((resolve) => {
    timer = setTimeout(() => resolve("timeout"), seconds * 1000);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** Wait for `promise` at most `seconds` (closing a connection must not keep a finished consumer alive). */
export function settle(promise, seconds) {
  const timer = deadline(seconds);
  return Promise.race([Promise.resolve(promise).catch(() => undefined), timer.promise]).finally(timer.cancel);
}

/** Run `main` and exit with its code; usage and connection errors exit with 3, the message on stderr. */
export async function run(main, usage) {
  let code;
  try {
    code = await main();
  } catch (error) {
    if (error instanceof UsageError) process.stderr.write(`${error.message}\n\n${usage}\n`);
    else process.stderr.write(`error: ${error?.message || error}\n`);
    code = EXIT.error;
  }
  // exit explicitly: a client library's timers must not keep a finished consumer running
  process.stdout.write("", () => process.exit(code));
}
