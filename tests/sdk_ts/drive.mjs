// Drives the official Formance TypeScript SDK, unchanged, against the daemon's API and prints
// one JSON line per call with what the SDK parsed: tests/integration/test_formance_sdk_ts.py
// starts the API, seeds it and asserts on these lines.
//
//   node tests/sdk_ts/drive.mjs SERVER_URL [BEARER_TOKEN]
//
// The API must hold, before the run: a trigger named "seeded with occurrences" with two
// occurrences (newest first: one failed, one succeeded) and a YAML trigger named "from-yaml".
//
// A line is {"call", "ok": true, "status", "result", "dropped"} when the SDK parsed an answer
// ("dropped": the answer's fields the SDK's model does not know, which it must ignore), or
// {"call", "ok": false, "error": class name, "status", "errorCode", "errorMessage", "parsed"}
// when the call raised; "parsed" is false unless the SDK turned the answer into its own API
// error (ErrorT for v1, V2Error for v2). The exit status is 1 when any answer failed to parse.

import { SDK } from "@formance/formance-sdk";
import { HTTPClient } from "@formance/formance-sdk/lib/http.js";
import * as orchestration from "@formance/formance-sdk/sdk/models/orchestration/index.js";

const [serverURL, token] = process.argv.slice(2);
if (!serverURL) {
  console.error("usage: node drive.mjs SERVER_URL [BEARER_TOKEN]");
  process.exit(2);
}

// The raw body of the last answer, read beside the SDK to list the fields it dropped.
let lastRawBody;
const httpClient = new HTTPClient();
if (token) {
  httpClient.addHook("beforeRequest", (request) => {
    request.headers.set("Authorization", `Bearer ${token}`);
  });
}
httpClient.addHook("response", async (response) => {
  lastRawBody = await response.clone().text();
});
const sdk = new SDK({ serverURL, httpClient });
const { v1, v2 } = sdk.orchestration;

let parseFailures = 0;

/** Dates as {"$date": iso}, so a reader sees the SDK built a Date and not a string. */
function jsonLine(value) {
  return JSON.stringify(value, function (key, item) {
    const original = this[key];
    return original instanceof Date ? { $date: original.toISOString() } : item;
  });
}

/** The dotted paths of `raw`'s object fields that `parsed` has no key for. */
function droppedFields(raw, parsed, path = "") {
  if (raw === null || typeof raw !== "object" || parsed === null || typeof parsed !== "object") {
    return [];
  }
  if (parsed instanceof Date) {
    return [];
  }
  return Object.keys(raw).flatMap((key) => {
    const at = path ? `${path}.${key}` : key;
    return key in parsed ? droppedFields(raw[key], parsed[key], at) : [at];
  });
}

function rawJson() {
  try {
    return JSON.parse(lastRawBody);
  } catch {
    return undefined;
  }
}

/** Runs one SDK call, prints its line and returns the parsed body held under `bodyKey` in the
 * SDK's response (undefined for an answer without a body, or on an error). */
async function call(name, run, bodyKey) {
  lastRawBody = undefined;
  try {
    const response = await run();
    const result = bodyKey === undefined ? undefined : response[bodyKey];
    const dropped = result === undefined ? [] : droppedFields(rawJson(), result);
    console.log(jsonLine({ call: name, ok: true, status: response.statusCode, result, dropped }));
    return result;
  } catch (error) {
    const parsed = error instanceof orchestration.V2Error || error instanceof orchestration.ErrorT;
    if (!parsed) {
      parseFailures += 1;
    }
    console.log(
      jsonLine({
        call: name,
        ok: false,
        error: error?.constructor?.name ?? typeof error,
        parsed,
        status: error?.statusCode,
        errorCode: error?.errorCode,
        errorMessage: error?.errorMessage,
        message: parsed ? undefined : String(error?.message ?? error),
        body: parsed ? undefined : error?.body,
      }),
    );
    return undefined;
  }
}

const TRIGGER = {
  name: "Large deposit",
  event: "SAVED_PAYMENT",
  filter: "event.status == 'SUCCEEDED'",
  workflowID: "review-deposit",
  vars: { id: "event.id" },
};
const BAD_TRIGGER = { ...TRIGGER, filter: 'status == "SUCCEEDED"' };
const PAYMENT = { id: "pay-1", status: "SUCCEEDED", amount: 1000 };
const UNKNOWN_ID = "00000000-0000-4000-8000-000000000000";

// Create, read, list.
const V1_CREATED = "createTriggerResponse";
const V2_CREATED = "v2CreateTriggerResponse";
const V1_LIST = "listTriggersResponse";
const V2_LIST = "v2ListTriggersResponse";
const createdV1 = await call("v1.createTrigger", () => v1.createTrigger(TRIGGER), V1_CREATED);
const createdV2 = await call(
  "v2.createTrigger",
  () => v2.createTrigger({ ...TRIGGER, name: "v2 deposit" }),
  V2_CREATED,
);
for (const i of [0, 1, 2]) {
  const other = { ...TRIGGER, name: `other ${i}` };
  await call(`v2.createTrigger[other ${i}]`, () => v2.createTrigger(other), V2_CREATED);
}
const v1Id = createdV1?.data?.id;
const v2Id = createdV2?.data?.id;
await call("v1.readTrigger", () => v1.readTrigger({ triggerID: v1Id }), "readTriggerResponse");
await call("v2.readTrigger", () => v2.readTrigger({ triggerID: v2Id }), "v2ReadTriggerResponse");
await call("v1.listTriggers", () => v1.listTriggers({ name: "large" }), V1_LIST);
const firstPage = await call(
  "v2.listTriggers[page 1]",
  () => v2.listTriggers({ name: "other", pageSize: 2 }),
  V2_LIST,
);
const next = firstPage?.cursor?.next;
await call("v2.listTriggers[page 2]", () => v2.listTriggers({ cursor: next }), V2_LIST);

// testTrigger: a full envelope is checked on type and version, a bare payload on filter and vars.
const TESTED = "v2TestTriggerResponse";
const test = (name, requestBody) =>
  call(`v2.testTrigger[${name}]`, () => v2.testTrigger({ triggerID: v2Id, requestBody }), TESTED);
await test("envelope match", { type: "SAVED_PAYMENT", payload: PAYMENT });
await test("envelope other type", { type: "COMMITTED_TRANSACTIONS", payload: PAYMENT });
await test("payload match", PAYMENT);
await test("payload no match", { ...PAYMENT, status: "FAILED" });
await test("var error", { status: "SUCCEEDED" });

// Occurrences, seeded through the store before the run.
const V1_OCCURRENCES = "listTriggersOccurrencesResponse";
const V2_OCCURRENCES = "v2ListTriggersOccurrencesResponse";
const seeded = await call(
  "v1.listTriggers[seeded]",
  () => v1.listTriggers({ name: "seeded with occurrences" }),
  V1_LIST,
);
const seededId = seeded?.data?.[0]?.id;
await call(
  "v1.listTriggersOccurrences",
  () => v1.listTriggersOccurrences({ triggerID: seededId }),
  V1_OCCURRENCES,
);
const firstOccurrences = await call(
  "v2.listTriggersOccurrences[page 1]",
  () => v2.listTriggersOccurrences({ triggerID: seededId, pageSize: 1 }),
  V2_OCCURRENCES,
);
const nextOccurrences = firstOccurrences?.cursor?.next;
await call(
  "v2.listTriggersOccurrences[page 2]",
  () => v2.listTriggersOccurrences({ triggerID: seededId, cursor: nextOccurrences }),
  V2_OCCURRENCES,
);
await call("v1.getServerInfoOrchestration", () => v1.getServerInfoOrchestration(), "serverInfo");
await call("v2.getServerInfo", () => v2.getServerInfo(), "v2ServerInfo");

// Delete, then the error paths.
await call("v1.deleteTrigger", () => v1.deleteTrigger({ triggerID: v1Id }));
await call("v2.deleteTrigger", () => v2.deleteTrigger({ triggerID: v2Id }));
await call(
  "v1.readTrigger[deleted]",
  () => v1.readTrigger({ triggerID: v1Id }),
  "readTriggerResponse",
);
await call(
  "v2.readTrigger[unknown]",
  () => v2.readTrigger({ triggerID: UNKNOWN_ID }),
  "v2ReadTriggerResponse",
);
await call(
  "v2.testTrigger[unknown]",
  () => v2.testTrigger({ triggerID: UNKNOWN_ID, requestBody: PAYMENT }),
  TESTED,
);
await call(
  "v2.listTriggersOccurrences[unknown]",
  () => v2.listTriggersOccurrences({ triggerID: UNKNOWN_ID }),
  V2_OCCURRENCES,
);
await call("v1.createTrigger[bad filter]", () => v1.createTrigger(BAD_TRIGGER), V1_CREATED);
await call("v2.createTrigger[bad filter]", () => v2.createTrigger(BAD_TRIGGER), V2_CREATED);
const fromYaml = await call(
  "v2.listTriggers[from-yaml]",
  () => v2.listTriggers({ name: "from-yaml" }),
  V2_LIST,
);
const yamlId = fromYaml?.cursor?.data?.[0]?.id;
await call("v1.deleteTrigger[yaml]", () => v1.deleteTrigger({ triggerID: yamlId }));
await call("v2.deleteTrigger[yaml]", () => v2.deleteTrigger({ triggerID: yamlId }));

process.exit(parseFailures === 0 ? 0 : 1);
