// Package config reads wahaq's settings: environment variables, each with a
// command-line flag of the same meaning (the flag wins), and the optional
// instances YAML file.
package config

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"
	"github.com/spf13/pflag"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/api"
	"github.com/wahaq/wahaq/internal/audit"
	"github.com/wahaq/wahaq/internal/callback"
	"github.com/wahaq/wahaq/internal/duration"
	"github.com/wahaq/wahaq/internal/httpserver"
	"github.com/wahaq/wahaq/internal/reconcile"
	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/worker"
)

// ErrBadConfig marks settings that cannot work; commands exit with code 2.
var ErrBadConfig = errors.New("bad configuration")

// Settings are wahaq's settings, one per row of the README's configuration
// table: each is an environment variable and a flag.
type Settings struct {
	RedisURL            string        // REDIS_URL, default redis://127.0.0.1:6379/0
	RedisClusterAddrs   []string      // REDIS_CLUSTER_ADDRS, comma-separated; when set, a Cluster client is used
	WahaBaseURL         string        // WAHA_BASE_URL, default http://127.0.0.1:3000 (the instance "default")
	WahaAPIKey          string        // WAHA_API_KEY
	InstancesFile       string        // WAHAQ_INSTANCES: YAML naming several servers
	ValidationURL       string        // WAHA_VALIDATION_URL
	ValidationAPIKey    string        // WAHA_VALIDATION_API_KEY
	Concurrency         int           // WAHAQ_CONCURRENCY, default 20
	InstanceConcurrency int           // WAHAQ_INSTANCE_CONCURRENCY, default 4
	TakeBlock           int           // WAHAQ_TAKE_BLOCK, default 4
	FastPath            string        // WAHAQ_FAST_PATH, on or off, default on
	PollInterval        time.Duration // WAHAQ_POLL_INTERVAL, default worker.DefaultPollInterval (10ms)
	MaxRetries          int           // WAHAQ_MAX_RETRIES, default 10
	RetryBase           time.Duration // WAHAQ_RETRY_BASE, default 2s
	RetryMax            time.Duration // WAHAQ_RETRY_MAX, default 10m
	ResultTTL           time.Duration // WAHAQ_RESULT_TTL, default 24h
	ShutdownGrace       time.Duration // WAHAQ_SHUTDOWN_GRACE, default 30s
	ReconcileInterval   time.Duration // WAHAQ_RECONCILE_INTERVAL, default reconcile.DefaultInterval (30s)
	APITokens           []string      // WAHAQ_API_TOKENS, comma-separated
	RequestTimeout      time.Duration // WAHAQ_REQUEST_TIMEOUT, default api.DefaultRequestTimeout (4s)
	APITokensFile       string        // WAHAQ_API_TOKENS_FILE: YAML of named tokens with roles (read by Tokens)
	AuditMaxAge         time.Duration // WAHAQ_AUDIT_MAX_AGE, default audit.DefaultMaxAge (90d)
	AuditMaxEntries     int           // WAHAQ_AUDIT_MAX_ENTRIES, default audit.DefaultMaxEntries (1,000,000)
	CallbackSecret      string        // WAHAQ_CALLBACK_SECRET: whsec_<base64>, signs completion callbacks (worker)
	CallbackAllow       []string      // WAHAQ_CALLBACK_ALLOW: names, name:port, IPs, IP:port, CIDRs a callback_url may name
	CallbackConcurrency int           // WAHAQ_CALLBACK_CONCURRENCY, default worker.DefaultCallbackConcurrency (16)
	Namespace           string        // WAHAQ_NAMESPACE, default wahaq (queue names wahaq:<instance>)
	LogLevel            string        // LOG_LEVEL, default info
	LogFormat           string        // LOG_FORMAT, default json; console for people
	// HTTP bounds the connections of `wahaq serve` and of the worker's
	// metrics server: WAHAQ_HTTP_READ_HEADER_TIMEOUT (5s),
	// WAHAQ_HTTP_READ_TIMEOUT (30s), WAHAQ_HTTP_WRITE_TIMEOUT (60s),
	// WAHAQ_HTTP_IDLE_TIMEOUT (60s), WAHAQ_HTTP_MAX_HEADER_BYTES (65536).
	// Defaults to httpserver's Default* constants.
	HTTP httpserver.Limits
}

type setting struct {
	env, flag, def, usage string
	secret                bool
	kind                  kind
}

// kind is a setting's type, shown by --help ("--concurrency int") and
// checked when the flag is parsed (a bad value is bad usage, exit 2).
type kind int

const (
	kindString   kind = iota
	kindInt           // a whole number
	kindDuration      // a Go duration: 30s, 10m, 24h
	kindDays          // a duration that may be written in days too: 90d (internal/duration)
	kindList          // comma-separated
)

// flagValue is a setting's flag: it keeps the text as given, so Load reads
// flags and environment variables alike, and checks its kind on Set.
type flagValue struct {
	text string
	kind kind
}

func (v *flagValue) String() string { return v.text }

// Type is what --help shows after the flag's name.
func (v *flagValue) Type() string {
	switch v.kind {
	case kindInt:
		return "int"
	case kindDuration, kindDays:
		return "duration"
	case kindList:
		return "list"
	}
	return "string"
}

// Set checks the value's form; ranges are checked by Load with the
// settings' names.
func (v *flagValue) Set(s string) error {
	switch v.kind {
	case kindInt:
		if _, err := strconv.Atoi(strings.TrimSpace(s)); err != nil {
			return fmt.Errorf("%q is not a whole number", s)
		}
	case kindDuration:
		if _, err := time.ParseDuration(strings.TrimSpace(s)); err != nil {
			return fmt.Errorf("%q is not a duration such as 30s, 10m or 24h", s)
		}
	case kindDays:
		if _, err := duration.Parse(strings.TrimSpace(s)); err != nil {
			return fmt.Errorf("%q is not a duration such as 24h or 90d", s)
		}
	}
	v.text = s
	return nil
}

var table = []setting{
	{"REDIS_URL", "redis-url", "redis://127.0.0.1:6379/0", "Redis URL: redis://, rediss:// (TLS) or redis-sentinel://host:port[,host:port]/master[/db]", false, kindString},
	{"REDIS_CLUSTER_ADDRS", "redis-cluster-addrs", "", "comma-separated Redis Cluster node addresses (overrides the URL's hosts)", false, kindList},
	{"WAHA_BASE_URL", "waha-base-url", "http://127.0.0.1:3000", "base URL of the WAHA server named default", false, kindString},
	{"WAHA_API_KEY", "waha-api-key", "", "X-Api-Key of the default WAHA server (prefer the environment variable for secrets)", true, kindString},
	{"WAHAQ_INSTANCES", "instances", "", "path of the instances YAML file (several WAHA servers, schedules)", false, kindString},
	{"WAHA_VALIDATION_URL", "validation-url", "", "optional subscription/key check called before each logout", false, kindString},
	{"WAHA_VALIDATION_API_KEY", "validation-api-key", "", "bearer key of the validation service (prefer the environment variable)", true, kindString},
	{"WAHAQ_CONCURRENCY", "concurrency", strconv.Itoa(worker.DefaultConcurrency), "tasks one worker process runs at once", false, kindInt},
	{"WAHAQ_INSTANCE_CONCURRENCY", "instance-concurrency", strconv.Itoa(worker.DefaultInstanceConcurrency), "logouts in flight at once against one WAHA server, across all workers", false, kindInt},
	{"WAHAQ_TAKE_BLOCK", "take-block", strconv.Itoa(worker.DefaultTakeBlock), "most tasks a worker dequeues and starts in one Redis call, never more than the queue's share of its free handlers (1: one at a time, as asynq)", false, kindInt},
	{"WAHAQ_FAST_PATH", "fast-path", worker.FastPathOn, "on: the worker replaces asynq's dequeue and done with its own scripts (fewer Redis round trips per task); off leaves them to asynq. Off by itself in a build whose asynq wahaq does not know", false, kindString},
	{"WAHAQ_POLL_INTERVAL", "poll-interval", shortDuration(worker.DefaultPollInterval), "how often an idle worker looks for new tasks in each queue: with the fast path on the look is answered in the process and costs Redis nothing until a task is announced; off, each is a Redis call per queue (asynq's own default is 1s: set it to pay asynq's idle cost at asynq's pickup latency)", false, kindDuration},
	{"WAHAQ_MAX_RETRIES", "max-retries", strconv.Itoa(tasks.DefaultMaxRetries), "retries of a transient failure before the task is dead-lettered (0: none)", false, kindInt},
	{"WAHAQ_RETRY_BASE", "retry-base", shortDuration(worker.DefaultRetryBase), "smallest backoff between attempts", false, kindDuration},
	{"WAHAQ_RETRY_MAX", "retry-max", shortDuration(worker.DefaultRetryMax), "largest backoff between attempts", false, kindDuration},
	{"WAHAQ_RESULT_TTL", "result-ttl", shortDuration(tasks.DefaultResultTTL), "how long results stay pollable", false, kindDuration},
	{"WAHAQ_SHUTDOWN_GRACE", "shutdown-grace", shortDuration(worker.DefaultShutdownGrace), "how long in-flight logouts may finish after SIGTERM", false, kindDuration},
	{"WAHAQ_RECONCILE_INTERVAL", "reconcile-interval", shortDuration(reconcile.DefaultInterval), "how often workers repair records that disagree with asynq's queues (tasks deleted or archived in asynq's tools, stale claims, batches left open)", false, kindDuration},
	{"WAHAQ_REQUEST_TIMEOUT", "request-timeout", shortDuration(api.DefaultRequestTimeout), "HTTP API: how long one request may wait for Redis before it answers 503 with Retry-After (a long-poll's ?wait= comes on top)", false, kindDuration},
	{"WAHAQ_API_TOKENS", "api-tokens", "", "comma-separated bearer tokens accepted by the HTTP API (prefer the environment variable)", true, kindList},
	{"WAHAQ_CALLBACK_SECRET", "callback-secret", "", "Standard Webhooks secret (whsec_<base64>) the worker signs completion callbacks with (prefer the environment variable)", true, kindString},
	{"WAHAQ_CALLBACK_ALLOW", "callback-allow", "", "comma-separated destinations a callback_url may name: IP or CIDR (any port), IP:port or [IPv6]:port (that port only), name or name:port (public addresses only unless an IP/CIDR entry allows the address too); empty: callbacks refused", false, kindList},
	{"WAHAQ_CALLBACK_CONCURRENCY", "callback-concurrency", strconv.Itoa(worker.DefaultCallbackConcurrency), "callback deliveries one worker process posts at once, in a pool apart from the logouts' handlers", false, kindInt},
	{"WAHAQ_NAMESPACE", "namespace", tasks.DefaultNamespace, "prefix of queue names (wahaq:<instance>)", false, kindString},
	{"LOG_LEVEL", "log-level", "info", "debug, info, warn or error", false, kindString},
	{"LOG_FORMAT", "log-format", "json", "json, or console for people", false, kindString},
	{"WAHAQ_HTTP_READ_HEADER_TIMEOUT", "http-read-header-timeout", shortDuration(httpserver.DefaultReadHeaderTimeout), "HTTP servers (serve, worker metrics): time to read a request's headers", false, kindDuration},
	{"WAHAQ_HTTP_READ_TIMEOUT", "http-read-timeout", shortDuration(httpserver.DefaultReadTimeout), "HTTP servers: time to read a whole request, body included", false, kindDuration},
	{"WAHAQ_HTTP_WRITE_TIMEOUT", "http-write-timeout", shortDuration(httpserver.DefaultWriteTimeout), "HTTP servers: time to answer a request (long-polls and streams extend their own)", false, kindDuration},
	{"WAHAQ_HTTP_IDLE_TIMEOUT", "http-idle-timeout", shortDuration(httpserver.DefaultIdleTimeout), "HTTP servers: how long an idle keep-alive connection stays open", false, kindDuration},
	{"WAHAQ_HTTP_MAX_HEADER_BYTES", "http-max-header-bytes", strconv.Itoa(httpserver.DefaultMaxHeaderBytes), "HTTP servers: largest request line and headers, in bytes", false, kindInt},
	{"WAHAQ_API_TOKENS_FILE", "api-tokens-file", "", "path of the tokens YAML file: named tokens (SHA-256 only) with a role (read, enqueue, operate, admin) and optionally the instances they may touch", false, kindString},
	{"WAHAQ_AUDIT_MAX_AGE", "audit-max-age", "90d", "how long the audit log keeps its entries (a duration; 90d is 90 days)", false, kindDays},
	{"WAHAQ_AUDIT_MAX_ENTRIES", "audit-max-entries", strconv.Itoa(audit.DefaultMaxEntries), "most entries the audit log keeps (older ones are dropped)", false, kindInt},
}

// shortDuration writes d as people do ("24h", "10m", "2s"), not as
// time.Duration.String does ("24h0m0s").
func shortDuration(d time.Duration) string {
	out := d.String()
	if strings.HasSuffix(out, "m0s") {
		out = strings.TrimSuffix(out, "0s")
	}
	if strings.HasSuffix(out, "h0m") {
		out = strings.TrimSuffix(out, "0m")
	}
	return out
}

// BindFlags registers a flag for every setting on fs.
func BindFlags(fs *pflag.FlagSet) {
	for _, s := range table {
		def := s.def
		if s.secret {
			def = "" // never print a secret's value in --help
		}
		fs.Var(&flagValue{text: def, kind: s.kind}, s.flag, fmt.Sprintf("%s (env %s)", s.usage, s.env))
	}
}

// Load reads the settings: the default, then the environment variable, then
// the flag if it was given on the command line. fs may be nil.
func Load(fs *pflag.FlagSet) (Settings, error) {
	return load(fs, os.Getenv)
}

func load(fs *pflag.FlagSet, getenv func(string) string) (Settings, error) {
	v := map[string]string{}
	for _, s := range table {
		val := s.def
		if e := getenv(s.env); e != "" {
			val = e
		}
		if fs != nil {
			if f := fs.Lookup(s.flag); f != nil && f.Changed {
				val = f.Value.String()
			}
		}
		v[s.env] = val
	}
	var errs []error
	num := func(k string) int {
		n, err := strconv.Atoi(v[k])
		if err != nil || n < 0 {
			errs = append(errs, fmt.Errorf("%s=%q is not a whole number ≥ 0", k, v[k]))
		}
		return n
	}
	dur := func(k string) time.Duration {
		d, err := time.ParseDuration(v[k])
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q is not a positive duration such as 30s or 10m", k, v[k]))
		}
		return d
	}
	days := func(k string) time.Duration {
		d, err := duration.Parse(v[k])
		if err != nil || d <= 0 {
			errs = append(errs, fmt.Errorf("%s=%q is not a positive duration such as 24h or 90d", k, v[k]))
		}
		return d
	}
	s := Settings{
		RedisURL:            v["REDIS_URL"],
		RedisClusterAddrs:   splitList(v["REDIS_CLUSTER_ADDRS"]),
		WahaBaseURL:         v["WAHA_BASE_URL"],
		WahaAPIKey:          v["WAHA_API_KEY"],
		InstancesFile:       v["WAHAQ_INSTANCES"],
		ValidationURL:       v["WAHA_VALIDATION_URL"],
		ValidationAPIKey:    v["WAHA_VALIDATION_API_KEY"],
		Concurrency:         num("WAHAQ_CONCURRENCY"),
		InstanceConcurrency: num("WAHAQ_INSTANCE_CONCURRENCY"),
		TakeBlock:           num("WAHAQ_TAKE_BLOCK"),
		FastPath:            v["WAHAQ_FAST_PATH"],
		PollInterval:        dur("WAHAQ_POLL_INTERVAL"),
		MaxRetries:          num("WAHAQ_MAX_RETRIES"),
		RetryBase:           dur("WAHAQ_RETRY_BASE"),
		RetryMax:            dur("WAHAQ_RETRY_MAX"),
		ResultTTL:           dur("WAHAQ_RESULT_TTL"),
		ShutdownGrace:       dur("WAHAQ_SHUTDOWN_GRACE"),
		ReconcileInterval:   dur("WAHAQ_RECONCILE_INTERVAL"),
		APITokens:           splitList(v["WAHAQ_API_TOKENS"]),
		RequestTimeout:      dur("WAHAQ_REQUEST_TIMEOUT"),
		APITokensFile:       v["WAHAQ_API_TOKENS_FILE"],
		AuditMaxAge:         days("WAHAQ_AUDIT_MAX_AGE"),
		AuditMaxEntries:     num("WAHAQ_AUDIT_MAX_ENTRIES"),
		CallbackSecret:      v["WAHAQ_CALLBACK_SECRET"],
		CallbackAllow:       splitList(v["WAHAQ_CALLBACK_ALLOW"]),
		CallbackConcurrency: num("WAHAQ_CALLBACK_CONCURRENCY"),
		Namespace:           v["WAHAQ_NAMESPACE"],
		LogLevel:            v["LOG_LEVEL"],
		LogFormat:           v["LOG_FORMAT"],
		HTTP: httpserver.Limits{
			ReadHeaderTimeout: dur("WAHAQ_HTTP_READ_HEADER_TIMEOUT"),
			ReadTimeout:       dur("WAHAQ_HTTP_READ_TIMEOUT"),
			WriteTimeout:      dur("WAHAQ_HTTP_WRITE_TIMEOUT"),
			IdleTimeout:       dur("WAHAQ_HTTP_IDLE_TIMEOUT"),
			MaxHeaderBytes:    num("WAHAQ_HTTP_MAX_HEADER_BYTES"),
		},
	}
	if s.HTTP.MaxHeaderBytes == 0 {
		errs = append(errs, fmt.Errorf("WAHAQ_HTTP_MAX_HEADER_BYTES must be at least 1"))
	}
	if s.HTTP.ReadHeaderTimeout > s.HTTP.ReadTimeout && s.HTTP.ReadTimeout > 0 {
		errs = append(errs, fmt.Errorf("WAHAQ_HTTP_READ_HEADER_TIMEOUT (%s) is longer than WAHAQ_HTTP_READ_TIMEOUT (%s)", s.HTTP.ReadHeaderTimeout, s.HTTP.ReadTimeout))
	}
	if s.Concurrency == 0 {
		errs = append(errs, fmt.Errorf("WAHAQ_CONCURRENCY must be at least 1"))
	}
	if s.InstanceConcurrency == 0 {
		errs = append(errs, fmt.Errorf("WAHAQ_INSTANCE_CONCURRENCY must be at least 1"))
	}
	if s.AuditMaxEntries == 0 {
		errs = append(errs, fmt.Errorf("WAHAQ_AUDIT_MAX_ENTRIES must be at least 1"))
	}
	if s.CallbackConcurrency == 0 {
		errs = append(errs, fmt.Errorf("WAHAQ_CALLBACK_CONCURRENCY must be at least 1"))
	}
	if s.TakeBlock == 0 {
		errs = append(errs, fmt.Errorf("WAHAQ_TAKE_BLOCK must be at least 1"))
	}
	if s.FastPath != worker.FastPathOn && s.FastPath != worker.FastPathOff {
		errs = append(errs, fmt.Errorf("WAHAQ_FAST_PATH=%q is not on or off", s.FastPath))
	}
	if s.RetryMax < s.RetryBase {
		errs = append(errs, fmt.Errorf("WAHAQ_RETRY_MAX (%s) is below WAHAQ_RETRY_BASE (%s)", s.RetryMax, s.RetryBase))
	}
	if _, err := zerolog.ParseLevel(s.LogLevel); err != nil || s.LogLevel == "" {
		errs = append(errs, fmt.Errorf("LOG_LEVEL=%q is not one of debug, info, warn, error", s.LogLevel))
	}
	if err := tasks.ValidateInstanceName(s.Namespace); err != nil {
		// It becomes part of queue names and Redis Cluster hash tags.
		errs = append(errs, fmt.Errorf("WAHAQ_NAMESPACE=%q must be letters, digits, '_' or '-' (at most 64)", s.Namespace))
	}
	if s.LogFormat != "json" && s.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("LOG_FORMAT=%q is not json or console", s.LogFormat))
	}
	if _, err := serverKey(s.WahaBaseURL); err != nil {
		// Not %q of the value: it may carry a password.
		errs = append(errs, fmt.Errorf("WAHA_BASE_URL: %w", err))
	}
	if s.CallbackSecret != "" {
		if _, err := callback.ParseSecret(s.CallbackSecret); err != nil {
			errs = append(errs, fmt.Errorf("WAHAQ_CALLBACK_SECRET: %w", err))
		}
	}
	if _, err := callback.ParseAllow(strings.Join(s.CallbackAllow, ",")); err != nil {
		errs = append(errs, fmt.Errorf("WAHAQ_CALLBACK_ALLOW: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return s, fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return s, nil
}

// DefaultMetricsAddr is where the worker serves /metrics, /healthz and
// /readyz when neither WAHAQ_METRICS_ADDR nor --metrics-addr is given.
const DefaultMetricsAddr = ":9090"

// MetricsAddr returns the worker's metrics address: the --metrics-addr flag
// of fs when given, else WAHAQ_METRICS_ADDR when set (also when set empty),
// else DefaultMetricsAddr. Empty means serve nothing. A second worker on
// one host needs its own address (or none): two cannot listen on one port.
func MetricsAddr(fs *pflag.FlagSet) string {
	return metricsAddr(fs, os.LookupEnv)
}

func metricsAddr(fs *pflag.FlagSet, lookup func(string) (string, bool)) string {
	if fs != nil {
		if f := fs.Lookup("metrics-addr"); f != nil && f.Changed {
			return f.Value.String()
		}
	}
	if v, ok := lookup("WAHAQ_METRICS_ADDR"); ok {
		return strings.TrimSpace(v)
	}
	return DefaultMetricsAddr
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// Logger returns the zerolog logger the settings ask for, writing to w.
func (s Settings) Logger(w io.Writer) zerolog.Logger {
	lvl, err := zerolog.ParseLevel(s.LogLevel)
	if err != nil {
		lvl = zerolog.InfoLevel
	}
	if s.LogFormat == "console" {
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.TimeOnly}
	}
	return zerolog.New(w).Level(lvl).With().Timestamp().Logger()
}

// Redis returns a client for the configured Redis: a plain client for
// redis:// and rediss://, a Sentinel failover client for redis-sentinel://,
// a Cluster client when REDIS_CLUSTER_ADDRS is set.
func (s Settings) Redis() (redis.UniversalClient, error) {
	return NewRedis(s.RedisURL, s.RedisClusterAddrs)
}

// NewRedis builds a client from a URL and optional cluster addresses.
func NewRedis(rawURL string, clusterAddrs []string) (redis.UniversalClient, error) {
	if len(clusterAddrs) > 0 {
		opt := &redis.ClusterOptions{Addrs: clusterAddrs}
		if rawURL != "" && strings.HasPrefix(rawURL, "redis") && !strings.HasPrefix(rawURL, "redis-sentinel") {
			if o, err := redis.ParseURL(rawURL); err == nil {
				opt.Username, opt.Password, opt.TLSConfig = o.Username, o.Password, o.TLSConfig
			}
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.ContextTimeoutEnabled = bounded(opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout)
		return redis.NewClusterClient(opt), nil
	}
	if strings.HasPrefix(rawURL, "redis-sentinel://") {
		opt, err := parseSentinelURL(rawURL)
		if err != nil {
			return nil, err
		}
		opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.ContextTimeoutEnabled = bounded(opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout)
		c := redis.NewFailoverClient(opt)
		c.AddHook(sentinelHook{master: opt.MasterName, sentinels: opt.SentinelAddrs})
		return c, nil
	}
	opt, err := redis.ParseURL(rawURL)
	if err != nil {
		return nil, fmt.Errorf("%w: REDIS_URL: %v", ErrBadConfig, redactErr(err, rawURL))
	}
	opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout, opt.ContextTimeoutEnabled = bounded(opt.DialTimeout, opt.ReadTimeout, opt.WriteTimeout)
	return redis.NewClient(opt), nil
}

// DefaultRedisTimeout bounds one dial, read or write to Redis unless the URL
// sets its own (dial_timeout, read_timeout, write_timeout): with go-redis'
// defaults (5 s dial, 3 s read, 3 retries) a frozen Redis held a request
// for 10 s or more. Callers' context deadlines apply too (the HTTP API's
// request timeout), so a Redis that does not answer fails within seconds.
const DefaultRedisTimeout = 2 * time.Second

// bounded fills unset timeouts with DefaultRedisTimeout and makes go-redis
// honour context deadlines.
func bounded(dial, read, write time.Duration) (time.Duration, time.Duration, time.Duration, bool) {
	or := func(d time.Duration) time.Duration {
		if d == 0 {
			return DefaultRedisTimeout
		}
		return d
	}
	return or(dial), or(read), or(write), true
}

// parseSentinelURL reads
// redis-sentinel://[[user]:password@]host:port[,host:port...]/master[/db]
// The password is the Redis master's; ?sentinel_password= sets the
// sentinels' own.
func parseSentinelURL(raw string) (*redis.FailoverOptions, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: REDIS_URL is not a valid redis-sentinel URL", ErrBadConfig)
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if parts[0] == "" {
		return nil, fmt.Errorf("%w: REDIS_URL redis-sentinel://hosts/MASTER[/db] needs the master name", ErrBadConfig)
	}
	opt := &redis.FailoverOptions{MasterName: parts[0], SentinelAddrs: splitList(u.Host)}
	if len(parts) > 1 {
		db, err := strconv.Atoi(parts[1])
		if err != nil || db < 0 {
			return nil, fmt.Errorf("%w: REDIS_URL: database %q is not a number", ErrBadConfig, parts[1])
		}
		opt.DB = db
	}
	if u.User != nil {
		opt.Username = u.User.Username()
		opt.Password, _ = u.User.Password()
	}
	opt.SentinelPassword = u.Query().Get("sentinel_password")
	if len(opt.SentinelAddrs) == 0 {
		return nil, fmt.Errorf("%w: REDIS_URL names no sentinel address", ErrBadConfig)
	}
	return opt, nil
}

// sentinelHook names the master in the error go-redis gives when the
// Sentinels answer but none monitors the master name of REDIS_URL: "all
// sentinels specified in configuration are unreachable: redis: nil".
type sentinelHook struct {
	master    string
	sentinels []string
}

func (h sentinelHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := next(ctx, network, addr)
		if err != nil && errors.Is(err, redis.Nil) {
			err = fmt.Errorf("%w: REDIS_URL: no Sentinel at %s monitors a master named %q (redis-sentinel://hosts/MASTER): %v",
				ErrBadConfig, strings.Join(h.sentinels, ","), h.master, err)
		}
		return conn, err
	}
}

func (sentinelHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (sentinelHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// redactErr keeps a URL's password out of an error message, also when the
// URL is too malformed to parse: url.Parse's error then quotes it whole.
func redactErr(err error, raw string) error {
	var secrets []string
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		if p, ok := u.User.Password(); ok && p != "" {
			secrets = append(secrets, p)
		}
	}
	// The password as written: after the first ':' of the user info, which
	// ends at the last '@'.
	if _, rest, ok := strings.Cut(raw, "://"); ok {
		if at := strings.LastIndex(rest, "@"); at >= 0 {
			if _, p, ok := strings.Cut(rest[:at], ":"); ok && p != "" {
				q := strconv.Quote(p)
				secrets = append(secrets, p, q[1:len(q)-1])
			}
		}
	}
	if len(secrets) == 0 {
		return err
	}
	msg := err.Error()
	for _, p := range secrets {
		msg = strings.ReplaceAll(msg, p, "xxxxx")
	}
	return errors.New(msg)
}

// NamedTokens reads the tokens file (WAHAQ_API_TOKENS_FILE), if one is set,
// and checks that every instance it names is one of instances. A file that
// does not parse, names an unknown role or instance, or repeats a hash or a
// name (also one of WAHAQ_API_TOKENS) is an error wrapping ErrBadConfig.
func (s Settings) NamedTokens(instances []string) ([]access.Token, error) {
	if s.APITokensFile == "" {
		return nil, nil
	}
	ts, err := access.LoadFile(s.APITokensFile)
	if err != nil {
		return nil, fmt.Errorf("%w: WAHAQ_API_TOKENS_FILE %s: %w", ErrBadConfig, s.APITokensFile, err)
	}
	for _, t := range ts {
		for _, in := range t.Instances {
			if !slices.Contains(instances, in) {
				return nil, fmt.Errorf("%w: WAHAQ_API_TOKENS_FILE %s: token %q names the instance %q, which is not configured (known: %s)",
					ErrBadConfig, s.APITokensFile, t.Name, in, strings.Join(instances, ", "))
			}
		}
	}
	if _, err := access.NewSet(s.APITokens, ts); err != nil {
		return nil, fmt.Errorf("%w: WAHAQ_API_TOKENS_FILE %s and WAHAQ_API_TOKENS: %w", ErrBadConfig, s.APITokensFile, err)
	}
	return ts, nil
}
