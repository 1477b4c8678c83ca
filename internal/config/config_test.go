package config

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/spf13/pflag"
	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/httpserver"
)

// env is a fake environment for load.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestDefaultsMatchProductTable(t *testing.T) {
	t.Parallel()
	s, err := load(nil, env(nil))
	require.NoError(t, err)
	require.Equal(t, Settings{
		RedisURL:            "redis://127.0.0.1:6379/0",
		WahaBaseURL:         "http://127.0.0.1:3000",
		Concurrency:         20,
		InstanceConcurrency: 4,
		TakeBlock:           4,
		CallbackConcurrency: 16,
		FastPath:            "on",
		PollInterval:        10 * time.Millisecond,
		MaxRetries:          10,
		RetryBase:           2 * time.Second,
		RetryMax:            10 * time.Minute,
		ResultTTL:           24 * time.Hour,
		ShutdownGrace:       30 * time.Second,
		ReconcileInterval:   30 * time.Second,
		RequestTimeout:      4 * time.Second,
		AuditMaxAge:         90 * 24 * time.Hour,
		AuditMaxEntries:     1_000_000,
		Namespace:           "wahaq",
		LogLevel:            "info",
		LogFormat:           "json",
		HTTP: httpserver.Limits{
			ReadHeaderTimeout: httpserver.DefaultReadHeaderTimeout, ReadTimeout: httpserver.DefaultReadTimeout,
			WriteTimeout: httpserver.DefaultWriteTimeout, IdleTimeout: httpserver.DefaultIdleTimeout,
			MaxHeaderBytes: httpserver.DefaultMaxHeaderBytes,
		},
	}, s)
	// Unset lists are empty: no API token means the API refuses to start.
	require.Empty(t, s.APITokens)
	require.Empty(t, s.RedisClusterAddrs)
	require.Empty(t, s.WahaAPIKey)
	require.Empty(t, s.InstancesFile)
}

func TestEnvOverridesDefaults(t *testing.T) {
	t.Parallel()
	s, err := load(nil, env(map[string]string{
		"REDIS_URL":                  "rediss://r.example:6380/2",
		"REDIS_CLUSTER_ADDRS":        "a:7000,b:7001",
		"WAHA_BASE_URL":              "https://waha.example",
		"WAHA_API_KEY":               "k1",
		"WAHAQ_INSTANCES":            "/etc/wahaq/instances.yaml",
		"WAHA_VALIDATION_URL":        "https://check.example/v1",
		"WAHA_VALIDATION_API_KEY":    "vk",
		"WAHAQ_CONCURRENCY":          "7",
		"WAHAQ_INSTANCE_CONCURRENCY": "2",
		"WAHAQ_TAKE_BLOCK":           "8",
		"WAHAQ_CALLBACK_CONCURRENCY": "3",
		"WAHAQ_FAST_PATH":            "off",
		"WAHAQ_POLL_INTERVAL":        "1s",
		"WAHAQ_MAX_RETRIES":          "0",
		"WAHAQ_RETRY_BASE":           "500ms",
		"WAHAQ_RETRY_MAX":            "1m",
		"WAHAQ_RESULT_TTL":           "1h",
		"WAHAQ_SHUTDOWN_GRACE":       "5s",
		"WAHAQ_RECONCILE_INTERVAL":   "2s",
		"WAHAQ_REQUEST_TIMEOUT":      "1500ms",
		"WAHAQ_API_TOKENS":           "t1,t2",
		"WAHAQ_API_TOKENS_FILE":      "/etc/wahaq/tokens.yaml",
		"WAHAQ_AUDIT_MAX_AGE":        "30d",
		"WAHAQ_AUDIT_MAX_ENTRIES":    "5000",
		"WAHAQ_NAMESPACE":            "ns1",
		"LOG_LEVEL":                  "debug",
		"LOG_FORMAT":                 "console",
	}))
	require.NoError(t, err)
	require.Equal(t, Settings{
		RedisURL:            "rediss://r.example:6380/2",
		RedisClusterAddrs:   []string{"a:7000", "b:7001"},
		WahaBaseURL:         "https://waha.example",
		WahaAPIKey:          "k1",
		InstancesFile:       "/etc/wahaq/instances.yaml",
		ValidationURL:       "https://check.example/v1",
		ValidationAPIKey:    "vk",
		Concurrency:         7,
		InstanceConcurrency: 2,
		TakeBlock:           8,
		CallbackConcurrency: 3,
		FastPath:            "off",
		PollInterval:        time.Second,
		MaxRetries:          0,
		RetryBase:           500 * time.Millisecond,
		RetryMax:            time.Minute,
		ResultTTL:           time.Hour,
		ShutdownGrace:       5 * time.Second,
		ReconcileInterval:   2 * time.Second,
		RequestTimeout:      1500 * time.Millisecond,
		APITokens:           []string{"t1", "t2"},
		APITokensFile:       "/etc/wahaq/tokens.yaml",
		AuditMaxAge:         30 * 24 * time.Hour,
		AuditMaxEntries:     5000,
		Namespace:           "ns1",
		LogLevel:            "debug",
		LogFormat:           "console",
		HTTP: httpserver.Limits{
			ReadHeaderTimeout: httpserver.DefaultReadHeaderTimeout, ReadTimeout: httpserver.DefaultReadTimeout,
			WriteTimeout: httpserver.DefaultWriteTimeout, IdleTimeout: httpserver.DefaultIdleTimeout,
			MaxHeaderBytes: httpserver.DefaultMaxHeaderBytes,
		},
	}, s)
}

func TestFlagWinsOverEnv(t *testing.T) {
	t.Parallel()
	e := env(map[string]string{
		"WAHAQ_CONCURRENCY": "7",
		"LOG_LEVEL":         "debug",
		"WAHA_API_KEY":      "from-env",
		"WAHAQ_RETRY_MAX":   "1m",
	})
	for _, c := range []struct {
		name  string
		args  []string
		check func(t *testing.T, s Settings)
	}{
		{"no flags: env", nil, func(t *testing.T, s Settings) {
			require.Equal(t, 7, s.Concurrency)
			require.Equal(t, "debug", s.LogLevel)
			require.Equal(t, "from-env", s.WahaAPIKey)
			require.Equal(t, time.Minute, s.RetryMax)
		}},
		{"flags win", []string{"--concurrency=3", "--log-level", "warn", "--waha-api-key=from-flag", "--retry-max=2m"}, func(t *testing.T, s Settings) {
			require.Equal(t, 3, s.Concurrency)
			require.Equal(t, "warn", s.LogLevel)
			require.Equal(t, "from-flag", s.WahaAPIKey)
			require.Equal(t, 2*time.Minute, s.RetryMax)
		}},
		{"flag over default", []string{"--namespace=other", "--api-tokens= x ,y"}, func(t *testing.T, s Settings) {
			require.Equal(t, "other", s.Namespace)
			require.Equal(t, []string{"x", "y"}, s.APITokens)
			require.Equal(t, 7, s.Concurrency, "env still applies to flags not given")
		}},
		{"flag equal to default still wins over env", []string{"--concurrency=20"}, func(t *testing.T, s Settings) {
			require.Equal(t, 20, s.Concurrency)
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			fs := pflag.NewFlagSet("wahaq", pflag.ContinueOnError)
			BindFlags(fs)
			require.NoError(t, fs.Parse(c.args))
			s, err := load(fs, e)
			require.NoError(t, err)
			c.check(t, s)
		})
	}
}

func TestBadValues(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		env  map[string]string
		args []string
		want string // the variable the message must name
	}{
		{"concurrency zero", map[string]string{"WAHAQ_CONCURRENCY": "0"}, nil, "WAHAQ_CONCURRENCY"},
		{"concurrency negative", map[string]string{"WAHAQ_CONCURRENCY": "-1"}, nil, "WAHAQ_CONCURRENCY"},
		{"concurrency not a number", map[string]string{"WAHAQ_CONCURRENCY": "x"}, nil, "WAHAQ_CONCURRENCY"},
		{"instance concurrency zero", map[string]string{"WAHAQ_INSTANCE_CONCURRENCY": "0"}, nil, "WAHAQ_INSTANCE_CONCURRENCY"},
		{"take block zero", map[string]string{"WAHAQ_TAKE_BLOCK": "0"}, nil, "WAHAQ_TAKE_BLOCK"},
		{"poll interval zero", map[string]string{"WAHAQ_POLL_INTERVAL": "0s"}, nil, "WAHAQ_POLL_INTERVAL"},
		{"callback concurrency zero", map[string]string{"WAHAQ_CALLBACK_CONCURRENCY": "0"}, nil, "WAHAQ_CALLBACK_CONCURRENCY"},
		{"fast path neither on nor off", map[string]string{"WAHAQ_FAST_PATH": "fast"}, nil, "WAHAQ_FAST_PATH"},
		{"fast path flag neither on nor off", nil, []string{"--fast-path=yes"}, "WAHAQ_FAST_PATH"},
		{"max retries negative", map[string]string{"WAHAQ_MAX_RETRIES": "-3"}, nil, "WAHAQ_MAX_RETRIES"},
		{"retry base not a duration", map[string]string{"WAHAQ_RETRY_BASE": "abc"}, nil, "WAHAQ_RETRY_BASE"},
		{"retry base zero", map[string]string{"WAHAQ_RETRY_BASE": "0s"}, nil, "WAHAQ_RETRY_BASE"},
		{"retry max below base", map[string]string{"WAHAQ_RETRY_BASE": "1m", "WAHAQ_RETRY_MAX": "30s"}, nil, "WAHAQ_RETRY_MAX"},
		{"result ttl negative", map[string]string{"WAHAQ_RESULT_TTL": "-1h"}, nil, "WAHAQ_RESULT_TTL"},
		{"log level", map[string]string{"LOG_LEVEL": "loud"}, nil, "LOG_LEVEL"},
		{"log format", map[string]string{"LOG_FORMAT": "xml"}, nil, "LOG_FORMAT"},
		{"base url scheme", map[string]string{"WAHA_BASE_URL": "ftp://x"}, nil, "WAHA_BASE_URL"},
		{"base url no host", map[string]string{"WAHA_BASE_URL": "http://"}, nil, "WAHA_BASE_URL"},
		{"bad flag value", nil, []string{"--concurrency=0"}, "WAHAQ_CONCURRENCY"},
		{"audit age not a duration", map[string]string{"WAHAQ_AUDIT_MAX_AGE": "forever"}, nil, "WAHAQ_AUDIT_MAX_AGE"},
		{"audit entries zero", map[string]string{"WAHAQ_AUDIT_MAX_ENTRIES": "0"}, nil, "WAHAQ_AUDIT_MAX_ENTRIES"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			var fs *pflag.FlagSet
			if c.args != nil {
				fs = pflag.NewFlagSet("wahaq", pflag.ContinueOnError)
				BindFlags(fs)
				require.NoError(t, fs.Parse(c.args))
			}
			_, err := load(fs, env(c.env))
			require.Error(t, err)
			require.ErrorIs(t, err, ErrBadConfig)
			require.Contains(t, err.Error(), c.want)
		})
	}
}

func TestSeveralBadValuesAllReported(t *testing.T) {
	t.Parallel()
	_, err := load(nil, env(map[string]string{"LOG_LEVEL": "loud", "LOG_FORMAT": "xml", "WAHAQ_CONCURRENCY": "x"}))
	require.ErrorIs(t, err, ErrBadConfig)
	for _, v := range []string{"LOG_LEVEL", "LOG_FORMAT", "WAHAQ_CONCURRENCY"} {
		require.Contains(t, err.Error(), v)
	}
}

func TestCommaListsTrimmed(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		in   string
		want []string
	}{
		{" a, b ,,", []string{"a", "b"}},
		{"a", []string{"a"}},
		{" , ,", nil},
		{"", nil},
	} {
		s, err := load(nil, env(map[string]string{"WAHAQ_API_TOKENS": c.in, "REDIS_CLUSTER_ADDRS": c.in}))
		require.NoError(t, err)
		require.Equal(t, c.want, s.APITokens, "tokens %q", c.in)
		require.Equal(t, c.want, s.RedisClusterAddrs, "cluster addrs %q", c.in)
	}
}

// TestSecretsNotInHelp cannot run in parallel: BindFlags and Load read the
// real environment, so it sets variables with t.Setenv.
func TestSecretsNotInHelp(t *testing.T) {
	secrets := map[string]string{
		"WAHA_API_KEY":            "sekrit-waha-key",
		"WAHA_VALIDATION_API_KEY": "sekrit-validation-key",
		"WAHAQ_API_TOKENS":        "sekrit-token-1,sekrit-token-2",
		"WAHAQ_CALLBACK_SECRET":   "whsec_c2Vrcml0LWNhbGxiYWNrLXNlY3JldC0wMTIzNDU2Nzg5", // base64 of sekrit-callback-secret-0123456789
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	fs := pflag.NewFlagSet("wahaq", pflag.ContinueOnError)
	BindFlags(fs)
	n := 0
	for _, s := range table {
		f := fs.Lookup(s.flag)
		require.NotNil(t, f, "flag --%s", s.flag)
		require.Contains(t, f.Usage, s.env, "usage of --%s names its variable", s.flag)
		if s.secret {
			n++
			require.Empty(t, f.DefValue, "--%s must not show a default", s.flag)
		} else {
			require.Equal(t, s.def, f.DefValue, "--%s", s.flag)
		}
	}
	require.Equal(t, len(secrets), n, "every secret setting is marked secret")
	help := fs.FlagUsages()
	require.NotContains(t, help, "sekrit")
	require.NotContains(t, help, "c2Vrcml0LWNh", "nor the callback secret")
	// The values are still read from the environment.
	require.NoError(t, fs.Parse(nil))
	s, err := Load(fs)
	require.NoError(t, err)
	require.Equal(t, "sekrit-waha-key", s.WahaAPIKey)
	require.Equal(t, "sekrit-validation-key", s.ValidationAPIKey)
	require.Equal(t, []string{"sekrit-token-1", "sekrit-token-2"}, s.APITokens)
}

func TestNewRedis(t *testing.T) {
	t.Parallel()
	t.Run("redis URL", func(t *testing.T) {
		t.Parallel()
		c, err := NewRedis("redis://:pw@10.0.0.5:6390/3", nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		rc, ok := c.(*redis.Client)
		require.True(t, ok, "got %T", c)
		require.Equal(t, "10.0.0.5:6390", rc.Options().Addr)
		require.Equal(t, 3, rc.Options().DB)
		require.Equal(t, "pw", rc.Options().Password)
		require.Nil(t, rc.Options().TLSConfig)
	})
	t.Run("rediss URL uses TLS", func(t *testing.T) {
		t.Parallel()
		c, err := NewRedis("rediss://r.example:6380/1", nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		rc, ok := c.(*redis.Client)
		require.True(t, ok, "got %T", c)
		require.Equal(t, "r.example:6380", rc.Options().Addr)
		require.Equal(t, 1, rc.Options().DB)
		require.NotNil(t, rc.Options().TLSConfig)
	})
	t.Run("sentinel URL", func(t *testing.T) {
		t.Parallel()
		c, err := NewRedis("redis-sentinel://s1:26379,s2:26379/mymaster/2", nil)
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		// NewFailoverClient returns a *redis.Client; the options it keeps
		// are those of the master connection.
		rc, ok := c.(*redis.Client)
		require.True(t, ok, "got %T", c)
		require.Equal(t, 2, rc.Options().DB)
		require.Equal(t, "FailoverClient", rc.Options().Addr)
	})
	t.Run("bad sentinel URL", func(t *testing.T) {
		t.Parallel()
		_, err := NewRedis("redis-sentinel://s1:26379/", nil)
		require.ErrorIs(t, err, ErrBadConfig)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		c, err := NewRedis("redis://u:pw@ignored:1/0", []string{"a:7000", "b:7001"})
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		cc, ok := c.(*redis.ClusterClient)
		require.True(t, ok, "got %T", c)
		require.Equal(t, []string{"a:7000", "b:7001"}, cc.Options().Addrs)
		require.Equal(t, "u", cc.Options().Username)
		require.Equal(t, "pw", cc.Options().Password)
	})
	t.Run("settings", func(t *testing.T) {
		t.Parallel()
		s, err := load(nil, env(map[string]string{"REDIS_CLUSTER_ADDRS": "a:7000, b:7001"}))
		require.NoError(t, err)
		c, err := s.Redis()
		require.NoError(t, err)
		t.Cleanup(func() { _ = c.Close() })
		require.IsType(t, &redis.ClusterClient{}, c)
	})
	for _, c := range []struct{ name, url, password string }{
		{"bad scheme", "http://user:hunter2secret@host:6379/0", "hunter2secret"},
		{"bad database", "redis://user:hunter2secret@host:6379/abc", "hunter2secret"},
		{"bad port", "redis://user:hunter2secret@host:port/0", "hunter2secret"},
		{"bad escape", "redis://user:hunter2secret%zz@host:6379/0", "hunter2secret"},
		{"space in host", "redis://:hunter2secret@ho st:6379/0", "hunter2secret"},
		{"quote in password", "redis://u:hunter2\"secret@host:port/0", `hunter2\"secret`},
		{"at in password", "redis://u:hunter2@secret@host:port/0", "hunter2@secret"},
	} {
		t.Run("malformed URL hides password/"+c.name, func(t *testing.T) {
			t.Parallel()
			_, err := NewRedis(c.url, nil)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrBadConfig)
			require.Contains(t, err.Error(), "REDIS_URL")
			require.NotContains(t, err.Error(), c.password)
			require.NotContains(t, err.Error(), "hunter2", "no part of the password")
		})
	}
}

func TestParseSentinelURL(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name                             string
		url                              string
		master                           string
		addrs                            []string
		db                               int
		user, password, sentinelPassword string
	}{
		{"minimal", "redis-sentinel://s1:26379/mymaster", "mymaster", []string{"s1:26379"}, 0, "", "", ""},
		{"several sentinels and db", "redis-sentinel://s1:26379,s2:26380,s3:26381/mymaster/4", "mymaster", []string{"s1:26379", "s2:26380", "s3:26381"}, 4, "", "", ""},
		{"passwords", "redis-sentinel://:masterpw@s1:26379,s2:26379/m1/1?sentinel_password=sentpw", "m1", []string{"s1:26379", "s2:26379"}, 1, "", "masterpw", "sentpw"},
		{"user and escaped passwords", "redis-sentinel://alice:p%40ss@s1:26379/m1?sentinel_password=a%26b", "m1", []string{"s1:26379"}, 0, "alice", "p@ss", "a&b"},
		{"trailing slash", "redis-sentinel://s1:26379/m1/", "m1", []string{"s1:26379"}, 0, "", "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			opt, err := parseSentinelURL(c.url)
			require.NoError(t, err)
			require.Equal(t, c.master, opt.MasterName)
			require.Equal(t, c.addrs, opt.SentinelAddrs)
			require.Equal(t, c.db, opt.DB)
			require.Equal(t, c.user, opt.Username)
			require.Equal(t, c.password, opt.Password)
			require.Equal(t, c.sentinelPassword, opt.SentinelPassword)
		})
	}
	for _, c := range []struct{ name, url, want string }{
		{"missing master", "redis-sentinel://s1:26379", "master name"},
		{"missing master, slash", "redis-sentinel://s1:26379/", "master name"},
		{"bad db", "redis-sentinel://s1:26379/m1/x", `"x"`},
		{"negative db", "redis-sentinel://s1:26379/m1/-1", `"-1"`},
		{"no sentinel", "redis-sentinel:///m1", "sentinel address"},
		{"unparsable", "redis-sentinel://:secretpw@s1:26379%zz/m1", "redis-sentinel"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseSentinelURL(c.url)
			require.Error(t, err)
			require.ErrorIs(t, err, ErrBadConfig)
			require.Contains(t, err.Error(), c.want)
			require.NotContains(t, err.Error(), "secretpw")
		})
	}
}

func TestLogger(t *testing.T) {
	t.Parallel()
	var b strings.Builder
	s, err := load(nil, env(map[string]string{"LOG_LEVEL": "warn"}))
	require.NoError(t, err)
	log := s.Logger(&b)
	log.Info().Msg("hidden")
	log.Warn().Msg("shown")
	require.NotContains(t, b.String(), "hidden")
	require.Contains(t, b.String(), `"message":"shown"`)
}

// TestFlagsShowTheirTypes: --help names each flag's type as cobra users
// expect, a value of the wrong form is refused when the flag is parsed, and
// the environment variables still apply.
func TestFlagsShowTheirTypes(t *testing.T) {
	t.Parallel()
	fs := pflag.NewFlagSet("wahaq", pflag.ContinueOnError)
	BindFlags(fs)
	help := fs.FlagUsages()
	for _, want := range []string{
		"--concurrency int ", "--max-retries int ", "--retry-base duration ", "--result-ttl duration ",
		"--audit-max-age duration ", "--audit-max-entries int ", "--callback-allow list ", "--redis-cluster-addrs list ",
		"--redis-url string ", "--api-tokens-file string ",
	} {
		require.Contains(t, help, want)
	}
	require.NotContains(t, help, "--concurrency string")
	for flag, bad := range map[string]string{"concurrency": "many", "retry-base": "2", "audit-max-age": "ninety days", "audit-max-entries": "1e6"} {
		f := pflag.NewFlagSet("wahaq", pflag.ContinueOnError)
		BindFlags(f)
		f.SetOutput(io.Discard)
		err := f.Parse([]string{"--" + flag + "=" + bad})
		require.Error(t, err, flag)
		require.Contains(t, err.Error(), bad)
	}
	f := pflag.NewFlagSet("wahaq", pflag.ContinueOnError)
	BindFlags(f)
	require.NoError(t, f.Parse([]string{"--max-retries=3", "--audit-max-age=7d", "--callback-allow=a.example, b.example"}))
	s, err := load(f, env(map[string]string{"WAHAQ_CONCURRENCY": "9", "WAHAQ_MAX_RETRIES": "5"}))
	require.NoError(t, err)
	require.Equal(t, 9, s.Concurrency, "the environment applies to flags not given")
	require.Equal(t, 3, s.MaxRetries, "the flag wins")
	require.Equal(t, 7*24*time.Hour, s.AuditMaxAge)
	require.Equal(t, []string{"a.example", "b.example"}, s.CallbackAllow)
}

func TestNamedTokens(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, []byte(body), 0o600))
		return p
	}
	h := access.Hash("file-token")
	good := write("good.yaml", "tokens:\n  - {name: n8n, sha256: "+h+", role: enqueue, instances: [eu]}\n")
	ts, err := Settings{APITokensFile: good}.NamedTokens([]string{"default", "eu"})
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, access.RoleEnqueue, ts[0].Role)

	none, err := Settings{}.NamedTokens(nil)
	require.NoError(t, err)
	require.Nil(t, none)

	for name, c := range map[string]struct {
		path, plain, want string
	}{
		"missing file":       {path: filepath.Join(dir, "nope.yaml"), want: "nope.yaml"},
		"not yaml":           {path: write("bad.yaml", "tokens: ["), want: "bad tokens file"},
		"unknown role":       {path: write("role.yaml", "tokens:\n  - {name: a, sha256: "+h+", role: root}\n"), want: `unknown role "root"`},
		"repeated hash":      {path: write("dup.yaml", "tokens:\n  - {name: a, sha256: "+h+", role: read}\n  - {name: b, sha256: "+h+", role: read}\n"), want: "given twice"},
		"unknown instance":   {path: write("inst.yaml", "tokens:\n  - {name: a, sha256: "+h+", role: read, instances: [mars]}\n"), want: `"mars"`},
		"same as env tokens": {path: good, plain: "file-token", want: "given twice"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s := Settings{APITokensFile: c.path}
			if c.plain != "" {
				s.APITokens = []string{c.plain}
			}
			_, err := s.NamedTokens([]string{"default", "eu"})
			require.ErrorIs(t, err, ErrBadConfig)
			require.Contains(t, err.Error(), c.want)
			require.NotContains(t, err.Error(), "file-token")
		})
	}
}
