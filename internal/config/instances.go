package config

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

	"github.com/wahaq/wahaq/tasks"
)

// Instance is one configured WAHA server. APIKey is resolved from the
// environment variable the file names; the file itself never holds a key.
type Instance struct {
	Name        string  `yaml:"name"`
	BaseURL     string  `yaml:"base_url"`
	APIKeyEnv   string  `yaml:"api_key_env"`
	Concurrency int     `yaml:"concurrency"`
	Rate        float64 `yaml:"rate"`
	APIKey      string  `yaml:"-"`
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

// File is the instances YAML file.
type File struct {
	Instances []Instance `yaml:"instances"`
	Schedules []Schedule `yaml:"schedules"`
}

// Topology returns the WAHA servers and schedules: those of WAHAQ_INSTANCES
// when set, plus the server "default" from WAHA_BASE_URL/WAHA_API_KEY unless
// the file names its own "default".
func (s Settings) Topology() ([]Instance, []Schedule, error) {
	return s.topology(os.Getenv)
}

func (s Settings) topology(getenv func(string) string) ([]Instance, []Schedule, error) {
	def := Instance{Name: "default", BaseURL: s.WahaBaseURL, APIKey: s.WahaAPIKey}
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
	return f.Instances, f.Schedules, nil
}

// ParseFile parses and checks an instances file. getenv resolves
// api_key_env.
func ParseFile(raw []byte, getenv func(string) string) (*File, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("not a valid instances file: %w", err)
	}
	names := map[string]bool{}
	for i := range f.Instances {
		in := &f.Instances[i]
		if err := tasks.ValidateInstanceName(in.Name); err != nil {
			return nil, fmt.Errorf("instances[%d]: %w", i, err)
		}
		if names[in.Name] {
			return nil, fmt.Errorf("instances[%d]: name %q is used twice", i, in.Name)
		}
		names[in.Name] = true
		if in.BaseURL == "" {
			return nil, fmt.Errorf("instance %q: base_url is required", in.Name)
		}
		if in.Concurrency < 0 || in.Rate < 0 {
			return nil, fmt.Errorf("instance %q: concurrency and rate must not be negative", in.Name)
		}
		if in.APIKeyEnv != "" {
			in.APIKey = getenv(in.APIKeyEnv)
		}
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
