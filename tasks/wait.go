package tasks

import (
	"context"
	"fmt"
	"time"
)

// MaxWait is the longest long-poll WaitTask and WaitBatch accept.
const MaxWait = 60 * time.Second

// WaitTask returns the task as soon as it is final, or its current state
// when wait has passed (at most MaxWait). Waiting costs Redis no command:
// the finishing scripts announce final tasks on a shard channel of the
// task's queue, and the Inspector holds one subscription per queue for all
// its waiters. The state is read once after subscribing, so a task that
// ends in between is not missed.
func (i *Inspector) WaitTask(ctx context.Context, id string, wait time.Duration) (*Task, error) {
	if err := checkWait(wait); err != nil {
		return nil, err
	}
	t, err := i.Task(ctx, id)
	if err != nil || t.State.Final() || wait == 0 {
		return t, err
	}
	woke, stop, err := i.notifier.Watch(ctx, i.store.Keys(t.Instance).Done(), "t:"+id)
	if err != nil {
		return nil, err
	}
	defer stop()
	if t, err = i.Task(ctx, id); err != nil || t.State.Final() {
		return t, err
	}
	if err := sleep(ctx, woke, wait); err != nil {
		return nil, err
	}
	return i.Task(ctx, id)
}

// WaitBatch returns the batch as soon as it is done, or its current counts
// when wait has passed (at most MaxWait). It costs Redis as little as
// WaitTask.
func (i *Inspector) WaitBatch(ctx context.Context, id string, wait time.Duration) (*Batch, error) {
	if err := checkWait(wait); err != nil {
		return nil, err
	}
	b, err := i.Batch(ctx, id)
	if err != nil || b.Done || wait == 0 {
		return b, err
	}
	woke, stop, err := i.notifier.Watch(ctx, i.store.Keys(b.Instance).Done(), "b:"+id)
	if err != nil {
		return nil, err
	}
	defer stop()
	if b, err = i.Batch(ctx, id); err != nil || b.Done {
		return b, err
	}
	if err := sleep(ctx, woke, wait); err != nil {
		return nil, err
	}
	return i.Batch(ctx, id)
}

func checkWait(d time.Duration) error {
	if d < 0 || d > MaxWait {
		return fmt.Errorf("%w: wait %s is not between 0 and %s", ErrInvalidInput, d, MaxWait)
	}
	return nil
}

// sleep waits for woke, the end of d, or ctx.
func sleep(ctx context.Context, woke <-chan struct{}, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-woke:
	case <-t.C:
	case <-ctx.Done():
		return ctx.Err()
	}
	return nil
}

// Close ends the Inspector's long-poll subscriptions. An Inspector that
// never waited holds none.
func (i *Inspector) Close() error { return i.notifier.Close() }
