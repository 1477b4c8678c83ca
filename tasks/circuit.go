package tasks

import (
	"context"
)

// CircuitState is a WAHA server's circuit-breaker state as the workers
// report it.
type CircuitState string

// Circuit states.
const (
	// CircuitClosed: no worker reports the server's breaker open or
	// half-open (every breaker is closed, or no worker runs).
	CircuitClosed CircuitState = "closed"
	// CircuitOpen: at least one worker's breaker keeps the server's tasks
	// from being called.
	CircuitOpen CircuitState = "open"
	// CircuitHalfOpen: no worker's breaker is open, and at least one lets
	// a trial call through.
	CircuitHalfOpen CircuitState = "half-open"
)

// Circuit is one server's breaker state across the workers.
type Circuit struct {
	State CircuitState `json:"state"`
	// Open and HalfOpen are how many workers report their breaker of the
	// server open and half-open. Workers whose breaker is closed do not
	// report, so there is no total.
	Open     int `json:"open"`
	HalfOpen int `json:"half_open"`
}

// Circuits returns the breaker state of one instance, or of every instance
// (instance ""), by instance name. Each worker keeps its own breaker per
// server and writes its state changes into Redis; a report lapses when its
// open state (or its trial call) must have ended, so a dead worker's report
// is gone within seconds. One Redis round trip.
func (i *Inspector) Circuits(ctx context.Context, instance string) (map[string]Circuit, error) {
	insts, err := i.pick(instance)
	if err != nil {
		return nil, err
	}
	reps, err := i.store.Circuits(ctx, insts)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Circuit, len(reps))
	for in, r := range reps {
		c := Circuit{State: CircuitClosed, Open: r.Open, HalfOpen: r.HalfOpen}
		switch {
		case r.Open > 0:
			c.State = CircuitOpen
		case r.HalfOpen > 0:
			c.State = CircuitHalfOpen
		}
		out[in] = c
	}
	return out, nil
}
