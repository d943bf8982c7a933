// streamll wire format v1 for Node.js consumers: schema validation, CloudEvents
// header checks, and rebuilding streamed field text from token events.
//
// Transport-neutral: the NATS and Kafka consumers hand every message body (and its
// headers as a plain lower-case name -> string object) to StreamCollector.accept().

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";

import Ajv2020 from "ajv/dist/2020.js";
import addFormats from "ajv-formats";

const here = dirname(fileURLToPath(import.meta.url));

/** Where the schema lives in the repository; STREAMLL_SCHEMA overrides it. */
export const DEFAULT_SCHEMA = resolve(here, "../../packages/streamll-core/src/streamll/schema/event.v1.json");

export const TYPE_PREFIX = "dev.streamll.";

/** Compile the v1 JSON Schema (draft 2020-12) with ajv; returns ajv's validate function. */
export function loadValidator(schemaPath = process.env.STREAMLL_SCHEMA || DEFAULT_SCHEMA) {
  const schema = JSON.parse(readFileSync(schemaPath, "utf8"));
  const ajv = new Ajv2020({ strict: true, allErrors: true });
  addFormats(ajv);
  return ajv.compile(schema);
}

/** ajv errors as "path: message" strings, like the Python validator prints them. */
export function describeErrors(errors) {
  return (errors || []).map((error) => `${error.instancePath || "/"}: ${error.message}`);
}

const RFC3339 = /^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:\d{2})$/i;

/** An RFC 3339 time as "epoch-ms-of-whole-second.nanoseconds", so two spellings of one instant compare equal. */
export function instant(text) {
  const match = RFC3339.exec(text || "");
  if (!match) return null;
  const seconds = Date.parse(match[1] + match[3].toUpperCase());
  const fraction = (match[2] || ".").slice(1).padEnd(9, "0");
  return `${seconds}.${fraction}`;
}

/**
 * Problems with the CloudEvents binary-mode headers of one message ([] when they match the body).
 * `headers` maps lower-case names to strings; `prefix` is "ce_" (Kafka) or "ce-" (NATS).
 */
export function headerProblems(headers, body, prefix) {
  const problems = [];
  const expect = (name, wanted, same = (a, b) => a === b) => {
    const value = headers[prefix + name];
    if (value === undefined) problems.push(`header ${prefix}${name} missing`);
    else if (!same(value, wanted)) problems.push(`header ${prefix}${name}=${JSON.stringify(value)}, body says ${JSON.stringify(wanted)}`);
  };
  expect("id", body.event_id);
  expect("type", TYPE_PREFIX + body.event_type);
  expect("specversion", "1.0");
  expect("subject", body.execution_id);
  expect("time", body.timestamp, (a, b) => instant(a) !== null && instant(a) === instant(b));
  if (!headers[prefix + "source"]) problems.push(`header ${prefix}source missing`);
  return problems;
}

/**
 * True for the event that closes an execution: the end (or error) of its outermost span, the one
 * with no parent (operation "module" for an instrumented module, "trace" for streamll.trace).
 */
export function isEndOfExecution(body) {
  return (body.event_type === "end" || body.event_type === "error") && body.parent_id === null;
}

/** "respond.answer": the predictor path (data.predictor_path) and the field; the bare field when there is no path. */
export function predictorField(event) {
  const path = event.data.predictor_path;
  return typeof path === "string" && path ? `${path}.${event.data.field}` : event.data.field;
}

/**
 * Text per field of one execution: token events grouped per LM call (and, for a native tool
 * call's argument tokens, per tool_call_id), each group in token_index order.
 * `fields` joins every predictor's stream of a field; `predictor_fields` keeps the stages apart
 * ("draft.answer", "respond.answer"); `values` holds the parsed values of typed fields (data.value).
 * Tool-call arguments go to `toolInputs` (tool_call_id -> text), not to the fields.
 */
export function fieldTexts(tokens) {
  const groups = new Map(); // "field\u0000parent_id\u0000tool_call_id" -> tokens of one field in one LM call
  for (const event of [...tokens].sort((a, b) => a.sequence - b.sequence)) {
    const key = `${event.data.field}\u0000${event.parent_id}\u0000${event.data.tool_call_id ?? ""}`;
    if (!groups.has(key)) groups.set(key, []);
    groups.get(key).push(event);
  }
  const fields = {};
  const predictorFields = {};
  const values = {};
  const toolInputs = {};
  const gaps = [];
  for (const group of groups.values()) {
    group.sort((a, b) => a.data.token_index - b.data.token_index);
    const field = group[0].data.field;
    group.forEach((event, position) => {
      if (event.data.token_index !== position) gaps.push(`${field}: token_index ${event.data.token_index} at position ${position}`);
    });
    const text = group.map((event) => event.data.token).join("");
    const callId = group[0].data.tool_call_id;
    if (typeof callId === "string") {
      toolInputs[callId] = (toolInputs[callId] || "") + text;
      continue;
    }
    const qualified = predictorField(group[0]);
    fields[field] = (fields[field] || "") + text;
    predictorFields[qualified] = (predictorFields[qualified] || "") + text;
    const last = group.at(-1);
    if (last.data.finish_reason !== null && "value" in last.data) values[qualified] = last.data.value;
  }
  return { fields, predictorFields, values, toolInputs, gaps };
}

/** One tool call as the summary reports it, from its tool_start and its tool_end / tool_error. */
function toolCall(start) {
  const { tool_call_id, tool_name, arguments: args, step, lm_call_id } = start.data;
  return { tool_call_id, tool_name, arguments: args, step: step ?? null, lm_call_id: lm_call_id ?? null, outcome: null };
}

/** Everything a consumer learns from a stream of messages; summary() is what it prints. */
export class StreamCollector {
  /**
   * @param {object} options
   * @param {Function} options.validate ajv validate function (loadValidator())
   * @param {string|null} options.prefix CloudEvents header prefix: "ce_" or "ce-"; null for a transport without headers (Redis)
   * @param {number} [options.executions] stop once this many executions have ended (default 1; 0 = never)
   * @param {number} [options.count] stop after this many messages (0 = no limit)
   * @param {string} [options.executionId] only this execution counts towards stopping and fields
   */
  constructor({ validate, prefix, executions = 1, count = 0, executionId = null }) {
    this.validate = validate;
    this.prefix = prefix;
    this.stopAfterExecutions = executions;
    this.stopAfterCount = count;
    this.executionId = executionId;
    this.messages = 0;
    this.valid = 0;
    this.duplicates = 0;
    this.invalid = [];
    this.seen = new Set();
    this.byExecution = new Map();
    this.ended = [];
  }

  /**
   * Take one message; returns true when the consumer should stop.
   * `check(body)` may add transport-specific problems (e.g. a Kafka key that is not the execution_id).
   */
  accept(raw, headers = {}, check = null) {
    this.messages += 1;
    let body;
    try {
      body = JSON.parse(typeof raw === "string" ? raw : Buffer.from(raw).toString("utf8"));
    } catch (error) {
      this.invalid.push({ event_id: null, errors: [`not JSON: ${error.message}`] });
      return this.done();
    }
    const schemaOk = this.validate(body);
    const problems = schemaOk ? [] : describeErrors(this.validate.errors);
    const headerChecks = this.prefix === null ? [] : headerProblems(headers, body, this.prefix); // Redis has no headers
    if (schemaOk) problems.push(...headerChecks, ...(check ? check(body) : []));
    const eventId = body && typeof body === "object" ? body.event_id ?? null : null;
    if (problems.length) {
      this.invalid.push({ event_id: eventId, event_type: body?.event_type ?? null, errors: problems });
      return this.done();
    }
    if (this.seen.has(body.event_id)) {
      this.duplicates += 1; // at-least-once delivery: the same event twice is not a new event
      return this.done();
    }
    this.seen.add(body.event_id);
    this.valid += 1;
    this.record(body);
    return this.done();
  }

  record(body) {
    let execution = this.byExecution.get(body.execution_id);
    if (!execution) {
      execution = { execution_id: body.execution_id, module_name: null, events: 0, tokens: [], tools: [], lastSequence: -1, ordered: true, ended: null };
      this.byExecution.set(body.execution_id, execution);
    }
    execution.events += 1;
    if (body.sequence <= execution.lastSequence) execution.ordered = false;
    execution.lastSequence = Math.max(execution.lastSequence, body.sequence);
    if (body.event_type === "token") execution.tokens.push(body);
    if (body.event_type === "tool_start") execution.tools.push(toolCall(body));
    if (body.event_type === "tool_end" || body.event_type === "tool_error") {
      const call = execution.tools.find((each) => each.tool_call_id === body.data.tool_call_id);
      if (call) {
        call.outcome = body.event_type === "tool_end" ? "end" : "error";
        if (call.outcome === "end") call.result = body.data.result;
        else call.error_type = body.data.error_type;
      }
    }
    if (body.parent_id === null && body.event_type === "start") execution.module_name = body.module_name;
    if (isEndOfExecution(body)) {
      execution.ended = body.event_type;
      if (this.executionId === null || this.executionId === body.execution_id) this.ended.push(body.execution_id);
    }
  }

  done() {
    if (this.stopAfterCount && this.messages >= this.stopAfterCount) return true;
    return this.stopAfterExecutions > 0 && this.ended.length >= this.stopAfterExecutions;
  }

  /** The JSON summary: {valid, invalid, fields, executions, ...}. */
  summary(extra = {}) {
    const executions = [...this.byExecution.values()].map((execution) => {
      const { fields, predictorFields, values, toolInputs, gaps } = fieldTexts(execution.tokens);
      return {
        execution_id: execution.execution_id,
        module_name: execution.module_name,
        events: execution.events,
        tokens: execution.tokens.length,
        ordered: execution.ordered,
        ended: execution.ended,
        token_gaps: gaps,
        fields,
        predictor_fields: predictorFields,
        values,
        tools: execution.tools,
        tool_inputs: toolInputs,
      };
    });
    // "fields" is the text of the execution that ended the stream, else of the last execution seen
    const focusId = this.ended.at(-1) ?? this.executionId ?? executions.at(-1)?.execution_id;
    const focus = executions.find((execution) => execution.execution_id === focusId);
    return {
      valid: this.valid,
      invalid: this.invalid,
      duplicates: this.duplicates,
      messages: this.messages,
      fields: focus ? focus.fields : {},
      predictor_fields: focus ? focus.predictor_fields : {},
      values: focus ? focus.values : {},
      executions,
      ...extra,
    };
  }
}
