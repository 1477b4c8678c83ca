// wahaq's own processes (worker, serve, the CLI) and what the suite reads
// back from Redis and their logs.

package faults

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Env is a set of wahaq settings for a child process.
type Env map[string]string

// List renders the settings as KEY=VALUE strings.
func (e Env) List() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, k+"="+v)
	}
	return out
}

// With returns a copy of e with more settings.
func (e Env) With(kv ...string) Env {
	out := Env{}
	for k, v := range e {
		out[k] = v
	}
	for i := 0; i+1 < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// StartWorker starts `wahaq worker` and waits until it has started.
func StartWorker(t testing.TB, bins Bins, dir, name string, env Env) *Proc {
	t.Helper()
	p := StartProc(t, dir, name, bins.Wahaq, []string{"worker", "--metrics-addr", FreeAddr(t)}, env.List())
	p.WaitLog(t, "worker started", 20*time.Second)
	return p
}

// API is a `wahaq serve` process.
type API struct {
	URL  string
	Proc *Proc
}

// StartAPI starts `wahaq serve` and waits until /healthz answers.
func StartAPI(t testing.TB, bins Bins, dir, name string, env Env) *API {
	t.Helper()
	addr := FreeAddr(t)
	p := StartProc(t, dir, name, bins.Wahaq, []string{"serve", "--addr", addr}, env.List())
	a := &API{URL: "http://" + addr, Proc: p}
	Eventually(t, 20*time.Second, 50*time.Millisecond, func() (bool, string) {
		if !p.Alive() {
			t.Fatalf("wahaq serve exited:\n%s", p.Log())
		}
		resp, err := http.Get(a.URL + "/healthz")
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
	return a
}

// Do sends a request to the API with an optional bearer token and returns the
// status and body.
func (a *API) Do(t testing.TB, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	return a.DoFrom(t, nil, method, path, token, body)
}

// DoFrom is Do from the loopback source address src (nil: the system's
// choice). serve limits wrong tokens per client address (api.AttemptLimiter):
// a test that sends many on purpose sends each from an address of its own.
func (a *API) DoFrom(t testing.TB, src net.IP, method, path, token string, body []byte) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, a.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", token)
	}
	client := http.DefaultClient
	if src != nil {
		d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: src}}
		client = &http.Client{Transport: &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}}
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error())
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// CLI runs a short wahaq command and returns its stdout, stderr and exit code.
func CLI(t testing.TB, bins Bins, env Env, timeout time.Duration, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bins.Wahaq, args...)
	cmd.Env = append(baseEnv(), env.List()...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatalf("wahaq %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// ScanAll returns every key of the Redis with its value rendered as text,
// whatever its type, for secret hunting.
func ScanAll(t testing.TB, c *redis.Client) map[string]string {
	t.Helper()
	ctx := context.Background()
	out := map[string]string{}
	iter := c.Scan(ctx, 0, "*", 1000).Iterator()
	for iter.Next(ctx) {
		k := iter.Val()
		typ, err := c.Type(ctx, k).Result()
		if err != nil {
			continue
		}
		var v any
		switch typ {
		case "string":
			v, err = c.Get(ctx, k).Result()
		case "hash":
			v, err = c.HGetAll(ctx, k).Result()
		case "list":
			v, err = c.LRange(ctx, k, 0, -1).Result()
		case "set":
			v, err = c.SMembers(ctx, k).Result()
		case "zset":
			v, err = c.ZRangeWithScores(ctx, k, 0, -1).Result()
		case "stream":
			v, err = c.XRange(ctx, k, "-", "+").Result()
		default:
			v = "(type " + typ + ")"
		}
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			t.Fatalf("read %s: %v", k, err)
		}
		out[k] = fmt.Sprintf("%v", v)
	}
	if err := iter.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// LogLines counts the lines of a log at each zerolog level.
func LogLines(log string) map[string]int {
	out := map[string]int{}
	sc := bufio.NewScanner(strings.NewReader(log))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var l struct {
			Level string `json:"level"`
		}
		if json.Unmarshal(sc.Bytes(), &l) == nil && l.Level != "" {
			out[l.Level]++
		}
	}
	return out
}
