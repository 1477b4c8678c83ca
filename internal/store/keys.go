package store

import (
	"strconv"
	"time"

	"github.com/wahaq/wahaq/internal/asynqcompat"
)

// Keys names every Redis key of one queue: wahaq's own and the asynq keys
// wahaq's scripts touch. All share asynq's hash tag "{<queue>}", so one
// script may touch any of them on Redis Cluster. This is the one place the
// layout is written down.
//
//	wahaq:{<queue>}:t:<id>                 task record (hash, fields Field*)
//	wahaq:{<queue>}:d:<session>            dedup: id of the session's live task
//	wahaq:{<queue>}:b:<batch id>           batch counters (hash)
//	wahaq:{<queue>}:b:<batch id>:ids       the batch's task ids (list, in enqueue order)
//	wahaq:{<queue>}:b:<batch id>:seen      sessions a discovery enqueued (hash, until the batch closes)
//	wahaq:{<queue>}:b:<batch id>:held      a paused batch's tasks taken out of asynq's queues (zset; pause.go)
//	wahaq:{<queue>}:held                   the queue's paused batches (set of batch ids; pause.go)
//	wahaq:{<queue>}:open                   batches being filled (zset, score = lease end, ms)
//	wahaq:{<queue>}:recent                 recent batches (zset, score = creation, ms; recent.go)
//	wahaq:{<queue>}:dlq                    dead letters (zset, score = time of death, ms)
//	wahaq:{<queue>}:slots                  concurrency slots (zset, score = lease end, ms)
//	wahaq:{<queue>}:rate                   rate limiter state (redis_rate)
//	wahaq:{<queue>}:circuit                workers' open/half-open breakers (zset "o:<worker>"/"h:<worker>", score = report end, ms; circuit.go)
//	wahaq:{<queue>}:cron:<schedule>:<unix> claim of one schedule tick
//	wahaq:{<queue>}:ev:<event id>          a WAHA webhook event already received (string, expires; events.go)
//	wahaq:{<queue>}:l:<session>            id of the session's latest logout awaiting WAHA's events (string, expires)
//	wahaq:{<queue>}:await                  logouts awaiting confirmation (zset, score = end of the wait, ms)
//	wahaq:{<queue>}:confirm                confirmation counters (hash: confirmed, unconfirmed)
//	wahaq:{<queue>}:cbq                    callback deliveries (zset, score = when due, ms; delivery.go)
//	wahaq:{<queue>}:cb:<delivery id>       one callback delivery (hash; delivery.go)
//	wahaq:{<queue>}:subs                   the subscriptions of the queue's instance (hash id -> "events|url"; subscription.go)
//	wahaq:<namespace>:subs                 every subscription (hash id -> JSON; SubscriptionIndex)
//	wahaq:{<queue>}:done                   shard channel: "t:<id>"/"b:<id>" when a task is final, a batch done
//
// asynq's own keys of the queue (its task hashes, pending list, scheduled,
// retry and archived sets, and its paused key, which is also wahaq's gate
// when its value is GateMarker, gate.go) are named by internal/asynqcompat;
// the methods below only hand them to wahaq's scripts.
//
// <queue> is "<namespace>:<instance>".
type Keys struct {
	// Queue is the asynq queue name.
	Queue  string
	prefix string
}

// KeysFor returns the keys of an instance's queue in namespace ns.
func KeysFor(ns, instance string) Keys {
	q := ns + ":" + instance
	return Keys{Queue: q, prefix: "wahaq:{" + q + "}:"}
}

// NamespacePrefix is the start of every wahaq key of namespace ns, whatever
// the instance: a SCAN for NamespacePrefix(ns)+"*" finds them all.
func NamespacePrefix(ns string) string { return "wahaq:{" + ns + ":" }

// SubscriptionIndex is the hash of every subscription of namespace ns (id
// -> JSON), the one the API lists; each instance's queue holds a copy of
// those that name it (Keys.Subscriptions), which the finishing scripts read.
func SubscriptionIndex(ns string) string { return "wahaq:" + ns + ":subs" }

// Deliveries is the queue's set of callback deliveries, scored by when each
// is due (Unix ms); a delivery being sent is scored by the end of its lease.
// The finishing scripts write it under this name (callbackLua: the
// Delivery keys are derived from it).
func (k Keys) Deliveries() string { return k.prefix + "cbq" }

// Delivery is the hash of one callback delivery: what ended, the URL, the
// attempts (delivery.go).
func (k Keys) Delivery(id string) string { return k.prefix + "cb:" + id }

// Subscriptions is the queue's copy of the subscriptions that name its
// instance (id -> "events|url"; subscription.go).
func (k Keys) Subscriptions() string { return k.prefix + "subs" }

// Record is the task record of id.
func (k Keys) Record(id string) string { return k.prefix + "t:" + id }

// Dedup is the key holding the id of the session's live task.
func (k Keys) Dedup(session string) string { return k.prefix + "d:" + session }

// Batch is the counters hash of batch id.
func (k Keys) Batch(id string) string { return k.prefix + "b:" + id }

// BatchTasks is the list of the task ids of batch id, in the order they were
// created. It is the batch key with ":ids" appended (the scripts derive it so)
// and expires with the batch.
func (k Keys) BatchTasks(id string) string { return k.Batch(id) + ":ids" }

// BatchListed is the hash of the sessions a discovery has enqueued into
// batch id so far (session -> task id), kept until the batch closes so that
// a listing read again creates nothing twice. The enqueue script writes it
// under this name (the batch key + ":seen").
func (k Keys) BatchListed(id string) string { return k.Batch(id) + ":seen" }

// BatchHeld is the set of the tasks of paused batch id that wahaq holds out
// of asynq's queues, scored by the order they go back in (pause.go). The
// scripts derive it as the batch key + ":held".
func (k Keys) BatchHeld(id string) string { return k.Batch(id) + ":held" }

// HeldBatches is the set of the queue's paused batches: the take script
// looks at it before it dequeues (pause.go).
func (k Keys) HeldBatches() string { return k.prefix + "held" }

// OpenBatches is the set of batches a producer is filling, scored by the end
// of the producer's lease (Unix ms). See batch_lease.go.
func (k Keys) OpenBatches() string { return k.prefix + "open" }

// RecentBatches is the queue's list of recent batches, scored by creation
// time (Unix ms). See recent.go.
func (k Keys) RecentBatches() string { return k.prefix + "recent" }

// DeadLetters is wahaq's dead-letter set.
func (k Keys) DeadLetters() string { return k.prefix + "dlq" }

// Slots is the instance's concurrency semaphore.
func (k Keys) Slots() string { return k.prefix + "slots" }

// Done is the shard channel (SPUBLISH) on which the finishing scripts
// announce a final task ("t:<id>") or a done batch ("b:<id>") to
// long-poll waiters. It hashes to the queue's slot like every key here.
func (k Keys) Done() string { return k.prefix + "done" }

// Circuit is the set of the workers whose breaker of the instance is open
// or half-open. See circuit.go.
func (k Keys) Circuit() string { return k.prefix + "circuit" }

// Rate is the instance's rate limiter key (redis_rate).
func (k Keys) Rate() string { return k.prefix + "rate" }

// Event marks WAHA's webhook event id as received (events.go).
func (k Keys) Event(id string) string { return k.prefix + "ev:" + id }

// LastLogout holds the id of the session's latest completed logout that
// awaits WAHA's session.status events (events.go).
func (k Keys) LastLogout(session string) string { return k.prefix + "l:" + session }

// Awaiting is the set of completed logouts awaiting confirmation, scored by
// the end of their wait (Unix ms; events.go).
func (k Keys) Awaiting() string { return k.prefix + "await" }

// Confirmations counts logouts confirmed by WAHA's events, and those whose
// wait ended without one (hash fields "confirmed", "unconfirmed").
func (k Keys) Confirmations() string { return k.prefix + "confirm" }

// CronClaim is the claim of one tick of a recurring schedule.
func (k Keys) CronClaim(schedule string, tick time.Time) string {
	return k.prefix + "cron:" + schedule + ":" + strconv.FormatInt(tick.Unix(), 10)
}

// AsynqTask is asynq's hash of task id.
func (k Keys) AsynqTask(id string) string { return asynqcompat.TaskKey(k.Queue, id) }

// AsynqTaskPrefix is asynq's task hash key without the id (scripts append
// ids they learn inside Redis).
func (k Keys) AsynqTaskPrefix() string { return asynqcompat.TaskKeyPrefix(k.Queue) }

// Pending is asynq's pending list.
func (k Keys) Pending() string { return asynqcompat.PendingKey(k.Queue) }

// Scheduled is asynq's scheduled set.
func (k Keys) Scheduled() string { return asynqcompat.ScheduledKey(k.Queue) }

// Retry is asynq's retry set.
func (k Keys) Retry() string { return asynqcompat.RetryKey(k.Queue) }

// Archived is asynq's archive set.
func (k Keys) Archived() string { return asynqcompat.ArchivedKey(k.Queue) }

// Prefix is the start of every wahaq key of the queue ("wahaq:{<queue>}:");
// scripts append record, dedup and batch names they learn inside Redis.
func (k Keys) Prefix() string { return k.prefix }
