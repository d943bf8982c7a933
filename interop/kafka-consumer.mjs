#!/usr/bin/env node
// Read streamll events from a Kafka topic (from the beginning), validate each record's
// value against the wire format v1 schema and its ce_* headers and key against the
// body, rebuild the streamed text per field, and print a JSON summary on stdout.

import { randomUUID } from "node:crypto";

import { Kafka, logLevel } from "kafkajs";

import { EXIT, run, settle } from "./lib/cli.mjs";
import { readFor, setup, sharedUsage } from "./lib/consumer.mjs";

const USAGE = `usage: node kafka-consumer.mjs [URL] [options]

  URL                  the sink's URL, kafka://host:port[,host2:port]?topic=T
                       (kafka+ssl:// for TLS; user:password@ for SASL, ?sasl_mechanism=PLAIN|SCRAM-SHA-256|SCRAM-SHA-512)
                       (default: $STREAMLL_KAFKA_URL, else kafka://localhost:9092?topic=streamll)
  --topic T            topic to read (overrides the URL's)
  --group G            consumer group id (default: a new random group, so the topic is read from the beginning)
  --verbose            kafkajs log messages on stderr
${sharedUsage("records")}`;

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
  const given = setup({
    usage: USAGE,
    transport: "Kafka",
    schemes: ["kafka", "kafka+ssl"],
    env: "STREAMLL_KAFKA_URL",
    defaultUrl: "kafka://localhost:9092?topic=streamll",
    defaultPort: 9092,
    prefix: "ce_",
    flags: ["verbose"],
  });
  if (!given) return EXIT.ok;
  const { options, url, timeout, collector } = given;
  const topic = options.topic || url.params.get("topic") || "streamll";

  const kafka = new Kafka(clientConfig(url, options.verbose));
  const consumer = kafka.consumer({ groupId: options.group || `streamll-interop-${randomUUID()}` });
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
  return readFor(timeout, reading, collector, { transport: "kafka", topic }, async () => {
    stopped = true;
    await settle(consumer.disconnect(), 5);
  });
}

run(main, USAGE);
