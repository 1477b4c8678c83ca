'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');
const { NodeApiError } = require('n8n-workflow');

const { Wahaq } = require('../dist/nodes/Wahaq/Wahaq.node.js');
const { WahaqApi } = require('../dist/credentials/WahaqApi.credentials.js');
const { startWahaq, fakeExecute } = require('./fake');

const node = new Wahaq().nodeVersions[1];
const creds = (url) => ({ baseUrl: url + '/', token: 'tok-enqueue', signingSecret: '' });

const pending = { id: 't1', session: 'sales-bot', instance: 'default', state: 'pending' };
const completed = {
  ...pending,
  state: 'completed',
  outcome: 'logged_out',
  result: { status: 'success', message: 'session sales-bot logged out' },
};

test('credential: Bearer token, tested with an authenticated read', () => {
  const c = new WahaqApi();
  assert.equal(c.name, 'wahaqApi');
  assert.equal(c.authenticate.properties.headers.Authorization, '=Bearer {{$credentials.token}}');
  assert.equal(c.test.request.method, 'GET');
  assert.equal(c.test.request.url, '/v1/dlq');
  assert.deepEqual(c.properties.map((p) => p.name), ['baseUrl', 'token', 'signingSecret']);
});

test('the package is versioned and declares both nodes', () => {
  const pkg = require('../package.json');
  assert.ok(pkg.keywords.includes('n8n-community-node-package'));
  assert.equal(pkg.n8n.n8nNodesApiVersion, 1);
  assert.deepEqual(new Wahaq().description.defaultVersion, 1);
  for (const file of [...pkg.n8n.nodes, ...pkg.n8n.credentials]) require('../' + file);
});

test('log out and wait: one enqueue with an Idempotency-Key, then long-polls until final', async (t) => {
  let polls = 0;
  const wahaq = await startWahaq({
    'POST /v1/logouts': [202, pending],
    'GET /v1/tasks/t1': () => [200, ++polls < 3 ? pending : completed],
  });
  t.after(wahaq.close);
  const ctx = fakeExecute({
    credentials: creds(wahaq.url),
    params: { operation: 'logout', session: 'sales-bot', instance: 'default', when: 'now', waitForResult: true, timeLimit: 120 },
  });
  const [[item]] = await node.execute.call(ctx);
  assert.equal(item.json.status, 'success');
  assert.equal(item.json.message, 'session sales-bot logged out');
  assert.equal(item.json.task.state, 'completed');
  const [post, ...gets] = wahaq.requests;
  assert.deepEqual(post.body, { session: 'sales-bot', instance: 'default' });
  assert.equal(post.headers.authorization, 'Bearer tok-enqueue');
  assert.equal(post.headers['idempotency-key'], 'n8n-exec-1-node-1111-0');
  assert.equal(gets.length, 3);
  assert.equal(gets[0].query.wait, undefined, 'the first read does not wait');
  assert.equal(gets[1].query.wait, '30s');
});

test('a retried execution sends the same key; another execution or item another one', async (t) => {
  const wahaq = await startWahaq({ 'POST /v1/logouts': [202, pending] });
  t.after(wahaq.close);
  const run = (executionId, items) =>
    node.execute.call(
      fakeExecute({
        credentials: creds(wahaq.url),
        items,
        executionId,
        params: { operation: 'logout', session: 's', when: 'now', waitForResult: false },
      }),
    );
  await run('e7', [{ json: {} }]);
  await run('e7', [{ json: {} }]);
  await run('e8', [{ json: {} }, { json: {} }]);
  const keys = wahaq.requests.map((r) => r.headers['idempotency-key']);
  assert.deepEqual(keys, ['n8n-e7-node-1111-0', 'n8n-e7-node-1111-0', 'n8n-e8-node-1111-0', 'n8n-e8-node-1111-1']);
});

test('log out without waiting: status pending, "in" and "at" go to wahaq as given', async (t) => {
  const wahaq = await startWahaq({ 'POST /v1/logouts': ({ body }) => [202, { ...pending, state: 'scheduled', scheduled_for: 'soon', body }] });
  t.after(wahaq.close);
  const base = { operation: 'logout', session: 'sales-bot', waitForResult: false, instance: '' };
  let [[item]] = await node.execute.call(fakeExecute({ credentials: creds(wahaq.url), params: { ...base, when: 'in', in: ' PT30M ' } }));
  assert.equal(item.json.status, 'pending');
  assert.match(item.json.message, /scheduled for soon/);
  [[item]] = await node.execute.call(
    fakeExecute({ credentials: creds(wahaq.url), params: { ...base, when: 'at', at: '2030-01-02T03:04:05Z' } }),
  );
  assert.deepEqual(wahaq.requests.map((r) => r.body), [
    { session: 'sales-bot', in: 'PT30M' },
    { session: 'sales-bot', at: '2030-01-02T03:04:05.000Z' },
  ]);
});

test('a 4xx is a NodeApiError with wahaq detail, sent once (no retry)', async (t) => {
  const detail = 'invalid input: session name "sales bot" is not valid';
  const wahaq = await startWahaq({ 'POST /v1/logouts': [400, { title: 'Bad Request', status: 400, detail }] });
  t.after(wahaq.close);
  const params = { operation: 'logout', session: 'sales bot', when: 'now', waitForResult: true, timeLimit: 10 };
  await assert.rejects(node.execute.call(fakeExecute({ credentials: creds(wahaq.url), params })), (err) => {
    assert.ok(err instanceof NodeApiError);
    assert.equal(err.description, detail);
    assert.equal(err.httpCode, '400');
    assert.equal(err.message, '400 Bad Request');
    return true;
  });
  assert.equal(wahaq.requests.length, 1);
  const [[item]] = await node.execute.call(fakeExecute({ credentials: creds(wahaq.url), params, continueOnFail: true }));
  assert.equal(item.json.status, 'error');
  assert.equal(item.json.message, detail);
});

test('waiting stops at the time limit with status error and the task as it is', async (t) => {
  const wahaq = await startWahaq({ 'POST /v1/logouts': [202, pending], 'GET /v1/tasks/t1': [200, pending] });
  t.after(wahaq.close);
  const params = { operation: 'logout', session: 'sales-bot', when: 'now', waitForResult: true, timeLimit: 1 };
  const [[item]] = await node.execute.call(fakeExecute({ credentials: creds(wahaq.url), params }));
  assert.equal(item.json.status, 'error');
  assert.match(item.json.message, /no final state within 1 s/);
  assert.equal(item.json.task.state, 'pending');
  assert.ok(wahaq.requests.length <= 3, `${wahaq.requests.length} requests`);
});

const doneBatch = {
  batch_id: 'b1',
  total: 5,
  done: true,
  counts: { completed: 4, dead: 1, canceled: 0 },
  outcomes: { logged_out: 3, not_found: 1, auth_failed: 1 },
};
const batchTasks = [
  { id: 'a', session: 's5', state: 'completed', outcome: 'logged_out' },
  { id: 'b', session: 's6', state: 'completed', outcome: 'logged_out' },
  { id: 'c', session: 's3', state: 'dead', outcome: 'auth_failed', last_error: 'waha logout: 401' },
  { id: 'd', session: 's7', state: 'completed', outcome: 'logged_out' },
  { id: 'e', session: 'nope', state: 'completed', outcome: 'not_found' },
];

test('bulk teardown from items: one batch, a summary and the sessions per outcome', async (t) => {
  const wahaq = await startWahaq({
    'POST /v1/batches': [202, { batch_id: 'b1', total: 5 }],
    'GET /v1/batches/b1': ({ query }) => [200, query.wait ? doneBatch : { ...doneBatch, done: false }],
    'GET /v1/batches/b1/tasks': ({ query }) =>
      [200, query.cursor ? { tasks: batchTasks.slice(3), next_cursor: '' } : { tasks: batchTasks.slice(0, 3), next_cursor: 'c2' }],
  });
  t.after(wahaq.close);
  const items = ['s5', 's6', 's3', 's7', 'nope', 's5'].map((session) => ({ json: { session } }));
  const ctx = fakeExecute({
    credentials: creds(wahaq.url),
    items,
    params: { operation: 'bulkTeardown', source: 'items', session: (i) => items[i].json.session, instance: 'default', when: 'now', waitForResult: true, timeLimit: 60 },
  });
  const [out] = await node.execute.call(ctx);
  assert.equal(out.length, 1);
  const r = out[0].json;
  assert.equal(r.status, 'error');
  assert.equal(r.message, 'Logged out 3 of 5 sessions (1 did not exist); failed: s3 (auth_failed)');
  assert.deepEqual(r.summary, { total: 5, logged_out: 3, not_found: 1, failed: 1, canceled: 0, deduplicated: 0 });
  assert.deepEqual(r.sessions, { logged_out: ['s5', 's6', 's7'], auth_failed: ['s3'], not_found: ['nope'] });
  assert.equal(r.failed[0].last_error, 'waha logout: 401');
  assert.deepEqual(wahaq.requests[0].body, { instance: 'default', sessions: ['s5', 's6', 's3', 's7', 'nope'] });
  assert.equal(wahaq.requests[0].headers['idempotency-key'], 'n8n-exec-1-node-1111-batch');
});

test("bulk teardown of a server's sessions by status, not waiting", async (t) => {
  const wahaq = await startWahaq({
    'POST /v1/batches': [202, { batch_id: 'b2', total: 0, discovering: true }],
    'GET /v1/batches/b2': [200, { batch_id: 'b2', total: 0, done: false, counts: {}, outcomes: {} }],
    'GET /v1/batches/b2/tasks': [200, { tasks: [], next_cursor: '' }],
  });
  t.after(wahaq.close);
  const params = { operation: 'bulkTeardown', source: 'server', statuses: ['WORKING'], instance: 'eu', when: 'in', in: '10m', waitForResult: false };
  const [[item]] = await node.execute.call(fakeExecute({ credentials: creds(wahaq.url), params }));
  assert.equal(item.json.status, 'pending');
  assert.deepEqual(wahaq.requests[0].body, { in: '10m', instance: 'eu', all: true, status: ['WORKING'] });
});

test('get task, get batch, cancel, dead letters list and requeue', async (t) => {
  const wahaq = await startWahaq({
    'GET /v1/tasks/t1': [200, completed],
    'GET /v1/batches/b1': [200, doneBatch],
    'GET /v1/batches/b1/tasks': [200, { tasks: batchTasks, next_cursor: '' }],
    'DELETE /v1/tasks/t1': [200, { ...pending, state: 'canceled' }],
    'DELETE /v1/batches/b1': [200, { batch_id: 'b1', canceled: 2, already_started: 0, already_final: 3 }],
    'GET /v1/dlq': [200, { tasks: [batchTasks[2], { ...batchTasks[2], id: 'c2' }], total: 2, next_offset: -1 }],
    'POST /v1/dlq/requeue': ({ body }) => [200, { results: body.ids.map((id) => ({ id, status: 'requeued' })), requeued: body.ids.length }],
  });
  t.after(wahaq.close);
  const run = async (params) => (await node.execute.call(fakeExecute({ credentials: creds(wahaq.url), params })))[0];
  let out = await run({ operation: 'getTask', taskId: 't1', waitForResult: false });
  assert.deepEqual([out[0].json.status, out[0].json.message], ['success', 'session sales-bot logged out']);
  out = await run({ operation: 'getBatch', batchId: 'b1', waitForResult: false });
  assert.equal(out[0].json.summary.logged_out, 3);
  out = await run({ operation: 'cancel', cancelTarget: 'task', cancelId: 't1' });
  assert.equal(out[0].json.task.state, 'canceled');
  out = await run({ operation: 'cancel', cancelTarget: 'batch', cancelId: 'b1' });
  assert.equal(out[0].json.canceled, 2);
  out = await run({ operation: 'listDeadLetters', limit: 10, dlqInstance: 'default', dlqBatchId: '' });
  assert.deepEqual(out.map((i) => i.json.id), ['c', 'c2']);
  out = await run({ operation: 'requeueDeadLetters', requeueSelect: 'ids', requeueIds: 'c, c2,' });
  assert.equal(out[0].json.requeued, 2);
  const dlqGet = wahaq.requests.find((r) => r.path === '/v1/dlq');
  assert.deepEqual(dlqGet.query, { limit: '10', instance: 'default' });
  assert.deepEqual(wahaq.requests.at(-1).body, { ids: ['c', 'c2'] });
});
