'use strict';
const test = require('node:test');
const assert = require('node:assert/strict');

const { WahaqTrigger } = require('../dist/nodes/WahaqTrigger/WahaqTrigger.node.js');
const { SEEN_MAX } = require('../dist/nodes/WahaqTrigger/v1/WahaqTriggerV1.node.js');
const { verify, sign } = require('../dist/nodes/shared/signature.js');
const { startWahaq, fakeHook, fakeWebhook } = require('./fake');

const trigger = new WahaqTrigger().nodeVersions[1];
const SECRET = 'whsec_' + Buffer.from('0123456789abcdef0123456789abcdef').toString('base64');
const now = () => String(Math.floor(Date.now() / 1000));

test('signature: Standard Webhooks v1, any of several signatures, timestamp tolerance', () => {
  const body = Buffer.from('{"type":"task.final"}');
  const ts = '1900000000';
  const sig = sign(SECRET, 'msg_1', ts, body);
  const h = { id: 'msg_1', timestamp: ts, signature: sig };
  assert.equal(verify(SECRET, h, body, 1900000000), null);
  assert.equal(verify(SECRET, { ...h, signature: 'v1,AAAA ' + sig }, body, 1900000100), null);
  assert.equal(verify(SECRET, h, Buffer.from('{"type":"task.final "}'), 1900000000), 'no signature matches');
  assert.equal(verify(SECRET, { ...h, id: 'msg_2' }, body, 1900000000), 'no signature matches');
  assert.equal(verify('whsec_' + Buffer.from('other').toString('base64'), h, body, 1900000000), 'no signature matches');
  assert.match(verify(SECRET, h, body, 1900000000 + 301), /too old/);
  assert.match(verify(SECRET, { ...h, signature: undefined }, body, 1900000000), /missing/);
  assert.match(verify('', h, body, 1900000000), /no signing secret/);
});

const task = { id: 't1', session: 's1', instance: 'default', batch_id: 'b9', state: 'completed', outcome: 'logged_out', result: { status: 'success', message: 'session s1 logged out' } };

function delivery(event, { id = 'msg_' + Math.random(), secret = SECRET, ts = now() } = {}) {
  const rawBody = JSON.stringify(event);
  return { rawBody, headers: { 'webhook-id': id, 'webhook-timestamp': ts, 'webhook-signature': sign(secret, id, ts, rawBody) } };
}

const creds = { baseUrl: 'http://unused', token: 't', signingSecret: SECRET };

test('a signed task.final starts the workflow with {status, message} and the task', async () => {
  const d = delivery({ type: 'task.final', timestamp: '2030-01-01T00:00:00Z', data: task }, { id: 'msg_a' });
  const ctx = fakeWebhook({ credentials: creds, params: { events: ['task.final'] }, ...d });
  const out = await trigger.webhook.call(ctx);
  const json = out.workflowData[0][0].json;
  assert.equal(json.status, 'success');
  assert.equal(json.message, 'session s1 logged out');
  assert.equal(json.event, 'task.final');
  assert.equal(json.webhook_id, 'msg_a');
  assert.equal(json.task.id, 't1');
});

test('a forged, tampered or stale delivery is refused with 401 and starts nothing', async () => {
  const event = { type: 'task.final', data: task };
  const cases = {
    'wrong secret': delivery(event, { secret: 'whsec_' + Buffer.from('nope').toString('base64') }),
    stale: delivery(event, { ts: String(Math.floor(Date.now() / 1000) - 3600) }),
    tampered: { ...delivery(event), rawBody: JSON.stringify({ ...event, data: { ...task, session: 'other' } }) },
  };
  for (const [name, d] of Object.entries(cases)) {
    const ctx = fakeWebhook({ credentials: creds, params: { events: ['task.final'] }, ...d });
    const out = await trigger.webhook.call(ctx);
    assert.equal(out.workflowData, undefined, name);
    assert.equal(ctx.response.status, 401, name);
  }
});

test('a redelivered webhook-id runs once; the memory of ids is bounded', async () => {
  const staticData = {};
  const d = delivery({ type: 'task.final', data: task }, { id: 'msg_dup' });
  const first = await trigger.webhook.call(fakeWebhook({ credentials: creds, params: { events: ['task.final'] }, staticData, ...d }));
  const again = fakeWebhook({ credentials: creds, params: { events: ['task.final'] }, staticData, ...d });
  const second = await trigger.webhook.call(again);
  assert.ok(first.workflowData);
  assert.equal(second.workflowData, undefined);
  assert.deepEqual(again.response.body, { duplicate: true });
  for (let i = 0; i < SEEN_MAX + 10; i++) {
    await trigger.webhook.call(fakeWebhook({ credentials: creds, params: { events: ['task.final'] }, staticData, ...delivery({ type: 'task.final', data: task }, { id: 'm' + i }) }));
  }
  assert.equal(staticData.seen.length, SEEN_MAX);
  assert.ok(!staticData.seen.includes('msg_dup'));
});

test('a redelivery is dropped even when static data was not kept (n8n saves none when a run starts)', async () => {
  const d = delivery({ type: 'task.final', data: task }, { id: 'msg_lost_static' });
  const params = { events: ['task.final'] };
  const first = await trigger.webhook.call(fakeWebhook({ credentials: creds, params, workflowId: 'wf-9', ...d }));
  const again = await trigger.webhook.call(fakeWebhook({ credentials: creds, params, workflowId: 'wf-9', staticData: {}, ...d }));
  const otherWorkflow = await trigger.webhook.call(fakeWebhook({ credentials: creds, params, workflowId: 'wf-10', ...d }));
  assert.ok(first.workflowData);
  assert.equal(again.workflowData, undefined);
  assert.ok(otherWorkflow.workflowData, 'another workflow has its own trigger and its own deliveries');
});

test('filters: event type, server, outcome, batch', async () => {
  const run = async (params, event) => {
    const out = await trigger.webhook.call(fakeWebhook({ credentials: creds, params: { events: ['task.final', 'batch.done'], ...params }, ...delivery(event) }));
    return out.workflowData !== undefined;
  };
  const final = { type: 'task.final', data: task };
  const batch = { type: 'batch.done', data: { batch_id: 'b9', instance: 'default', total: 2, done: true, counts: { dead: 0 }, outcomes: { logged_out: 2 } } };
  assert.equal(await run({}, final), true);
  assert.equal(await run({ events: ['batch.done'] }, final), false);
  assert.equal(await run({ instances: 'eu, us' }, final), false);
  assert.equal(await run({ instances: 'eu, default' }, final), true);
  assert.equal(await run({ outcomes: ['auth_failed'] }, final), false);
  assert.equal(await run({ outcomes: ['logged_out'] }, final), true);
  assert.equal(await run({ outcomes: ['auth_failed'] }, batch), true);
  assert.equal(await run({ batchId: 'b8' }, final), false);
  assert.equal(await run({ batchId: 'b9' }, batch), true);
});

test('activation creates a subscription, checkExists finds it, deactivation deletes it', async (t) => {
  const subs = new Map();
  const wahaq = await startWahaq({
    'POST /v1/subscriptions': ({ body }) => {
      const sub = { id: 'sub' + (subs.size + 1), ...body };
      subs.set(sub.id, sub);
      return [201, sub];
    },
    'GET /v1/subscriptions/sub1': () => (subs.has('sub1') ? [200, subs.get('sub1')] : [404, { title: 'Not Found', detail: 'no subscription sub1' }]),
    'DELETE /v1/subscriptions/sub1': () => (subs.delete('sub1') ? [200, {}] : [404, { title: 'Not Found', detail: 'no subscription sub1' }]),
  });
  t.after(wahaq.close);
  const staticData = {};
  const ctx = fakeHook({
    credentials: { ...creds, baseUrl: wahaq.url },
    params: { events: ['task.final', 'batch.done'], instances: 'default' },
    webhookUrl: 'http://127.0.0.1:5678/webhook/abc/webhook',
    staticData,
  });
  const hooks = trigger.webhookMethods.default;
  assert.equal(await hooks.checkExists.call(ctx), false);
  assert.equal(await hooks.create.call(ctx), true);
  assert.deepEqual(wahaq.requests.at(-1).body, {
    url: 'http://127.0.0.1:5678/webhook/abc/webhook',
    events: ['task.final', 'batch.done'],
    instances: ['default'],
  });
  assert.equal(staticData.subscriptionId, 'sub1');
  assert.equal(await hooks.checkExists.call(ctx), true);
  assert.equal(await hooks.delete.call(ctx), true);
  assert.equal(subs.size, 0);
  assert.equal(staticData.subscriptionId, undefined);
  staticData.subscriptionId = 'sub1';
  assert.equal(await hooks.checkExists.call(ctx), false, 'a subscription deleted behind our back');
  assert.equal(staticData.subscriptionId, undefined);
  // n8n's URL changed: the old subscription is removed, a new one made.
  subs.set('sub1', { id: 'sub1', url: 'http://old-host:5678/webhook/abc/webhook' });
  staticData.subscriptionId = 'sub1';
  assert.equal(await hooks.checkExists.call(ctx), false);
  assert.equal(subs.has('sub1'), false);
  assert.equal(staticData.subscriptionId, undefined);
});
