#!/usr/bin/env node
// Read streamll events from a Redis stream, validate each body (the entry's `data` field)
// against the wire format v1 schema, check the entry's `event_type` / `execution_id` copies
// against the body, rebuild the streamed text per field, and print a JSON summary on stdout.

import { createClient } from "redis";

import { EXIT, run, settle } from "./lib/cli.mjs";
import { readFor, setup, sharedUsage } from "./lib/consumer.mjs";

const USAGE = `usage: node redis-consumer.mjs [URL] [options]

  URL                  the sink's URL, redis://[user:pass@]host:port[/db]?stream=KEY
                       (default: $STREAMLL_REDIS_URL, else redis://127.0.0.1:6379?stream=streamll_events)
  --stream KEY         stream key to read (overrides the URL's)
  --from ID            read entries after this id (default 0: the whole stream)
${sharedUsage("entries")}`;

/** Redis Streams carry no headers: the entry's copies of event_type and execution_id must match the body. */
function entryProblems(fields) {
  return (body) => {
    const problems = [];
    for (const name of ["event_type", "execution_id"]) {
      if (fields[name] !== body[name]) problems.push(`entry field ${name}=${JSON.stringify(fields[name])}, body says ${JSON.stringify(body[name])}`);
    }
    return problems;
  };
}

/** redis://host:port/db -> the URL node-redis takes (streamll's URL options stripped). */
function clientUrl(url) {
  const db = /^\d+$/.test(url.path) ? url.path : "0";
  const auth = url.password !== null ? `${encodeURIComponent(url.user || "")}:${encodeURIComponent(url.password)}@` : "";
  return `${url.scheme}://${auth}${url.hosts[0]}/${db}`;
}

async function main() {
  const given = setup({
    usage: USAGE,
    transport: "Redis",
    schemes: ["redis", "rediss"],
    env: "STREAMLL_REDIS_URL",
    defaultUrl: "redis://127.0.0.1:6379?stream=streamll_events",
    defaultPort: 6379,
    prefix: null,
  });
  if (!given) return EXIT.ok;
  const { options, url, timeout, collector } = given;
  const key = options.stream || url.params.get("stream") || "streamll_events";
  const client = createClient({ url: clientUrl(url), socket: { connectTimeout: Math.min(timeout, 10) * 1000 } });
  await client.connect();
  let closed = false;
  const reading = (async () => {
    let after = options.from || "0";
    while (!closed) {
      const batches = await client.xRead({ key, id: after }, { BLOCK: 200, COUNT: 500 });
      for (const batch of batches || []) {
        for (const entry of batch.messages) {
          after = entry.id;
          if (collector.accept(entry.message.data ?? "", {}, entryProblems(entry.message))) return "done";
        }
      }
    }
    return "closed";
  })();
  return readFor(timeout, reading, collector, { transport: "redis", stream: key }, async () => {
    closed = true;
    await settle(client.quit(), 2);
  });
}

run(main, USAGE);
