package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/wahaq/wahaq/tasks"
	"github.com/wahaq/wahaq/wahaclient"
)

// Instance is one configured WAHA server. APIKey is resolved from the
// environment variable the file names; the file itself never holds a key.
type Instance struct {
	// Name is the instance name tasks use.
	Name string
	// BaseURL is the server's URL, http:// or https://.
	BaseURL string
	// APIKeyEnv names the environment variable holding the key. Defaults
	// to none; the worker refuses an instance of the file that names none
	// unless NoKey says so (see RequireKeys).
	APIKeyEnv string
	// NoKey is true when the server explicitly takes no key: api_key_env: ""
	// in the file, or the default server with WAHA_API_KEY unset.
	NoKey bool
	// Concurrency caps logouts in flight against the server across all
	// workers. Defaults to 0: WAHAQ_INSTANCE_CONCURRENCY.
	Concurrency int
	// Rate caps logouts started per second across all workers, from MinRate
	// to MaxRate. Defaults to 0: no rate cap.
	Rate float64
	// Timeout bounds one call to the server. Defaults to
	// DefaultInstanceTimeout.
	Timeout time.Duration
	// APIKey is the value of APIKeyEnv, read from the environment.
	APIKey string
	// WebhookHMACKeyEnv names the environment variable holding the secret
	// WAHA signs its webhooks with (webhook_hmac_key_env). Setting it
	// enables POST /v1/waha/{instance}/events on serve, and the workers'
	// completed logouts then await their session.status events. Defaults to
	// none: no events.
	WebhookHMACKeyEnv string
	// WebhookHMACKey is the value of WebhookHMACKeyEnv, read from the
	// environment ("" when unset: serve then refuses the instance's events).
	WebhookHMACKey string
}

// Bounds of an instance's settings.
const (
	// DefaultInstanceTimeout bounds one WAHA call when the file gives no
	// timeout: a real logout takes about 3 s, so 30 s is room for a slow
	// server while a hung one frees its worker slot in time.
	DefaultInstanceTimeout = 30 * time.Second
	// MaxInstanceTimeout is the longest timeout accepted.
	MaxInstanceTimeout = time.Hour
	// MinRate and MaxRate bound rate: below one logout in 1000 s or above a
	// million a second, the limiter's period or count no longer fits its
	// integer types, and the server would silently never (or always) run.
	MinRate = 0.001
	MaxRate = 1e6
)

// instanceYAML is an instance as written in the file; pointers tell a field
// left out from one given as zero or empty.
type instanceYAML struct {
	Name        string   `yaml:"name"`
	BaseURL     string   `yaml:"base_url"`
	APIKeyEnv   *string  `yaml:"api_key_env"`
	Concurrency int      `yaml:"concurrency"`
	Rate        *float64 `yaml:"rate"`
	Timeout     *string  `yaml:"timeout"`
	WebhookEnv  string   `yaml:"webhook_hmac_key_env"`
}

// fileYAML is the instances file as written.
type fileYAML struct {
	Instances []instanceYAML `yaml:"instances"`
	Schedules []Schedule     `yaml:"schedules"`
}

// Schedule is a recurring teardown: at each tick of Cron, log out the
// sessions of Instance (all, or those in Statuses, or the listed Sessions).
type Schedule struct {
	Name     string   `yaml:"name"`
	Instance string   `yaml:"instance"`
	Cron     string   `yaml:"cron"`
	Timezone string   `yaml:"timezone"`
	Statuses []string `yaml:"status"`
	Sessions []string `yaml:"sessions"`
	// Location is Timezone resolved (UTC by default).
	Location *time.Location `yaml:"-"`
	// Spec is Cron parsed.
	Spec cron.Schedule `yaml:"-"`
}

// File is the instances YAML file, checked.
type File struct {
	// Instances are the WAHA servers, in the file's order.
	Instances []Instance
	// Schedules are the recurring teardowns.
	Schedules []Schedule
}

// Topology returns the WAHA servers and schedules: those of WAHAQ_INSTANCES
// when set, plus the server "default" from WAHA_BASE_URL/WAHA_API_KEY unless
// the file names its own "default".
func (s Settings) Topology() ([]Instance, []Schedule, error) {
	return s.topology(os.Getenv)
}

func (s Settings) topology(getenv func(string) string) ([]Instance, []Schedule, error) {
	def := Instance{Name: "default", BaseURL: s.WahaBaseURL, APIKey: s.WahaAPIKey, NoKey: s.WahaAPIKey == "",
		Timeout: DefaultInstanceTimeout}
	if s.InstancesFile == "" {
		return []Instance{def}, nil, nil
	}
	raw, err := os.ReadFile(s.InstancesFile)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: WAHAQ_INSTANCES: %v", ErrBadConfig, err)
	}
	f, err := ParseFile(raw, getenv)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, s.InstancesFile, err)
	}
	if !slices.ContainsFunc(f.Instances, func(i Instance) bool { return i.Name == "default" }) {
		f.Instances = append([]Instance{def}, f.Instances...)
	}
	if err := distinctServers(f.Instances); err != nil {
		return nil, nil, fmt.Errorf("%w: %s: %w", ErrBadConfig, s.InstancesFile, err)
	}
	return f.Instances, f.Schedules, nil
}

// ParseFile parses and checks an instances file. getenv resolves
// api_key_env.
func ParseFile(data []byte, getenv func(string) string) (*File, error) {
	var raw fileYAML
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("not a valid instances file: %w", err)
	}
	f := File{Schedules: raw.Schedules}
	names := map[string]bool{}
	for i, y := range raw.Instances {
		in, err := checkInstance(i, y, getenv)
		if err != nil {
			return nil, err
		}
		if names[in.Name] {
			return nil, fmt.Errorf("instances[%d]: name %q is used twice", i, in.Name)
		}
		names[in.Name] = true
		f.Instances = append(f.Instances, in)
	}
	if err := distinctServers(f.Instances); err != nil {
		return nil, err
	}
	parser := cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)
	snames := map[string]bool{}
	for i := range f.Schedules {
		sc := &f.Schedules[i]
		if err := tasks.ValidateInstanceName(sc.Name); err != nil {
			return nil, fmt.Errorf("schedules[%d]: name: %w", i, err)
		}
		if snames[sc.Name] {
			return nil, fmt.Errorf("schedules[%d]: name %q is used twice", i, sc.Name)
		}
		snames[sc.Name] = true
		if sc.Instance == "" {
			sc.Instance = "default"
		}
		if !names[sc.Instance] && sc.Instance != "default" {
			return nil, fmt.Errorf("schedule %q: unknown instance %q", sc.Name, sc.Instance)
		}
		spec, err := parser.Parse(sc.Cron)
		if err != nil {
			return nil, fmt.Errorf("schedule %q: cron %q: %w", sc.Name, sc.Cron, err)
		}
		if every, ok := spec.(cron.ConstantDelaySchedule); ok {
			// cron's @every counts from the time it is given, so replicas
			// would disagree on ticks, and the Runner's one-second windows
			// would never hold one: tick at multiples of the delay instead.
			spec = alignedEvery(every.Delay)
		}
		sc.Spec = spec
		sc.Location = time.UTC
		if sc.Timezone != "" {
			if sc.Location, err = time.LoadLocation(sc.Timezone); err != nil {
				return nil, fmt.Errorf("schedule %q: timezone: %w", sc.Name, err)
			}
		}
		if len(sc.Sessions) > 0 && len(sc.Statuses) > 0 {
			return nil, fmt.Errorf("schedule %q: give sessions or status, not both", sc.Name)
		}
		for _, s := range sc.Sessions {
			if err := tasks.ValidateSessionName(s); err != nil {
				return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
			}
		}
		if sc.Statuses, err = tasks.NormalizeStatuses(sc.Statuses); err != nil {
			return nil, fmt.Errorf("schedule %q: %w", sc.Name, err)
		}
	}
	return &f, nil
}

// checkInstance checks entry i of the file and resolves its key.
func checkInstance(i int, y instanceYAML, getenv func(string) string) (Instance, error) {
	in := Instance{Name: y.Name, BaseURL: y.BaseURL, Concurrency: y.Concurrency, Timeout: DefaultInstanceTimeout}
	if err := tasks.ValidateInstanceName(in.Name); err != nil {
		return in, fmt.Errorf("instances[%d]: %w", i, err)
	}
	if in.BaseURL == "" {
		return in, fmt.Errorf("instance %q: base_url is required", in.Name)
	}
	if _, err := serverKey(in.BaseURL); err != nil {
		return in, fmt.Errorf("instance %q: base_url %s", in.Name, err)
	}
	if in.Concurrency < 0 {
		return in, fmt.Errorf("instance %q: concurrency must not be negative", in.Name)
	}
	if y.Rate != nil {
		r := *y.Rate
		switch {
		case math.IsNaN(r) || math.IsInf(r, 0):
			return in, fmt.Errorf("instance %q: rate %v is not a number of logouts per second; give one from %g to %g, or leave rate out for no cap", in.Name, r, MinRate, MaxRate)
		case r < 0:
			return in, fmt.Errorf("instance %q: rate must not be negative; give one from %g to %g, or leave rate out for no cap", in.Name, MinRate, MaxRate)
		case r != 0 && (r < MinRate || r > MaxRate):
			return in, fmt.Errorf("instance %q: rate %g is outside %g to %g logouts per second; leave rate out for no cap", in.Name, r, MinRate, MaxRate)
		}
		in.Rate = r
	}
	if y.Timeout != nil {
		d, err := time.ParseDuration(strings.TrimSpace(*y.Timeout))
		if err != nil || d <= 0 || d > MaxInstanceTimeout {
			return in, fmt.Errorf("instance %q: timeout %q is not a duration from 1ms to %s such as 30s", in.Name, *y.Timeout, MaxInstanceTimeout)
		}
		in.Timeout = d
	}
	if in.WebhookHMACKeyEnv = strings.TrimSpace(y.WebhookEnv); in.WebhookHMACKeyEnv != "" {
		in.WebhookHMACKey = getenv(in.WebhookHMACKeyEnv)
	}
	if y.APIKeyEnv != nil {
		in.APIKeyEnv = strings.TrimSpace(*y.APIKeyEnv)
		in.NoKey = in.APIKeyEnv == ""
		if in.APIKeyEnv != "" {
			in.APIKey = getenv(in.APIKeyEnv)
		}
	}
	return in, nil
}

// RequireKeys checks, for the worker, that every instance has its key:
// the variable its api_key_env names is set and not empty, or the
// instance says it takes none (api_key_env: ""). serve and the CLI never
// need keys and do not call it. Errors wrap ErrBadConfig.
func RequireKeys(insts []Instance) error {
	var errs []error
	for _, in := range insts {
		switch {
		case in.APIKey != "" || in.NoKey:
		case in.APIKeyEnv != "":
			errs = append(errs, fmt.Errorf("instance %q: its api_key_env names %s, which is unset or empty in the worker's environment; set it, or write api_key_env: \"\" for a server without a key", in.Name, in.APIKeyEnv))
		default:
			errs = append(errs, fmt.Errorf("instance %q has no api_key_env: name the variable that holds its WAHA key, or write api_key_env: \"\" for a server without a key", in.Name))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("%w: %w", ErrBadConfig, err)
	}
	return nil
}

// distinctServers refuses two instances on one WAHA server: a real server
// crashed under two concurrent logouts of one session, and wahaq keeps
// logouts of one session apart only within one instance name.
func distinctServers(insts []Instance) error {
	seen := map[string]string{}
	for _, in := range insts {
		k, err := serverKey(in.BaseURL)
		if err != nil {
			continue // reported where the URL is checked
		}
		if other, ok := seen[k]; ok {
			return fmt.Errorf("instances %q and %q name the same WAHA server (%s); give each server one instance (name it default to replace the one of WAHA_BASE_URL)",
				other, in.Name, wahaclient.StripUserinfo(in.BaseURL))
		}
		seen[k] = in.Name
	}
	return nil
}

// serverKey normalises a base URL to what identifies a server: scheme and
// host in lower case, the port made explicit, the path without trailing
// slashes; user info is ignored. The error is a sentence that does not
// repeat the URL's password.
func serverKey(raw string) (string, error) {
	u, err := url.Parse(strings.TrimSpace(raw))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("%s is not an http:// or https:// URL", wahaclient.StripUserinfo(raw))
	}
	scheme := strings.ToLower(u.Scheme)
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[scheme]
	}
	path := strings.TrimRight(u.EscapedPath(), "/")
	return scheme + "://" + net.JoinHostPort(strings.ToLower(u.Hostname()), port) + path, nil
}

// alignedEvery is "@every d" ticking at whole multiples of d (since the zero
// time), the same for every replica.
type alignedEvery time.Duration

func (d alignedEvery) Next(t time.Time) time.Time {
	return t.Truncate(time.Duration(d)).Add(time.Duration(d))
}

// Names returns the instance names.
func Names(in []Instance) []string {
	out := make([]string, len(in))
	for i, x := range in {
		out[i] = x.Name
	}
	return out
}
