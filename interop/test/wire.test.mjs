// Unit tests of the transport-neutral consumer logic: `npm test --prefix interop`.

import assert from "node:assert/strict";
import { test } from "node:test";

import { StreamCollector, headerProblems, instant, isEndOfExecution, loadValidator } from "../lib/wire.mjs";

const validate = loadValidator();
let counter = 0;

/** A valid v1 event body (overrides merged in) and its matching NATS headers. */
function event(overrides = {}) {
  counter += 1;
  const body = {
    event_type: "custom",
    event_id: `id${counter}`,
    execution_id: "e1",
    parent_id: "root",
    sequence: counter,
    timestamp: "2025-06-01T12:00:00.123456Z",
    module_name: "QA",
    method_name: null,
    operation: null,
    data: {},
    tags: {},
    schema_version: "1",
    ...overrides,
  };
  const headers = {
    "ce-id": body.event_id,
    "ce-type": `dev.streamll.${body.event_type}`,
    "ce-source": "/streamll/QA",
    "ce-time": body.timestamp,
    "ce-specversion": "1.0",
    "ce-subject": body.execution_id,
  };
  return { body, headers };
}

function token(text, index, { field = "answer", lm = "lm1", finish = null, ...rest } = {}) {
  return event({ event_type: "token", parent_id: lm, operation: "token", data: { token: text, token_index: index, field, finish_reason: finish }, ...rest });
}

const end = (overrides = {}) => event({ event_type: "end", parent_id: null, operation: "module", data: { duration_ms: 1 }, ...overrides });

function feed(collector, items) {
  return items.map(({ body, headers }) => collector.accept(JSON.stringify(body), headers));
}

test("the same instant in two RFC 3339 spellings compares equal", () => {
  assert.equal(instant("2025-06-01T12:00:00.5Z"), instant("2025-06-01T14:00:00.500000+02:00"));
  assert.notEqual(instant("2025-06-01T12:00:00.5Z"), instant("2025-06-01T12:00:00.500001Z"));
  assert.equal(instant("yesterday"), null);
});

test("headers must agree with the body", () => {
  const { body, headers } = event();
  assert.deepEqual(headerProblems(headers, body, "ce-"), []);
  const problems = headerProblems({ ...headers, "ce-type": "dev.streamll.end", "ce-id": undefined }, body, "ce-");
  assert.equal(problems.length, 2);
  assert.match(problems.join(), /ce-id missing/);
  assert.match(problems.join(), /ce-type/);
});

test("an execution ends with the end or error of its outermost span", () => {
  assert.ok(isEndOfExecution(end().body));
  assert.ok(isEndOfExecution(end({ event_type: "error", operation: "trace", data: { error_type: "E", error_message: "m" } }).body));
  assert.ok(!isEndOfExecution(end({ parent_id: "module-start", operation: "lm" }).body));
  assert.ok(!isEndOfExecution(event({ parent_id: null }).body));
});

test("text is rebuilt per field and LM call, in token_index order, duplicates skipped", () => {
  const collector = new StreamCollector({ validate, prefix: "ce-" });
  const first = [token("Hel", 0), token("lo", 1, { finish: "stop" })];
  const second = [token(" again", 0, { lm: "lm2", finish: "stop" })];
  const reasoning = token("why", 0, { field: "reasoning", finish: "stop" });
  const stops = feed(collector, [first[1], reasoning, first[0], first[0], ...second, end()]);
  assert.deepEqual(stops, [false, false, false, false, false, true]);
  const summary = collector.summary();
  assert.equal(summary.valid, 5);
  assert.equal(summary.duplicates, 1);
  assert.deepEqual(summary.fields, { answer: "Hello again", reasoning: "why" });
  const [execution] = summary.executions;
  assert.equal(execution.ordered, false); // "lo" arrived before "Hel"
  assert.deepEqual(execution.token_gaps, []);
  assert.equal(execution.ended, "end");
});

test("two stages' fields stay apart per predictor path; a typed field's value is read from its last token", () => {
  const collector = new StreamCollector({ validate, prefix: "ce-" });
  const staged = (text, index, path, lm, extra = {}) =>
    event({ event_type: "token", parent_id: lm, operation: "token",
      data: { token: text, token_index: index, field: extra.field || "answer", finish_reason: extra.finish || null, predictor_path: path, ...extra.data } });
  feed(collector, [
    staged("Draft", 0, "draft.predict", "lm1", { finish: "stop" }),
    staged("Final", 0, "respond", "lm2"),
    staged(" answer", 1, "respond", "lm2", { finish: "field_end" }),
    staged("3", 0, "respond", "lm2", { field: "count", finish: "stop", data: { field_type: "int", value: 3 } }),
    end(),
  ]);
  const summary = collector.summary();
  assert.deepEqual(summary.fields, { answer: "DraftFinal answer", count: "3" });
  assert.deepEqual(summary.predictor_fields, { "draft.predict.answer": "Draft", "respond.answer": "Final answer", "respond.count": "3" });
  assert.deepEqual(summary.values, { "respond.count": 3 });
});

test("missing tokens and invalid bodies are reported, not hidden", () => {
  const collector = new StreamCollector({ validate, prefix: "ce-", executions: 0 });
  const broken = token("x", -1);
  feed(collector, [token("a", 0), token("c", 2), broken]);
  collector.accept("not json", {});
  const summary = collector.summary();
  assert.deepEqual(summary.executions[0].token_gaps, ["answer: token_index 2 at position 1"]);
  assert.equal(summary.invalid.length, 2);
  assert.match(summary.invalid[0].errors.join(), /token_index/);
  assert.match(summary.invalid[1].errors.join(), /not JSON/);
});

test("--execution-id and --count decide when to stop", () => {
  const only = new StreamCollector({ validate, prefix: "ce-", executionId: "e2" });
  assert.deepEqual(feed(only, [end(), end({ execution_id: "e2" })]), [false, true]);
  assert.equal(only.summary().executions.length, 2);
  const counted = new StreamCollector({ validate, prefix: "ce-", executions: 0, count: 2 });
  assert.deepEqual(feed(counted, [event(), event()]), [false, true]);
});

test("tool calls are reported, and a native call's argument tokens rebuild per call", () => {
  const collector = new StreamCollector({ validate, prefix: "ce-" });
  const args = (text, index, call, name, finish = null) =>
    event({
      event_type: "token",
      parent_id: "lm1",
      operation: "token",
      data: { token: text, token_index: index, field: "tool_calls", finish_reason: finish, tool_call_id: call, tool_index: call === "c1" ? 0 : 1, tool_name: name },
    });
  const tool = (type, data) => event({ event_type: type, operation: "tool", module_name: data.tool_name, data });
  feed(collector, [
    args('{"city":', 0, "c1", "weather"),
    args('{"city":', 0, "c2", "population"),
    args(' "Paris"}', 1, "c1", "weather", "tool_calls"),
    args(' "Rome"}', 1, "c2", "population", "tool_calls"),
    tool("tool_start", { tool_call_id: "c1", tool_name: "weather", arguments: { city: "Paris" }, lm_call_id: "lm1" }),
    tool("tool_end", { tool_call_id: "c1", tool_name: "weather", duration_ms: 1, result: "Sunny" }),
    tool("tool_start", { tool_call_id: "c2", tool_name: "population", arguments: { city: "Rome" }, step: 1 }),
    tool("tool_error", { tool_call_id: "c2", tool_name: "population", error_type: "KeyError", error_message: "x" }),
    end(),
  ]);
  const summary = collector.summary();
  assert.deepEqual(summary.invalid, []);
  const [execution] = summary.executions;
  assert.deepEqual(execution.token_gaps, []);
  assert.deepEqual(execution.tool_inputs, { c1: '{"city": "Paris"}', c2: '{"city": "Rome"}' });
  assert.deepEqual(execution.fields, {});
  assert.deepEqual(
    execution.tools.map(({ tool_name, outcome, result, error_type, step, lm_call_id }) => [tool_name, outcome, result ?? error_type, step, lm_call_id]),
    [["weather", "end", "Sunny", null, "lm1"], ["population", "error", "KeyError", 1, null]],
  );
});

test("a tool event without its required data is invalid", () => {
  const collector = new StreamCollector({ validate, prefix: "ce-" });
  feed(collector, [event({ event_type: "tool_start", data: { tool_name: "weather" } })]);
  assert.equal(collector.summary().invalid.length, 1);
});
