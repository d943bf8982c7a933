#!/usr/bin/env node
// Read streamll events from a Kafka topic (from the beginning), validate each record's
// value against the wire format v1 schema and its ce_* headers and key against the
// body, rebuild the streamed text per field, and print a JSON summary on stdout.

import { randomUUID } from "node:crypto";

import { Kafka, logLevel } from "kafkajs";

import { EXIT, UsageError, deadline, finish, numberOption, parseArgs, parseSinkUrl, run, settle } from "./lib/cli.mjs";
import { StreamCollector, loadValidator } from "./lib/wire.mjs";

const USAGE = `usage: node kafka-consumer.mjs [URL] [options]

  URL                  the sink's URL, kafka://host:port[,host2:port]?topic=T
                       (kafka+ssl:// for TLS; user:password@ for SASL, ?sasl_mechanism=PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)
                       (default: $STREAMLL_KAFKA_URL, else kafka://localhost:9092?topic=streamll)
  --topic T            topic to read (overrides the URL's)
  --group G            consumer group id (default: a new random group, so the topic is read from the beginning)
  --executions N       stop after N executions ended (end or error event with parent_id null; default 1, 0 = never)
  --count N            stop after N records (default: no limit)
  --execution-id ID    only this execution's end stops the consumer
  --timeout SECONDS    give up after this long (default 30; exit code 2)
  --verbose            kafkajs log messages on stderr

Prints {"valid", "invalid", "duplicates", "messages", "fields", "executions", "timed_out"} as JSON.
Exit codes: 0 ok, 1 invalid events, 2 timed out, 3 usage or connection error.`;

const PREFIX = "ce_";
const DEFAULT_URL = "kafka://localhost:9092?topic=streamll";

/** Record headers (Buffers, possibly repeated) as a lower-case name -> first value string object. */
function headerObject(recordHeaders) {
  const headers = {};
  for (const [name, value] of Object.entries(recordHeaders || {})) {
    const first = Array.isArray(value) ? value[0] : value;
    if (first !== undefined && first !== null) headers[name.toLowerCase()] = first.toString("utf8");
  }
  return headers;
}

/** The key must be the execution_id: that is what keeps one execution on one partition, in order. */
function keyProblems(key, body) {
  const text = key === null || key === undefined ? null : key.toString("utf8");
  if (!body.execution_id) return text === null ? [] : [`record key ${JSON.stringify(text)} but the event has no execution_id`];
  return text === body.execution_id ? [] : [`record key ${JSON.stringify(text)}, body execution_id ${JSON.stringify(body.execution_id)}`];
}

/** kafkajs logs to stdout by default; the summary owns stdout, so logs go to stderr (with --verbose). */
function stderrLogger() {
  return ({ namespace, level, label, log }) => {
    process.stderr.write(`[kafkajs ${label}] ${namespace}: ${log.message}\n`);
  };
}

function clientConfig(url, verbose) {
  const config = {
    clientId: "streamll-interop",
    brokers: url.hosts,
    ssl: url.scheme === "kafka+ssl",
    logLevel: verbose ? logLevel.INFO : logLevel.NOTHING,
    logCreator: stderrLogger,
    connectionTimeout: 5000,
    retry: { retries: 5, initialRetryTime: 200 },
  };
  if (url.user !== null) {
    const mechanism = (url.params.get("sasl_mechanism") || "PLAIN").toLowerCase();
    config.sasl = { mechanism, username: url.user, password: url.password ?? "" };
  }
  return config;
}

async function main() {
  const { options, positionals } = parseArgs(process.argv.slice(2), ["help", "verbose"]);
  if (options.help) {
    process.stdout.write(USAGE + "\n");
    return EXIT.ok;
  }
  const url = parseSinkUrl(positionals[0] || process.env.STREAMLL_KAFKA_URL || DEFAULT_URL, 9092);
  if (!["kafka", "kafka+ssl"].includes(url.scheme)) throw new UsageError(`not a Kafka URL: ${url.scheme}://`);
  const topic = options.topic || url.params.get("topic") || "streamll";
  const timeout = numberOption(options, "timeout", 30);
  const collector = new StreamCollector({
    validate: loadValidator(),
    prefix: PREFIX,
    executions: numberOption(options, "executions", 1),
    count: numberOption(options, "count", 0),
    executionId: options["execution-id"] || null,
  });

  const kafka = new Kafka(clientConfig(url, options.verbose));
  const consumer = kafka.consumer({ groupId: options.group || `streamll-interop-${randomUUID()}` });
  const timer = deadline(timeout);
  let stopped = false;
  const reading = new Promise((resolve, reject) => {
    consumer.on(consumer.events.CRASH, ({ payload }) => {
      if (!payload.restart) reject(payload.error);
    });
    (async () => {
      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: Boolean(options.group),
        eachMessage: async ({ message }) => {
          if (stopped) return;
          const headers = headerObject(message.headers);
          if (collector.accept(message.value ?? Buffer.alloc(0), headers, (body) => keyProblems(message.key, body))) {
            stopped = true;
            resolve("done");
          }
        },
      });
    })().catch(reject);
  });
  try {
    const outcome = await Promise.race([reading, timer.promise]);
    stopped = true;
    return finish(collector.summary({ timed_out: outcome === "timeout", transport: "kafka", topic }));
  } finally {
    timer.cancel();
    await settle(consumer.disconnect(), 5);
  }
}

run(main, USAGE);
