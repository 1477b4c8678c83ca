package tasks

import (
	"context"
	"fmt"
	"slices"

	"github.com/wahaq/wahaq/internal/store"
)

// Inspector reads tasks, batches and dead letters, and replays or purges
// dead letters. It is safe for concurrent use.
type Inspector struct {
	cfg      Config
	store    *store.Store
	notifier *store.Notifier
}

// NewInspector returns an Inspector.
func NewInspector(cfg Config) (*Inspector, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &Inspector{cfg: cfg, store: newStore(cfg), notifier: store.NewNotifier(cfg.Redis)}, nil
}

// Instances returns the configured instance names.
func (i *Inspector) Instances() []string { return slices.Clone(i.cfg.Instances) }

// Task returns the task with the given id, or ErrNotFound.
func (i *Inspector) Task(ctx context.Context, id string) (*Task, error) {
	if err := ValidateTaskID(id); err != nil {
		return nil, err
	}
	r, err := i.store.Get(ctx, i.cfg.Instances, id)
	if err != nil {
		return nil, err
	}
	return newTask(r), nil
}

// Batch returns a batch's status, or ErrNotFound. A batch found open whose
// producer's lease has ended (the producer died part way) is closed first,
// marked interrupted, as the reconciler would: it then reads done once the
// tasks it holds are final.
func (i *Inspector) Batch(ctx context.Context, id string) (*Batch, error) {
	if err := ValidateBatchID(id); err != nil {
		return nil, err
	}
	b, err := getBatchClosingAbandoned(ctx, i.store, i.cfg, id)
	if err != nil {
		return nil, err
	}
	return newBatch(b), nil
}

// DeadLetterPage is one page of dead letters.
type DeadLetterPage struct {
	// Tasks are the dead tasks of this page, by instance, oldest first.
	Tasks []*Task `json:"tasks"`
	// Total is the number of dead letters of the instances asked for.
	Total int64 `json:"total"`
	// NextOffset is the offset of the next page, or -1 at the end.
	NextOffset int64 `json:"next_offset"`
}

// DeadLetters returns a page of dead letters of one instance, or of every
// instance (instance ""), in order of instance then time of death.
func (i *Inspector) DeadLetters(ctx context.Context, instance string, offset, limit int64) (*DeadLetterPage, error) {
	insts, err := i.pick(instance)
	if err != nil {
		return nil, err
	}
	return pageDeadLetters(insts, offset, limit, func(in string) (deadLetterSource, error) {
		n, err := i.store.CountDeadLetters(ctx, in)
		return deadLetterSource{n: n, read: func(from, want int64) ([]*store.Record, error) {
			rs, _, err := i.store.DeadLetters(ctx, in, from, want)
			return rs, err
		}}, err
	})
}

// deadLetterSource is one instance's share of a dead-letter listing: how
// many entries it has and how to read some of them.
type deadLetterSource struct {
	n    int64
	read func(from, want int64) ([]*store.Record, error)
}

// pageDeadLetters cuts the page [offset, offset+limit) out of the
// instances' dead letters laid end to end, reading only what falls in it.
func pageDeadLetters(insts []string, offset, limit int64, source func(in string) (deadLetterSource, error)) (*DeadLetterPage, error) {
	if offset < 0 {
		return nil, fmt.Errorf("%w: offset is negative", ErrInvalidInput)
	}
	page := &DeadLetterPage{Tasks: []*Task{}, NextOffset: -1}
	pos := int64(0) // offset of the current instance's first entry
	for _, in := range insts {
		src, err := source(in)
		if err != nil {
			return nil, err
		}
		page.Total += src.n
		if want := limit - int64(len(page.Tasks)); want > 0 && offset < pos+src.n {
			rs, err := src.read(max(offset-pos, 0), want)
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				page.Tasks = append(page.Tasks, newTask(r))
			}
		}
		pos += src.n
	}
	if next := offset + int64(len(page.Tasks)); next < page.Total {
		page.NextOffset = next
	}
	return page, nil
}

func (i *Inspector) pick(instance string) ([]string, error) {
	if instance == "" {
		return i.cfg.Instances, nil
	}
	if !slices.Contains(i.cfg.Instances, instance) {
		return nil, fmt.Errorf("%w %q", ErrUnknownInstance, instance)
	}
	return []string{instance}, nil
}

// Selection picks dead letters: by id, or all of them, optionally only those
// of one outcome or one instance.
type Selection struct {
	IDs      []string `json:"ids,omitempty"`
	All      bool     `json:"all,omitempty"`
	Outcome  Outcome  `json:"outcome,omitempty"`
	Instance string   `json:"instance,omitempty"`
}

func (i *Inspector) resolve(ctx context.Context, sel Selection) (map[string][]string, error) {
	if sel.All == (len(sel.IDs) > 0) {
		return nil, fmt.Errorf("%w: give either ids or all, not both or neither", ErrInvalidInput)
	}
	if sel.Outcome != "" && !slices.Contains([]Outcome{OutcomeAuthFailed, OutcomeRejected, OutcomeRetriesExhausted, OutcomeArchived}, sel.Outcome) {
		return nil, fmt.Errorf("%w: outcome %q is not a dead-letter outcome (auth_failed, rejected, retries_exhausted, archived)", ErrInvalidInput, sel.Outcome)
	}
	insts, err := i.pick(sel.Instance)
	if err != nil {
		return nil, err
	}
	out := map[string][]string{}
	if sel.All {
		for _, in := range insts {
			ids, err := i.store.DeadLetterIDs(ctx, in)
			if err != nil {
				return nil, err
			}
			if sel.Outcome != "" {
				ids, err = i.filterOutcome(ctx, in, ids, sel.Outcome)
				if err != nil {
					return nil, err
				}
			}
			if len(ids) > 0 {
				out[in] = ids
			}
		}
		return out, nil
	}
	for _, id := range sel.IDs {
		if err := ValidateTaskID(id); err != nil {
			return nil, err
		}
		r, err := i.store.Get(ctx, insts, id)
		if err != nil {
			return nil, err
		}
		t := newTask(r)
		if t.State != StateDead {
			return nil, fmt.Errorf("%w: task %s is %s, not in the dead-letter queue", ErrInvalidInput, id, t.State)
		}
		if sel.Outcome != "" && (t.Outcome == nil || *t.Outcome != sel.Outcome) {
			continue
		}
		out[t.Instance] = append(out[t.Instance], id)
	}
	return out, nil
}

// filterOutcome keeps the ids whose record has outcome o. A Redis error is
// an error: dropping the ids it hid would requeue or purge nothing and
// report success.
func (i *Inspector) filterOutcome(ctx context.Context, instance string, ids []string, o Outcome) ([]string, error) {
	outcomes, err := i.store.Outcomes(ctx, instance, ids)
	if err != nil {
		return nil, err
	}
	var keep []string
	for j, got := range outcomes {
		if got == string(o) {
			keep = append(keep, ids[j])
		}
	}
	return keep, nil
}

// Requeue puts the selected dead letters back in the queue with fresh
// retries. Ids are checked first: an id that is not a dead letter rejects
// the whole request and requeues nothing.
func (i *Inspector) Requeue(ctx context.Context, sel Selection) ([]RequeueResult, error) {
	byInst, err := i.resolve(ctx, sel)
	if err != nil {
		return nil, err
	}
	out := []RequeueResult{}
	for _, in := range sortedKeys(byInst) {
		rs, err := i.store.Requeue(ctx, in, byInst[in], i.cfg.TaskTimeout, i.cfg.ResultTTL)
		if err != nil {
			return out, err
		}
		for _, r := range rs {
			out = append(out, RequeueResult{ID: r.ID, Status: requeueStatus(r.Code), LiveID: r.LiveID})
		}
	}
	return out, nil
}

// Purge deletes the selected dead letters for good and returns how many.
func (i *Inspector) Purge(ctx context.Context, sel Selection) (int, error) {
	byInst, err := i.resolve(ctx, sel)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, in := range sortedKeys(byInst) {
		m, err := i.store.Purge(ctx, in, byInst[in])
		n += m
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func sortedKeys(m map[string][]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
