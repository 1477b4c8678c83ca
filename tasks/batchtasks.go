package tasks

import (
	"context"
	"fmt"
	"slices"
	"strconv"

	"github.com/wahaq/wahaq/internal/store"
)

// Paging limits of Inspector.BatchTasks (and GET /v1/batches/{id}/tasks).
const (
	// DefaultPageLimit is the page size when Page.Limit is 0.
	DefaultPageLimit = 100
	// MaxPageLimit is the largest page.
	MaxPageLimit = 1000
	// maxScanPerPage bounds the batch entries one call reads while looking
	// for tasks that match a filter: a page of a sparse filter over a big
	// batch comes back short (even empty) with a cursor to go on from,
	// rather than reading the whole batch in one request.
	maxScanPerPage = 10 * MaxPageLimit
)

// TaskFilter picks tasks by state and outcome. A zero field matches every
// task.
type TaskFilter struct {
	// State keeps the tasks in this state.
	State State `json:"state,omitempty"`
	// Outcome keeps the final tasks with this outcome.
	Outcome Outcome `json:"outcome,omitempty"`
}

// Validate returns an error wrapping ErrInvalidInput naming an unknown
// state or outcome.
func (f TaskFilter) Validate() error {
	if f.State != "" && !slices.Contains(AllStates, f.State) {
		return fmt.Errorf("%w: state %q is not one of %v", ErrInvalidInput, f.State, AllStates)
	}
	if f.Outcome != "" && !slices.Contains(AllOutcomes, f.Outcome) {
		return fmt.Errorf("%w: outcome %q is not one of %v", ErrInvalidInput, f.Outcome, AllOutcomes)
	}
	return nil
}

func (f TaskFilter) match(t *Task) bool {
	if f.State != "" && t.State != f.State {
		return false
	}
	if f.Outcome != "" && (t.Outcome == nil || *t.Outcome != f.Outcome) {
		return false
	}
	return true
}

// Page asks for one page of a listing.
type Page struct {
	// Cursor is the NextCursor of the previous page; "" is the first page.
	// It is opaque: pass it back as it came.
	Cursor string
	// Limit is the most tasks the page holds, from 1 to MaxPageLimit.
	// Defaults to DefaultPageLimit.
	Limit int
}

// TaskPage is one page of tasks, as GET /v1/batches/{id}/tasks returns it.
type TaskPage struct {
	// Tasks are this page's tasks, in the order the batch created them.
	Tasks []*Task `json:"tasks"`
	// NextCursor asks for the next page; it is "" after the last page. A
	// page may hold fewer than Limit tasks (even none) and still have a next
	// one: a filter that matches few tasks of a big batch is read a slice at
	// a time.
	NextCursor string `json:"next_cursor"`
}

// BatchTasks returns a page of the tasks of a batch that match f, in the
// order the batch created them, or ErrNotFound for an unknown (or expired)
// batch. The sessions a batch request found with a live task already
// (Batch.Deduplicated) are not the batch's tasks and are not listed; nor are
// completed tasks whose record expired (WAHAQ_RESULT_TTL) before the batch.
//
// A page costs one read of at most Limit matching tasks, and of at most
// 10,000 batch entries when a filter skips most of them.
func (i *Inspector) BatchTasks(ctx context.Context, batchID string, f TaskFilter, p Page) (*TaskPage, error) {
	if err := ValidateBatchID(batchID); err != nil {
		return nil, err
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	limit := p.Limit
	if limit == 0 {
		limit = DefaultPageLimit
	}
	if limit < 1 || limit > MaxPageLimit {
		return nil, fmt.Errorf("%w: limit %d is not from 1 to %d", ErrInvalidInput, p.Limit, MaxPageLimit)
	}
	pos := int64(0)
	if p.Cursor != "" {
		n, err := strconv.ParseInt(p.Cursor, 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("%w: cursor %q is not one this listing returned", ErrInvalidInput, truncateRunes(p.Cursor, 40))
		}
		pos = n
	}
	b, err := i.store.GetBatch(ctx, i.cfg.Instances, batchID)
	if err != nil {
		return nil, err
	}
	page := &TaskPage{Tasks: []*Task{}}
	// Read whole pages' worth of entries until the page is full, the list
	// ends or the scan budget is spent.
	for scanned := int64(0); scanned < maxScanPerPage; {
		want := int64(limit)
		if f != (TaskFilter{}) {
			want = int64(max(limit, DefaultPageLimit)) // most entries may not match
		}
		recs, at, n, err := i.store.BatchTaskRange(ctx, b.Instance, batchID, pos, want)
		if err != nil {
			return nil, err
		}
		next := min(pos+want, n)
		for j, r := range recs {
			t := newTask(r)
			if !f.match(t) {
				continue
			}
			if len(page.Tasks) == limit {
				// A match beyond a full page: the next page starts here.
				next = at[j]
				break
			}
			page.Tasks = append(page.Tasks, t)
		}
		scanned += next - pos
		pos = next
		if pos >= n {
			// The rest of what was read held no match: no next page, so
			// a caller is not sent back for an empty one.
			return page, nil
		}
		if len(page.Tasks) == limit {
			break
		}
	}
	page.NextCursor = strconv.FormatInt(pos, 10)
	return page, nil
}

// DeadLettersOfBatch returns a page of the dead letters of one batch, of one
// instance or of every instance (instance ""), as DeadLetters does. It reads
// every dead letter's batch field (the dead-letter queue, not the batch,
// which may have expired while its dead letters stay), so it costs a read of
// the whole dead-letter queue of those instances.
func (i *Inspector) DeadLettersOfBatch(ctx context.Context, instance, batchID string, offset, limit int64) (*DeadLetterPage, error) {
	if err := ValidateBatchID(batchID); err != nil {
		return nil, err
	}
	insts, err := i.pick(instance)
	if err != nil {
		return nil, err
	}
	return pageDeadLetters(insts, offset, limit, func(in string) (deadLetterSource, error) {
		ids, err := i.store.DeadLetterIDsOfBatch(ctx, in, batchID)
		n := int64(len(ids))
		return deadLetterSource{n: n, read: func(from, want int64) ([]*store.Record, error) {
			return i.store.DeadLetterRecords(ctx, in, ids[from:min(from+want, n)])
		}}, err
	})
}

func truncateRunes(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n]) + "…"
}
