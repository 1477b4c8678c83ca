package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/tasks"
)

const goodFile = `
instances:
  - name: eu
    base_url: https://waha-eu.example
    api_key_env: WAHA_EU_KEY
    concurrency: 8
    rate: 2.5
    webhook_hmac_key_env: " WAHA_EU_HOOK "
  - name: us_1
    base_url: http://waha-us.example:3000
schedules:
  - name: nightly-eu
    instance: eu
    cron: "30 2 * * *"
    timezone: Europe/Berlin
    status: [working, " scan_qr_code ", WORKING]
  - name: bots
    cron: "@every 1h"
    sessions: [bot-1, bot_2]
`

func TestParseFile(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte(goodFile), env(map[string]string{"WAHA_EU_KEY": "eu-secret", "WAHA_EU_HOOK": "hook-secret"}))
	require.NoError(t, err)

	require.Len(t, f.Instances, 2)
	require.Equal(t, Instance{Name: "eu", BaseURL: "https://waha-eu.example", APIKeyEnv: "WAHA_EU_KEY", Concurrency: 8, Rate: 2.5,
		Timeout: DefaultInstanceTimeout, APIKey: "eu-secret", WebhookHMACKeyEnv: "WAHA_EU_HOOK", WebhookHMACKey: "hook-secret"}, f.Instances[0])
	require.Equal(t, Instance{Name: "us_1", BaseURL: "http://waha-us.example:3000", Timeout: DefaultInstanceTimeout}, f.Instances[1])
	require.Equal(t, []string{"eu", "us_1"}, Names(f.Instances))

	require.Len(t, f.Schedules, 2)
	eu := f.Schedules[0]
	require.Equal(t, "nightly-eu", eu.Name)
	require.Equal(t, "eu", eu.Instance)
	require.Equal(t, []string{"WORKING", "SCAN_QR_CODE"}, eu.Statuses, "upper-cased, trimmed, deduplicated")
	require.Empty(t, eu.Sessions)
	require.Equal(t, "Europe/Berlin", eu.Location.String())
	require.NotNil(t, eu.Spec)
	// 02:30 in Berlin: 01:30 UTC in winter, 00:30 UTC in summer.
	require.Equal(t, time.Date(2030, 1, 15, 1, 30, 0, 0, time.UTC),
		eu.Spec.Next(time.Date(2030, 1, 15, 0, 0, 0, 0, time.UTC).In(eu.Location)).UTC())
	require.Equal(t, time.Date(2030, 7, 15, 0, 30, 0, 0, time.UTC),
		eu.Spec.Next(time.Date(2030, 7, 15, 0, 0, 0, 0, time.UTC).In(eu.Location)).UTC())

	bots := f.Schedules[1]
	require.Equal(t, "default", bots.Instance, "instance defaults to default")
	require.Equal(t, time.UTC, bots.Location, "timezone defaults to UTC")
	require.Equal(t, []string{"bot-1", "bot_2"}, bots.Sessions)
	require.Empty(t, bots.Statuses)
	from := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, from.Add(time.Hour), bots.Spec.Next(from))
	// @every ticks at whole multiples of its delay, whatever time it is asked
	// from, so every replica computes the same ticks.
	require.Equal(t, from.Add(time.Hour), bots.Spec.Next(from.Add(20*time.Minute+time.Nanosecond)))
	require.Equal(t, from.Add(2*time.Hour), bots.Spec.Next(from.Add(time.Hour)))
}

func TestParseFileKeyComesFromEnvOnly(t *testing.T) {
	t.Parallel()
	// No key in the file, and the variable unset: the instance is valid, with
	// no key (like WAHA_API_KEY unset).
	f, err := ParseFile([]byte(goodFile), env(nil))
	require.NoError(t, err)
	require.Empty(t, f.Instances[0].APIKey)

	// A key written into the file is refused, and the error does not echo it.
	_, err = ParseFile([]byte("instances:\n  - name: eu\n    base_url: http://x\n    api_key: filesecret\n"), env(nil))
	require.Error(t, err)
	require.Contains(t, err.Error(), "api_key")
	require.NotContains(t, err.Error(), "filesecret")
}

func TestParseFileEmptyLists(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte("instances: []\n"), env(nil))
	require.NoError(t, err)
	require.Empty(t, f.Instances)
	require.Empty(t, f.Schedules)

	// A schedule may name "default" without the file defining it: the
	// server from WAHA_BASE_URL is added by Topology.
	f, err = ParseFile([]byte("schedules:\n  - name: s\n    instance: default\n    cron: \"0 * * * *\"\n"), env(nil))
	require.NoError(t, err)
	require.Equal(t, "default", f.Schedules[0].Instance)
}

func TestParseFileBadInput(t *testing.T) {
	t.Parallel()
	inst := "instances:\n  - name: a\n    base_url: http://a\n"
	for _, c := range []struct {
		name, yaml string
		want       []string // substrings the message must hold
	}{
		{"unknown field", "instances:\n  - name: a\n    base_url: http://a\n    concurency: 3\n", []string{"concurency"}},
		{"unknown top-level field", "instance:\n  - name: a\n", []string{"instance"}},
		{"not yaml", "instances: [", []string{"not a valid instances file"}},
		{"wrong type", "instances:\n  - name: a\n    base_url: http://a\n    concurrency: many\n", []string{"many"}},
		{"duplicate instance", inst + "  - name: a\n    base_url: http://b\n", []string{`"a"`, "twice"}},
		{"bad instance name", "instances:\n  - name: \"eu west\"\n    base_url: http://a\n", []string{"instances[0]", "eu west"}},
		{"empty instance name", "instances:\n  - base_url: http://a\n", []string{"instances[0]", "empty"}},
		{"missing base_url", "instances:\n  - name: a\n", []string{`"a"`, "base_url"}},
		{"negative concurrency", "instances:\n  - name: a\n    base_url: http://a\n    concurrency: -1\n", []string{`"a"`, "concurrency"}},
		{"negative rate", "instances:\n  - name: a\n    base_url: http://a\n    rate: -0.5\n", []string{`"a"`, "rate"}},
		{"schedule with unknown instance", inst + "schedules:\n  - name: s\n    instance: b\n    cron: \"* * * * *\"\n", []string{`"s"`, "unknown instance", `"b"`}},
		{"bad cron", inst + "schedules:\n  - name: s\n    instance: a\n    cron: \"61 * * * *\"\n", []string{`"s"`, "cron", "61 * * * *"}},
		{"six-field cron", inst + "schedules:\n  - name: s\n    cron: \"0 0 * * * *\"\n", []string{`"s"`, "cron"}},
		{"missing cron", inst + "schedules:\n  - name: s\n", []string{`"s"`, "cron"}},
		{"bad timezone", inst + "schedules:\n  - name: s\n    cron: \"@daily\"\n    timezone: Mars/Olympus\n", []string{`"s"`, "timezone", "Mars/Olympus"}},
		{"sessions and status", inst + "schedules:\n  - name: s\n    cron: \"@daily\"\n    sessions: [x]\n    status: [WORKING]\n", []string{`"s"`, "not both"}},
		{"bad session name", inst + "schedules:\n  - name: s\n    cron: \"@daily\"\n    sessions: [ok, \"no/slash\"]\n", []string{`"s"`, "no/slash"}},
		{"bad status", inst + "schedules:\n  - name: s\n    cron: \"@daily\"\n    status: [\"work ing\"]\n", []string{`"s"`, "WORK ING"}},
		{"bad schedule name", inst + "schedules:\n  - name: \"a b\"\n    cron: \"@daily\"\n", []string{"schedules[0]", "a b"}},
		{"duplicate schedule", inst + "schedules:\n  - name: s\n    cron: \"@daily\"\n  - name: s\n    cron: \"@hourly\"\n", []string{"schedules[1]", `"s"`, "twice"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f, err := ParseFile([]byte(c.yaml), env(nil))
			require.Error(t, err)
			require.Nil(t, f)
			for _, w := range c.want {
				require.Contains(t, err.Error(), w)
			}
		})
	}
}

func TestParseFileNamesUseTasksRules(t *testing.T) {
	t.Parallel()
	_, err := ParseFile([]byte("instances:\n  - name: \""+strings.Repeat("x", tasks.MaxInstanceNameLen+1)+"\"\n    base_url: http://a\n"), env(nil))
	require.ErrorIs(t, err, tasks.ErrInvalidInput)
	_, err = ParseFile([]byte("instances:\n  - name: \""+strings.Repeat("x", tasks.MaxInstanceNameLen)+"\"\n    base_url: http://a\n"), env(nil))
	require.NoError(t, err)
}

func writeFile(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "instances.yaml")
	require.NoError(t, os.WriteFile(p, []byte(content), 0o600))
	return p
}

func TestTopology(t *testing.T) {
	t.Parallel()
	getenv := env(map[string]string{
		"WAHA_BASE_URL": "http://waha-default:3000",
		"WAHA_API_KEY":  "default-key",
		"EU_KEY":        "eu-key",
	})
	settings := func(t *testing.T, file string) Settings {
		s, err := load(nil, getenv)
		require.NoError(t, err)
		s.InstancesFile = file
		return s
	}
	def := Instance{Name: "default", BaseURL: "http://waha-default:3000", APIKey: "default-key", Timeout: DefaultInstanceTimeout}

	t.Run("no file: only default", func(t *testing.T) {
		t.Parallel()
		ins, scs, err := settings(t, "").topology(getenv)
		require.NoError(t, err)
		require.Equal(t, []Instance{def}, ins)
		require.Empty(t, scs)
	})
	t.Run("file without default: default added first", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, "instances:\n  - name: eu\n    base_url: http://eu\n    api_key_env: EU_KEY\nschedules:\n  - name: s\n    instance: eu\n    cron: \"@daily\"\n")
		ins, scs, err := settings(t, p).topology(getenv)
		require.NoError(t, err)
		require.Equal(t, []Instance{def, {Name: "eu", BaseURL: "http://eu", APIKeyEnv: "EU_KEY", APIKey: "eu-key", Timeout: DefaultInstanceTimeout}}, ins)
		require.Len(t, scs, 1)
		require.Equal(t, "s", scs[0].Name)
	})
	t.Run("file with its own default: not duplicated", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, "instances:\n  - name: eu\n    base_url: http://eu\n  - name: default\n    base_url: http://other-default\n    api_key_env: EU_KEY\n")
		ins, _, err := settings(t, p).topology(getenv)
		require.NoError(t, err)
		require.Equal(t, []string{"eu", "default"}, Names(ins))
		require.Equal(t, "http://other-default", ins[1].BaseURL, "the file's default wins over WAHA_BASE_URL")
		require.Equal(t, "eu-key", ins[1].APIKey)
	})
	t.Run("unreadable file", func(t *testing.T) {
		t.Parallel()
		p := filepath.Join(t.TempDir(), "missing.yaml")
		_, _, err := settings(t, p).topology(getenv)
		require.ErrorIs(t, err, ErrBadConfig)
		require.Contains(t, err.Error(), "WAHAQ_INSTANCES")
		require.Contains(t, err.Error(), "missing.yaml")
	})
	t.Run("invalid file", func(t *testing.T) {
		t.Parallel()
		p := writeFile(t, "instances:\n  - name: eu\n")
		_, _, err := settings(t, p).topology(getenv)
		require.ErrorIs(t, err, ErrBadConfig)
		require.Contains(t, err.Error(), p)
		require.Contains(t, err.Error(), "base_url")
	})
	t.Run("Topology reads the real environment", func(t *testing.T) {
		t.Parallel()
		ins, _, err := Settings{WahaBaseURL: "http://x:1"}.Topology()
		require.NoError(t, err)
		require.Equal(t, []Instance{{Name: "default", BaseURL: "http://x:1", NoKey: true, Timeout: DefaultInstanceTimeout}}, ins)
	})
}
