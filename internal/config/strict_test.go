package config

import (
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/httpserver"
)

func TestInstanceSettingsRefused(t *testing.T) {
	t.Parallel()
	one := func(extra string) string {
		return "instances:\n  - name: a\n    base_url: http://a\n    api_key_env: \"\"\n" + extra
	}
	for _, c := range []struct {
		name, yaml string
		want       string
	}{
		{"rate .inf", one("    rate: .inf\n"), `rate +Inf is not a number`},
		{"rate -.inf", one("    rate: -.inf\n"), `rate -Inf is not a number`},
		{"rate .nan", one("    rate: .nan\n"), `rate NaN is not a number`},
		{"rate 1e308", one("    rate: 1e308\n"), "rate 1e+308 is outside 0.001 to 1e+06"},
		{"rate too small", one("    rate: 1e-300\n"), "is outside 0.001 to 1e+06"},
		{"rate negative", one("    rate: -2\n"), "rate must not be negative"},
		{"timeout not a duration", one("    timeout: soon\n"), `timeout "soon" is not a duration`},
		{"timeout without unit", one("    timeout: 30\n"), `timeout "30" is not a duration`},
		{"timeout zero", one("    timeout: 0s\n"), `timeout "0s"`},
		{"timeout negative", one("    timeout: -1s\n"), `timeout "-1s"`},
		{"timeout too long", one("    timeout: 1000h\n"), `timeout "1000h"`},
		{"base_url not http", "instances:\n  - name: a\n    base_url: ftp://u:hunter2@h\n", `base_url ftp://h is not an http:// or https:// URL`},
		{"base_url opaque", "instances:\n  - name: a\n    base_url: \"h:u:hunter2@x\"\n", "is not an http:// or https:// URL"},
		{"same server twice", "instances:\n  - name: a\n    base_url: http://waha:3000\n  - name: b\n    base_url: http://waha:3000\n", `instances "a" and "b" name the same WAHA server`},
		{"same server, other spelling", "instances:\n  - name: a\n    base_url: HTTP://WAHA.example/waha/\n  - name: b\n    base_url: http://waha.example:80/waha\n", `"a" and "b"`},
		{"same server, https default port", "instances:\n  - name: a\n    base_url: https://w\n  - name: b\n    base_url: https://u:p@w:443//\n", `"a" and "b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseFile([]byte(c.yaml), env(nil))
			require.Error(t, err)
			require.Contains(t, err.Error(), c.want)
			require.NotContains(t, err.Error(), "hunter2")
		})
	}
}

func TestInstanceSettingsAccepted(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte(`
instances:
  - name: a
    base_url: http://waha:3000
    api_key_env: ""
    rate: 0.5
    timeout: 5s
  - name: b
    base_url: http://waha:3000/other
    api_key_env: B_KEY
    rate: 0
  - name: c
    base_url: https://waha:3000
`), env(map[string]string{"B_KEY": "b"}))
	require.NoError(t, err)
	require.Equal(t, 0.5, f.Instances[0].Rate)
	require.Equal(t, 5*time.Second, f.Instances[0].Timeout)
	require.True(t, f.Instances[0].NoKey)
	require.Equal(t, DefaultInstanceTimeout, f.Instances[1].Timeout)
	require.Zero(t, f.Instances[1].Rate, "0 keeps meaning no cap")
	require.False(t, f.Instances[1].NoKey)
	require.Equal(t, "b", f.Instances[1].APIKey)
}

func TestRequireKeys(t *testing.T) {
	t.Parallel()
	f, err := ParseFile([]byte(`
instances:
  - name: set
    base_url: http://a
    api_key_env: A_KEY
  - name: nokey
    base_url: http://b
    api_key_env: ""
`), env(map[string]string{"A_KEY": "k"}))
	require.NoError(t, err)
	require.NoError(t, RequireKeys(f.Instances))

	f, err = ParseFile([]byte(`
instances:
  - name: unset
    base_url: http://a
    api_key_env: WAHA_UNSET_KEY
  - name: silent
    base_url: http://b
`), env(nil))
	require.NoError(t, err, "serve and the CLI need no keys")
	err = RequireKeys(f.Instances)
	require.ErrorIs(t, err, ErrBadConfig)
	require.Contains(t, err.Error(), `instance "unset": its api_key_env names WAHA_UNSET_KEY, which is unset or empty`)
	require.Contains(t, err.Error(), `instance "silent" has no api_key_env`)

	// The default server of WAHA_BASE_URL without WAHA_API_KEY takes no key,
	// as before.
	ins, _, err := Settings{WahaBaseURL: "http://x:1"}.topology(env(nil))
	require.NoError(t, err)
	require.NoError(t, RequireKeys(ins))
}

func TestTopologyRefusesTheDefaultServerTwice(t *testing.T) {
	t.Parallel()
	p := writeFile(t, "instances:\n  - name: eu\n    base_url: http://waha-default:3000/\n    api_key_env: \"\"\n")
	_, _, err := Settings{WahaBaseURL: "http://WAHA-default:3000", InstancesFile: p}.topology(env(nil))
	require.ErrorIs(t, err, ErrBadConfig)
	require.Contains(t, err.Error(), `instances "default" and "eu" name the same WAHA server`)
}

func TestWahaBaseURLErrorHidesPassword(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{"ftp://u:secret@h", "u:secret@h", "http//u:secret@h", "http://u:secret@h:99x"} {
		_, err := load(nil, env(map[string]string{"WAHA_BASE_URL": raw}))
		require.ErrorIs(t, err, ErrBadConfig, raw)
		require.Contains(t, err.Error(), "WAHA_BASE_URL")
		require.NotContains(t, err.Error(), "secret", raw)
	}
}

func TestMetricsAddr(t *testing.T) {
	t.Parallel()
	lookup := func(m map[string]string) func(string) (string, bool) {
		return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
	}
	flags := func(args ...string) *pflag.FlagSet {
		fs := pflag.NewFlagSet("w", pflag.ContinueOnError)
		fs.String("metrics-addr", DefaultMetricsAddr, "")
		require.NoError(t, fs.Parse(args))
		return fs
	}
	require.Equal(t, ":9090", metricsAddr(flags(), lookup(nil)))
	require.Equal(t, ":9191", metricsAddr(flags(), lookup(map[string]string{"WAHAQ_METRICS_ADDR": ":9191"})))
	require.Equal(t, "", metricsAddr(flags(), lookup(map[string]string{"WAHAQ_METRICS_ADDR": ""})), "set empty: none")
	require.Equal(t, "127.0.0.1:1", metricsAddr(flags("--metrics-addr", "127.0.0.1:1"), lookup(map[string]string{"WAHAQ_METRICS_ADDR": ":9191"})), "the flag wins")
	require.Equal(t, "", metricsAddr(flags("--metrics-addr="), lookup(nil)))
	require.True(t, strings.HasPrefix(DefaultMetricsAddr, ":"))
}

func TestHTTPLimits(t *testing.T) {
	t.Parallel()
	s, err := load(nil, env(map[string]string{
		"WAHAQ_HTTP_READ_HEADER_TIMEOUT": "1s", "WAHAQ_HTTP_READ_TIMEOUT": "2s", "WAHAQ_HTTP_WRITE_TIMEOUT": "3s",
		"WAHAQ_HTTP_IDLE_TIMEOUT": "4s", "WAHAQ_HTTP_MAX_HEADER_BYTES": "1024",
	}))
	require.NoError(t, err)
	require.Equal(t, httpserver.Limits{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second,
		IdleTimeout: 4 * time.Second, MaxHeaderBytes: 1024}, s.HTTP)

	fs := pflag.NewFlagSet("x", pflag.ContinueOnError)
	BindFlags(fs)
	require.NoError(t, fs.Parse([]string{"--http-idle-timeout", "9s"}))
	s, err = load(fs, env(map[string]string{"WAHAQ_HTTP_IDLE_TIMEOUT": "4s"}))
	require.NoError(t, err)
	require.Equal(t, 9*time.Second, s.HTTP.IdleTimeout, "the flag wins")

	for k, v := range map[string]string{
		"WAHAQ_HTTP_IDLE_TIMEOUT":        "0s",
		"WAHAQ_HTTP_READ_TIMEOUT":        "forever",
		"WAHAQ_HTTP_WRITE_TIMEOUT":       "-1s",
		"WAHAQ_HTTP_MAX_HEADER_BYTES":    "0",
		"WAHAQ_HTTP_READ_HEADER_TIMEOUT": "1h",
	} {
		_, err := load(nil, env(map[string]string{k: v}))
		require.ErrorIs(t, err, ErrBadConfig, k)
		require.Contains(t, err.Error(), k)
	}
}
