package store

import (
	"context"
	"fmt"
	"time"
)

// claimTTL is how long a schedule tick's claim is kept: far longer than any
// replica's clock skew or downtime that could make it look at the tick again.
const claimTTL = 7 * 24 * time.Hour

// ClaimTick claims one tick of a recurring schedule. Exactly one caller, of
// however many replicas ask, gets true for a given schedule and tick: asynq's
// own Scheduler has no leader election, so each replica would enqueue its own
// copy. The claim is kept for a week.
func (s *Store) ClaimTick(ctx context.Context, instance, schedule string, tick time.Time) (bool, error) {
	ok, err := s.rdb.SetNX(ctx, s.Keys(instance).CronClaim(schedule, tick), s.now().UnixMilli(), claimTTL).Result()
	if err != nil {
		return false, fmt.Errorf("claim tick of %s: %w", schedule, err)
	}
	return ok, nil
}
