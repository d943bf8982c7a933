#!/usr/bin/env node
// Read streamll events from a NATS JetStream stream, validate each body against the
// wire format v1 schema and its ce-* headers against the body, rebuild the streamed
// text per field, and print a JSON summary on stdout.

import { AckPolicy, DeliverPolicy, connect } from "nats";

import { EXIT, run, settle } from "./lib/cli.mjs";
import { readFor, setup, sharedUsage } from "./lib/consumer.mjs";

const USAGE = `usage: node nats-consumer.mjs [URL] [options]

  URL                  the sink's URL, nats://[user:pass@]host:port?subject=S&stream=N
                       (default: $STREAMLL_NATS_URL, else nats://127.0.0.1:4222?subject=streamll.events&stream=STREAMLL)
  --subject S          subject to read (overrides the URL's)
  --stream N           stream holding it (default: the URL's, else the stream that captures the subject)
  --durable NAME       read with this durable pull consumer (created if missing, explicit acks);
                       default: an ephemeral ordered consumer from the first message
${sharedUsage("messages")}`;

/** The message's headers as a lower-case name -> first value object. */
function headerObject(msgHeaders) {
  const headers = {};
  if (!msgHeaders) return headers;
  for (const name of msgHeaders.keys()) headers[name.toLowerCase()] = msgHeaders.get(name);
  return headers;
}

/** Wait until the stream exists (the producer may create it after we start), then open the consumer. */
async function openConsumer(nc, { stream, subject, durable }) {
  const jsm = await nc.jetstreamManager();
  for (;;) {
    try {
      const name = stream || (await jsm.streams.find(subject));
      if (!durable) return await nc.jetstream().consumers.get(name, { filterSubjects: subject });
      await jsm.consumers.add(name, {
        durable_name: durable,
        ack_policy: AckPolicy.Explicit,
        deliver_policy: DeliverPolicy.All,
        filter_subject: subject,
      });
      return await nc.jetstream().consumers.get(name, durable);
    } catch (error) {
      const missing = /stream not found|no stream matches subject/i.test(String(error?.message));
      if (!missing) throw error;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }
}

async function main() {
  const given = setup({
    usage: USAGE,
    transport: "NATS",
    schemes: ["nats", "tls"],
    env: "STREAMLL_NATS_URL",
    defaultUrl: "nats://127.0.0.1:4222?subject=streamll.events&stream=STREAMLL",
    defaultPort: 4222,
    prefix: "ce-",
  });
  if (!given) return EXIT.ok;
  const { options, url, timeout, collector } = given;
  const subject = options.subject || url.params.get("subject") || "streamll.events";
  const stream = options.stream || url.params.get("stream") || null;

  const auth = url.password !== null ? { user: url.user, pass: url.password } : url.user !== null ? { token: url.user } : {};
  const servers = url.hosts.map((host) => `${url.scheme}://${host}`);
  const nc = await connect({ servers, ...auth, timeout: Math.min(timeout, 10) * 1000 });
  let messages = null;
  const reading = (async () => {
    const consumer = await openConsumer(nc, { stream, subject, durable: options.durable });
    messages = await consumer.consume();
    for await (const message of messages) {
      const stop = collector.accept(message.data, headerObject(message.headers));
      if (options.durable) message.ack();
      if (stop) return "done";
    }
    return "closed";
  })();
  return readFor(timeout, reading, collector, { transport: "nats", subject }, async () => {
    messages?.stop();
    await settle(nc.close(), 2);
  });
}

run(main, USAGE);
