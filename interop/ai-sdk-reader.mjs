// Reads one execution from the streamll relay with the `ai` package's own client:
// DefaultChatTransport.reconnectToStream (GET, the UI message stream parser) and readUIMessageStream
// (which assembles the assistant message). Prints the final UIMessage as JSON.
//   node ai-sdk-reader.mjs http://127.0.0.1:8000/executions/ID/events?format=ai-sdk
import { DefaultChatTransport, readUIMessageStream } from 'ai';

const url = process.argv[2];
if (!url) {
  console.error('usage: node ai-sdk-reader.mjs RELAY_EVENTS_URL');
  process.exit(2);
}
const transport = new DefaultChatTransport({
  api: url,
  prepareReconnectToStreamRequest: () => ({ api: url }),
});
const stream = await transport.reconnectToStream({ chatId: 'streamll' });
if (stream === null) {
  console.error('the relay has no stream for this execution');
  process.exit(1);
}
let message;
for await (const snapshot of readUIMessageStream({ stream, terminateOnError: true })) {
  message = snapshot;
}
process.stdout.write(JSON.stringify(message) + '\n');
