package tasks_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/redistest"
	"github.com/wahaq/wahaq/tasks"
)

// TestMaxRetries: the zero value means the default, as every zero field of
// Config does; NoRetries means none; any other negative value is refused
// rather than read as something else.
func TestMaxRetries(t *testing.T) {
	t.Parallel()
	rdb := redistest.Client(t)
	for _, c := range []struct {
		name string
		in   int
		want int
	}{
		{"zero means the default", 0, tasks.DefaultMaxRetries},
		{"NoRetries means none", tasks.NoRetries, 0},
		{"one", 1, 1},
		{"many", 25, 25},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			ns := redistest.Namespace(t)
			p, err := tasks.NewProducer(tasks.Config{Redis: rdb, Namespace: ns, MaxRetries: c.in})
			require.NoError(t, err)
			task, err := p.Enqueue(context.Background(), tasks.LogoutRequest{Session: "s1"})
			require.NoError(t, err)
			require.Equal(t, c.want, task.MaxRetries)
			insp, err := tasks.NewInspector(tasks.Config{Redis: rdb, Namespace: ns})
			require.NoError(t, err)
			got, err := insp.Task(context.Background(), task.ID)
			require.NoError(t, err)
			require.Equal(t, c.want, got.MaxRetries, "as stored")
		})
	}
	_, err := tasks.NewProducer(tasks.Config{Redis: rdb, MaxRetries: -2})
	require.ErrorContains(t, err, "negative")
}
