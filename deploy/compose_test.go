package deploy

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/stretchr/testify/require"
)

// composeEnv stands in for the operator's shell: sentinel values that let the
// tests tell "came from the environment" from "written in the file".
func composeEnv() map[string]string {
	return map[string]string{
		"WAHA_API_KEY":     "sentinel-waha-key-3f9a",
		"WAHAQ_API_TOKENS": "sentinel-token-a,sentinel-token-b",
		"WAHA_BASE_URL":    "https://waha.example.test",
	}
}

func composeDetails(t *testing.T, env map[string]string) types.ConfigDetails {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)
	file := filepath.Join(root, "docker-compose.yml")
	content, err := os.ReadFile(file)
	require.NoError(t, err)
	return types.ConfigDetails{
		WorkingDir:  root,
		ConfigFiles: []types.ConfigFile{{Filename: file, Content: content}},
		Environment: types.Mapping(env),
	}
}

func loadCompose(t *testing.T, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	return loader.LoadWithContext(context.Background(), composeDetails(t, env), loader.WithProfiles(profiles))
}

func mustLoadCompose(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	p, err := loadCompose(t, env, profiles...)
	require.NoError(t, err)
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, ok := p.Services[name]
	require.Truef(t, ok, "service %q is not enabled (enabled: %v)", name, p.ServiceNames())
	return s
}

// flagValue returns the argument after flag in args.
func flagValue(t *testing.T, args []string, flag string) string {
	t.Helper()
	i := slices.Index(args, flag)
	require.Truef(t, i >= 0 && i+1 < len(args), "%q not followed by a value in %q", flag, args)
	return args[i+1]
}

func envValue(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	require.Truef(t, ok && v != nil, "service %s: environment %s not set", s.Name, key)
	return *v
}

func shutdownGrace(t *testing.T, value string, set bool) time.Duration {
	t.Helper()
	if !set {
		return defaultShutdownGrace
	}
	d, err := time.ParseDuration(value)
	require.NoError(t, err, "WAHAQ_SHUTDOWN_GRACE=%q", value)
	return d
}

func TestComposeProfiles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		profiles     []string
		wantEnabled  []string
		wantDisabled []string
	}{
		{nil, []string{"api", "redis", "worker"}, []string{"fakewaha", "prometheus"}},
		{[]string{"dev"}, []string{"api", "fakewaha", "redis", "worker"}, []string{"prometheus"}},
		{[]string{"monitoring"}, []string{"api", "prometheus", "redis", "worker"}, []string{"fakewaha"}},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprintf("profiles=%v", tc.profiles), func(t *testing.T) {
			t.Parallel()
			p := mustLoadCompose(t, composeEnv(), tc.profiles...)
			require.Equal(t, "wahaq", p.Name)
			require.ElementsMatch(t, tc.wantEnabled, p.ServiceNames())
			require.ElementsMatch(t, tc.wantDisabled, p.DisabledServiceNames())
		})
	}
}

func TestComposeRedis(t *testing.T) {
	t.Parallel()
	p := mustLoadCompose(t, composeEnv())
	redis := service(t, p, "redis")

	require.Equal(t, "redis:7-alpine", redis.Image)
	require.Equal(t, "yes", flagValue(t, redis.Command, "--appendonly"))
	require.Equal(t, "everysec", flagValue(t, redis.Command, "--appendfsync"))

	// AOF is only durable on a named volume mounted at /data.
	i := slices.IndexFunc(redis.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/data" })
	require.GreaterOrEqual(t, i, 0, "redis has no volume at /data")
	vol := redis.Volumes[i]
	require.Equal(t, types.VolumeTypeVolume, vol.Type)
	require.Contains(t, p.Volumes, vol.Source, "named volume %q not declared", vol.Source)

	require.NotNil(t, redis.HealthCheck)
	require.Equal(t, types.HealthCheckTest{"CMD", "redis-cli", "ping"}, redis.HealthCheck.Test)

	// Redis runs without a password: it may only be published on loopback.
	for _, port := range redis.Ports {
		require.Equal(t, "127.0.0.1", port.HostIP, "redis port %d published beyond loopback", port.Target)
	}
}

func TestComposeWahaqServices(t *testing.T) {
	t.Parallel()
	env := composeEnv()
	p := mustLoadCompose(t, env)
	worker, api := service(t, p, "worker"), service(t, p, "api")
	root, err := filepath.Abs(repoRoot)
	require.NoError(t, err)

	t.Run("worker", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, types.ShellCommand{"worker", "--metrics-addr", ":9090"}, worker.Command)
		require.NotNil(t, worker.Deploy)
		require.NotNil(t, worker.Deploy.Replicas)
		require.Equal(t, 2, *worker.Deploy.Replicas)
		require.NotNil(t, worker.Build)
		require.Equal(t, root, worker.Build.Context)
		require.Equal(t, "redis://redis:6379/0", envValue(t, worker, "REDIS_URL"))

		require.NotNil(t, worker.StopGracePeriod)
		stop := time.Duration(*worker.StopGracePeriod)
		require.GreaterOrEqual(t, stop, 35*time.Second)
		v, set := worker.Environment["WAHAQ_SHUTDOWN_GRACE"]
		grace := shutdownGrace(t, deref(v), set && v != nil)
		require.GreaterOrEqualf(t, stop, grace+10*time.Second,
			"stop_grace_period %s leaves no margin over WAHAQ_SHUTDOWN_GRACE %s", stop, grace)
	})

	t.Run("api", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, types.ShellCommand{"serve", "--addr", ":8080"}, api.Command)
		i := slices.IndexFunc(api.Ports, func(p types.ServicePortConfig) bool { return p.Target == 8080 })
		require.GreaterOrEqual(t, i, 0, "api does not publish 8080")
		require.Equal(t, "8080", api.Ports[i].Published)
		require.Equal(t, env["WAHAQ_API_TOKENS"], envValue(t, api, "WAHAQ_API_TOKENS"))
	})

	for _, s := range []types.ServiceConfig{worker, api} {
		t.Run(s.Name+"/common", func(t *testing.T) {
			t.Parallel()
			require.Equal(t, worker.Image, s.Image, "worker and api must run the image compose builds once")
			require.Equal(t, env["WAHA_API_KEY"], envValue(t, s, "WAHA_API_KEY"))
			require.Equal(t, env["WAHA_BASE_URL"], envValue(t, s, "WAHA_BASE_URL"))
			dep, ok := s.DependsOn["redis"]
			require.True(t, ok, "%s does not depend on redis", s.Name)
			require.Equal(t, types.ServiceConditionHealthy, dep.Condition)
			// distroless: no shell, so no in-container healthcheck (see compose file).
			require.Nil(t, s.HealthCheck)
			require.True(t, s.ReadOnly, "%s root filesystem should be read-only", s.Name)
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func TestComposeDevProfile(t *testing.T) {
	t.Parallel()
	env := composeEnv()
	delete(env, "WAHA_BASE_URL") // dev: the workers default to the fake
	p := mustLoadCompose(t, env, "dev")

	fake := service(t, p, "fakewaha")
	require.Equal(t, []string{"dev"}, fake.Profiles)
	require.Equal(t, types.ShellCommand{"/fakewaha"}, fake.Entrypoint)
	require.Equal(t, types.ShellCommand{"--addr", "0.0.0.0:3000", "--sessions", "50"}, fake.Command)
	require.Equal(t, "0.0.0.0:3000", flagValue(t, fake.Command, "--addr"))
	// The fake must accept the key the workers send (its --api-key defaults to $WAHA_API_KEY).
	require.Equal(t, env["WAHA_API_KEY"], envValue(t, fake, "WAHA_API_KEY"))
	require.Equal(t, "http://fakewaha:3000", envValue(t, service(t, p, "worker"), "WAHA_BASE_URL"))
}

func TestComposeMonitoringProfileMountsPrometheusConfig(t *testing.T) {
	t.Parallel()
	p := mustLoadCompose(t, composeEnv(), "monitoring")
	prom := service(t, p, "prometheus")
	i := slices.IndexFunc(prom.Volumes, func(v types.ServiceVolumeConfig) bool { return v.Target == "/etc/prometheus" })
	require.GreaterOrEqual(t, i, 0)
	for _, f := range []string{"prometheus.yml", "alerts.yml"} {
		_, err := os.Stat(filepath.Join(prom.Volumes[i].Source, f))
		require.NoError(t, err, "mounted config dir lacks %s", f)
	}
}

func TestComposeRequiresSecretsFromEnvironment(t *testing.T) {
	t.Parallel()
	for _, missing := range []string{"WAHA_API_KEY", "WAHAQ_API_TOKENS"} {
		t.Run(missing, func(t *testing.T) {
			t.Parallel()
			env := composeEnv()
			delete(env, missing)
			_, err := loadCompose(t, env)
			require.Error(t, err)
			require.Contains(t, err.Error(), missing)
		})
	}
}

// varRef is a bare interpolation: ${NAME}, ${NAME:?msg} or ${NAME?msg}, but
// not ${NAME:-default}, which would hard-code a fallback secret.
var varRef = regexp.MustCompile(`^\$\{[A-Z_][A-Z0-9_]*(:?\?[^}]*)?\}$`)

func TestComposeHasNoHardcodedSecrets(t *testing.T) {
	t.Parallel()
	model, err := loader.LoadModelWithContext(context.Background(), composeDetails(t, map[string]string{}),
		func(o *loader.Options) { o.SkipInterpolation = true })
	require.NoError(t, err)

	services, ok := model["services"].(map[string]any)
	require.True(t, ok)
	checked := 0
	for name, raw := range services {
		svc, ok := raw.(map[string]any)
		require.True(t, ok)
		if envs, ok := svc["environment"].(map[string]any); ok {
			for k, v := range envs {
				if !secretName.MatchString(k) {
					continue
				}
				checked++
				require.Regexpf(t, varRef, fmt.Sprint(v), "%s: environment %s must reference a variable", name, k)
			}
		}
		cmd, _ := svc["command"].([]any)
		for i := 0; i+1 < len(cmd); i++ {
			if flag := fmt.Sprint(cmd[i]); strings.HasPrefix(flag, "-") && secretName.MatchString(flag) {
				checked++
				require.Regexpf(t, varRef, fmt.Sprint(cmd[i+1]), "%s: %s must reference a variable", name, flag)
			}
		}
	}
	// worker, api and fakewaha (WAHA_API_KEY), api (WAHAQ_API_TOKENS)
	require.GreaterOrEqual(t, checked, 4, "too few credentials found: is the check still looking at the right keys?")
}
