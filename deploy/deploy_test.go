package deploy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// repoRoot is the module root: this package lives in <root>/deploy.
const repoRoot = ".."

// defaultShutdownGrace is WAHAQ_SHUTDOWN_GRACE's default (PRODUCT.md).
const defaultShutdownGrace = 30 * time.Second

// metricLabels are the metrics wahaq exports, FIXED by the worker team, with
// their labels. Alerts and the dashboard may use only these (and `up`).
var metricLabels = map[string][]string{
	"wahaq_tasks_total":             {"instance", "outcome"},
	"wahaq_waha_responses_total":    {"instance", "code"},
	"wahaq_logout_duration_seconds": {"instance"}, // histogram
	"wahaq_retries_total":           {"instance"},
	"wahaq_limiter_waits_total":     {"instance", "reason"},
	"wahaq_queue_tasks":             {"instance", "state"},
	"wahaq_dead_letters":            {"instance"},
	"wahaq_oldest_pending_seconds":  {"instance"},
	"wahaq_enqueued_total":          {"instance"},
}

// targetLabels are attached by Prometheus to every scraped series.
var targetLabels = []string{"job", "instance"}

// secretName matches setting names that hold credentials.
var secretName = regexp.MustCompile(`(?i)(key|token|secret|password)`)

func readFile(t *testing.T, rel string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, filepath.FromSlash(rel)))
	require.NoError(t, err)
	return b
}

// ---------------------------------------------------------------- compose --

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

// ------------------------------------------------------------- Dockerfile --

type dockerInstr struct{ cmd, args string }

func parseDockerfile(t *testing.T) []dockerInstr {
	t.Helper()
	var out []dockerInstr
	var cur strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "Dockerfile")))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if cur.Len() == 0 && (line == "" || strings.HasPrefix(line, "#")) {
			continue
		}
		if strings.HasSuffix(line, `\`) {
			cur.WriteString(strings.TrimSuffix(line, `\`) + " ")
			continue
		}
		cur.WriteString(line)
		cmd, args, _ := strings.Cut(cur.String(), " ")
		out = append(out, dockerInstr{strings.ToUpper(cmd), strings.TrimSpace(args)})
		cur.Reset()
	}
	require.NoError(t, sc.Err())
	return out
}

func TestDockerfile(t *testing.T) {
	t.Parallel()
	instrs := parseDockerfile(t)
	var froms, runs []string
	last := map[string]string{}
	for _, in := range instrs {
		switch in.cmd {
		case "FROM":
			froms = append(froms, in.args)
		case "RUN":
			runs = append(runs, in.args)
		}
		last[in.cmd] = in.args
	}
	require.Len(t, froms, 2, "multi-stage: builder + runtime")
	require.Contains(t, froms[0], "golang:1.26-bookworm")
	require.Equal(t, "gcr.io/distroless/static-debian12:nonroot", froms[1])

	build := strings.Join(runs, "\n")
	for _, want := range []string{"CGO_ENABLED=0", "-trimpath", "-ldflags='-s -w'", "./cmd/wahaq", "./cmd/fakewaha"} {
		require.Contains(t, build, want)
	}
	require.Equal(t, `["/wahaq"]`, last["ENTRYPOINT"])
	require.ElementsMatch(t, []string{"8080", "9090"}, strings.Fields(last["EXPOSE"]))
	require.Equal(t, "65532:65532", last["USER"])

	// Every binary compose or Kubernetes starts is copied into the image.
	copied := map[string]bool{}
	for _, in := range instrs {
		if in.cmd == "COPY" && strings.HasPrefix(in.args, "--from=") {
			f := strings.Fields(in.args)
			copied[f[len(f)-1]] = true
		}
	}
	require.True(t, copied["/wahaq"])
	require.True(t, copied["/fakewaha"])
}

func TestDockerignore(t *testing.T) {
	t.Parallel()
	var patterns []string
	for _, l := range strings.Split(string(readFile(t, ".dockerignore")), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			patterns = append(patterns, l)
		}
	}
	for _, want := range []string{".git", ".env"} {
		require.Contains(t, patterns, want)
	}
	// The builder needs these: ignoring them would break `docker build`.
	for _, needed := range []string{"go.mod", "go.sum", "cmd", "cmd/wahaq", "internal", "worker", "tasks", "wahaclient"} {
		for _, p := range patterns {
			ok, err := filepath.Match(strings.TrimPrefix(p, "/"), needed)
			require.NoError(t, err)
			require.Falsef(t, ok, ".dockerignore pattern %q excludes %s", p, needed)
		}
	}
}

// ------------------------------------------------------------- Kubernetes --

const k8sDir = "deploy/k8s"

// decodeStrict decodes one YAML document into a typed API object, rejecting
// unknown fields, the way `kubectl apply --validate=strict` would.
func decodeStrict(doc any, into any) error {
	j, err := json.Marshal(doc)
	if err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(j))
	dec.DisallowUnknownFields()
	if err := dec.Decode(into); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

func newTyped(apiVersion, kind string) (any, bool) {
	switch apiVersion + "/" + kind {
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}, true
	case "v1/Service":
		return &corev1.Service{}, true
	case "v1/Secret":
		return &corev1.Secret{}, true
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}, true
	case "policy/v1/PodDisruptionBudget":
		return &policyv1.PodDisruptionBudget{}, true
	}
	return nil, false
}

// decodeManifests decodes every document of a multi-document YAML stream.
func decodeManifests(data []byte) ([]any, error) {
	var objs []any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for i := 0; ; i++ {
		var doc map[string]any
		err := dec.Decode(&doc)
		if errors.Is(err, io.EOF) {
			return objs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if doc == nil {
			continue // empty document between two ---
		}
		apiVersion, _ := doc["apiVersion"].(string)
		kind, _ := doc["kind"].(string)
		obj, ok := newTyped(apiVersion, kind)
		if !ok {
			return nil, fmt.Errorf("document %d: unexpected %s %s", i, apiVersion, kind)
		}
		if err := decodeStrict(doc, obj); err != nil {
			return nil, fmt.Errorf("document %d (%s): %w", i, kind, err)
		}
		objs = append(objs, obj)
	}
}

type k8sObjects struct {
	byFile      map[string][]any
	deployments map[string]*appsv1.Deployment
	services    map[string]*corev1.Service
	secrets     map[string]*corev1.Secret
	configMaps  map[string]*corev1.ConfigMap
	pdbs        map[string]*policyv1.PodDisruptionBudget
}

func loadK8s(t *testing.T) k8sObjects {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, k8sDir, "*.yaml"))
	require.NoError(t, err)
	o := k8sObjects{
		byFile:      map[string][]any{},
		deployments: map[string]*appsv1.Deployment{},
		services:    map[string]*corev1.Service{},
		secrets:     map[string]*corev1.Secret{},
		configMaps:  map[string]*corev1.ConfigMap{},
		pdbs:        map[string]*policyv1.PodDisruptionBudget{},
	}
	for _, f := range files {
		base := filepath.Base(f)
		if base == "kustomization.yaml" {
			continue
		}
		data, err := os.ReadFile(f)
		require.NoError(t, err)
		objs, err := decodeManifests(data)
		require.NoError(t, err, base)
		require.NotEmpty(t, objs, base)
		o.byFile[base] = objs
		for _, obj := range objs {
			switch v := obj.(type) {
			case *appsv1.Deployment:
				o.deployments[v.Name] = v
			case *corev1.Service:
				o.services[v.Name] = v
			case *corev1.Secret:
				o.secrets[v.Name] = v
			case *corev1.ConfigMap:
				o.configMaps[v.Name] = v
			case *policyv1.PodDisruptionBudget:
				o.pdbs[v.Name] = v
			}
		}
	}
	return o
}

func objectMeta(obj any) metav1.Object {
	return obj.(metav1.Object)
}

func TestK8sStrictDecoderRejectsMistakes(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"unknown field": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  template:
    spec:
      containers:
        - name: c
          readinessProbes: {httpGet: {path: /readyz, port: 9090}}
`,
		"wrong type": `
apiVersion: v1
kind: Service
metadata: {name: x}
spec: {ports: [{port: "eighty"}]}
`,
		"wrong value type": `
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data: {A: [1]}
`,
		"unknown kind": `
apiVersion: v1
kind: Pod
metadata: {name: x}
`,
	}
	for name, doc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeManifests([]byte(doc))
			require.Error(t, err)
		})
	}
	objs, err := decodeManifests([]byte("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n---\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n"))
	require.NoError(t, err)
	require.Len(t, objs, 2, "multi-document streams with empty documents")
}

func TestK8sManifests(t *testing.T) {
	t.Parallel()
	o := loadK8s(t)
	want := []struct{ file, kind, name string }{
		{"worker-deployment.yaml", "Deployment", "wahaq-worker"},
		{"api-deployment.yaml", "Deployment", "wahaq-api"},
		{"service.yaml", "Service", "wahaq-api"},
		{"service.yaml", "Service", "wahaq-worker-metrics"},
		{"secret.yaml", "Secret", "wahaq-secrets"},
		{"configmap.yaml", "ConfigMap", "wahaq-config"},
		{"pdb.yaml", "PodDisruptionBudget", "wahaq-worker"},
		{"pdb.yaml", "PodDisruptionBudget", "wahaq-api"},
	}
	for _, w := range want {
		found := slices.ContainsFunc(o.byFile[w.file], func(obj any) bool {
			return strings.HasSuffix(fmt.Sprintf("%T", obj), "."+w.kind) && objectMeta(obj).GetName() == w.name
		})
		require.Truef(t, found, "%s: no %s %q", w.file, w.kind, w.name)
	}
	for file, objs := range o.byFile {
		for _, obj := range objs {
			m := objectMeta(obj)
			require.Emptyf(t, m.GetNamespace(), "%s %s: manifests must be namespace-agnostic", file, m.GetName())
			require.Equal(t, "wahaq", m.GetLabels()["app.kubernetes.io/name"], "%s %s", file, m.GetName())
		}
	}
}

func findEnv(c corev1.Container, name string) (corev1.EnvVar, bool) {
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == name })
	if i < 0 {
		return corev1.EnvVar{}, false
	}
	return c.Env[i], true
}

// resolvePort turns a probe/service port (number or container port name) into a number.
func resolvePort(t *testing.T, c corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	if p.Type == intstr.Int {
		return p.IntVal
	}
	i := slices.IndexFunc(c.Ports, func(cp corev1.ContainerPort) bool { return cp.Name == p.StrVal })
	require.GreaterOrEqualf(t, i, 0, "container %s has no port named %q", c.Name, p.StrVal)
	return c.Ports[i].ContainerPort
}

func TestK8sDeployments(t *testing.T) {
	t.Parallel()
	o := loadK8s(t)
	kust := loadKustomization(t)
	tests := []struct {
		name, component string
		args            []string
		port            int32
	}{
		{"wahaq-worker", "worker", []string{"worker", "--metrics-addr", ":9090"}, 9090},
		{"wahaq-api", "api", []string{"serve", "--addr", ":8080"}, 8080},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, ok := o.deployments[tc.name]
			require.True(t, ok)
			require.NotNil(t, d.Spec.Replicas)
			require.EqualValues(t, 2, *d.Spec.Replicas)

			tmpl := d.Spec.Template
			sel, err := metav1.LabelSelectorAsSelector(d.Spec.Selector)
			require.NoError(t, err)
			require.False(t, sel.Empty())
			require.True(t, sel.Matches(labels.Set(tmpl.Labels)), "selector does not match the pod template")
			require.Equal(t, tc.component, tmpl.Labels["app.kubernetes.io/component"])

			pod := tmpl.Spec
			require.NotNil(t, pod.SecurityContext)
			require.NotNil(t, pod.SecurityContext.RunAsNonRoot)
			require.True(t, *pod.SecurityContext.RunAsNonRoot)
			require.NotNil(t, pod.SecurityContext.RunAsUser)
			require.EqualValues(t, 65532, *pod.SecurityContext.RunAsUser, "the image's nonroot uid")

			require.Len(t, pod.Containers, 1)
			c := pod.Containers[0]
			require.Equal(t, tc.args, c.Args)
			require.Empty(t, c.Command, "keep the image ENTRYPOINT /wahaq")
			require.Truef(t, strings.HasPrefix(c.Image, kust.imageNames()[0]+":"), "image %s not managed by kustomization images", c.Image)
			require.True(t, slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == tc.port }))

			for _, probe := range []struct {
				p    *corev1.Probe
				path string
			}{{c.ReadinessProbe, "/readyz"}, {c.LivenessProbe, "/healthz"}} {
				require.NotNil(t, probe.p, probe.path)
				require.NotNil(t, probe.p.HTTPGet, probe.path)
				require.Equal(t, probe.path, probe.p.HTTPGet.Path)
				require.Equal(t, tc.port, resolvePort(t, c, probe.p.HTTPGet.Port), probe.path)
			}

			sc := c.SecurityContext
			require.NotNil(t, sc)
			require.NotNil(t, sc.ReadOnlyRootFilesystem)
			require.True(t, *sc.ReadOnlyRootFilesystem)
			require.NotNil(t, sc.AllowPrivilegeEscalation)
			require.False(t, *sc.AllowPrivilegeEscalation)
			require.NotNil(t, sc.Capabilities)
			require.Contains(t, sc.Capabilities.Drop, corev1.Capability("ALL"))

			req, lim := c.Resources.Requests, c.Resources.Limits
			require.False(t, req.Cpu().IsZero(), "cpu request")
			require.False(t, req.Memory().IsZero(), "memory request")
			require.False(t, lim.Memory().IsZero(), "memory limit")
			require.GreaterOrEqual(t, lim.Memory().Cmp(*req.Memory()), 0, "memory limit below request")

			// Shutdown: SIGKILL must come after preStop + the drain.
			require.NotNil(t, pod.TerminationGracePeriodSeconds)
			term := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			require.Greater(t, term, 30*time.Second)
			e, set := findEnv(c, "WAHAQ_SHUTDOWN_GRACE")
			grace := shutdownGrace(t, e.Value, set)
			var preStop time.Duration
			if c.Lifecycle != nil && c.Lifecycle.PreStop != nil && c.Lifecycle.PreStop.Sleep != nil {
				preStop = time.Duration(c.Lifecycle.PreStop.Sleep.Seconds) * time.Second
			}
			require.GreaterOrEqualf(t, term, preStop+grace+5*time.Second,
				"terminationGracePeriodSeconds %s < preStop %s + WAHAQ_SHUTDOWN_GRACE %s + margin", term, preStop, grace)

			// Credentials come from the Secret, and every key referenced exists.
			e, ok = findEnv(c, "WAHA_API_KEY")
			require.True(t, ok, "WAHA_API_KEY not set")
			require.NotNil(t, e.ValueFrom)
			for _, env := range c.Env {
				if secretName.MatchString(env.Name) {
					require.Emptyf(t, env.Value, "%s is a literal; use a secretKeyRef", env.Name)
				}
				if env.ValueFrom == nil || env.ValueFrom.SecretKeyRef == nil {
					continue
				}
				ref := env.ValueFrom.SecretKeyRef
				s, ok := o.secrets[ref.Name]
				require.Truef(t, ok, "env %s: Secret %q not in deploy/k8s", env.Name, ref.Name)
				_, inStringData := s.StringData[ref.Key]
				_, inData := s.Data[ref.Key]
				require.Truef(t, inStringData || inData, "env %s: Secret %s has no key %q", env.Name, ref.Name, ref.Key)
			}
			require.NotEmpty(t, c.EnvFrom)
			for _, from := range c.EnvFrom {
				require.NotNil(t, from.ConfigMapRef, "envFrom only for the ConfigMap")
				_, ok := o.configMaps[from.ConfigMapRef.Name]
				require.Truef(t, ok, "ConfigMap %q not in deploy/k8s", from.ConfigMapRef.Name)
			}
			if tc.component == "api" {
				e, ok := findEnv(c, "WAHAQ_API_TOKENS")
				require.True(t, ok, "the API refuses to start without WAHAQ_API_TOKENS")
				require.NotNil(t, e.ValueFrom)
				require.NotNil(t, e.ValueFrom.SecretKeyRef)
			}
		})
	}
}

// matchingDeployments returns the deployments whose pods the selector selects.
func matchingDeployments(t *testing.T, o k8sObjects, selector labels.Selector) []string {
	t.Helper()
	var names []string
	for name, d := range o.deployments {
		if selector.Matches(labels.Set(d.Spec.Template.Labels)) {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names
}

func TestK8sPodDisruptionBudgets(t *testing.T) {
	t.Parallel()
	o := loadK8s(t)
	for _, name := range []string{"wahaq-worker", "wahaq-api"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			pdb, ok := o.pdbs[name]
			require.True(t, ok)
			sel, err := metav1.LabelSelectorAsSelector(pdb.Spec.Selector)
			require.NoError(t, err)
			require.Equal(t, []string{name}, matchingDeployments(t, o, sel), "PDB must select exactly its deployment's pods")
			require.NotNil(t, pdb.Spec.MinAvailable)
			require.Equal(t, intstr.FromInt32(1), *pdb.Spec.MinAvailable)
			// minAvailable >= replicas would block every node drain.
			require.Less(t, pdb.Spec.MinAvailable.IntVal, *o.deployments[name].Spec.Replicas)
		})
	}
}

func TestK8sServices(t *testing.T) {
	t.Parallel()
	o := loadK8s(t)
	tests := []struct {
		service, deployment string
		ports               map[string][2]int32 // name -> {service port, container port}
		headless            bool
	}{
		{"wahaq-api", "wahaq-api", map[string][2]int32{"http": {80, 8080}, "metrics": {8080, 8080}}, false},
		{"wahaq-worker-metrics", "wahaq-worker", map[string][2]int32{"metrics": {9090, 9090}}, true},
	}
	for _, tc := range tests {
		t.Run(tc.service, func(t *testing.T) {
			t.Parallel()
			s, ok := o.services[tc.service]
			require.True(t, ok)
			require.Equal(t, corev1.ServiceTypeClusterIP, s.Spec.Type)
			require.Equal(t, tc.headless, s.Spec.ClusterIP == corev1.ClusterIPNone)
			require.NotEmpty(t, s.Spec.Selector)
			require.Equal(t, []string{tc.deployment}, matchingDeployments(t, o, labels.SelectorFromSet(s.Spec.Selector)))

			c := o.deployments[tc.deployment].Spec.Template.Spec.Containers[0]
			require.Len(t, s.Spec.Ports, len(tc.ports))
			for _, p := range s.Spec.Ports {
				want, ok := tc.ports[p.Name]
				require.Truef(t, ok, "unexpected port %q", p.Name)
				require.Equal(t, want[0], p.Port, p.Name)
				require.Equal(t, want[1], resolvePort(t, c, p.TargetPort), p.Name)
			}
		})
	}
}

func TestK8sConfigAndSecret(t *testing.T) {
	t.Parallel()
	o := loadK8s(t)
	cm, ok := o.configMaps["wahaq-config"]
	require.True(t, ok)
	for _, k := range []string{"REDIS_URL", "WAHA_BASE_URL", "LOG_LEVEL", "LOG_FORMAT"} {
		require.NotEmpty(t, cm.Data[k], k)
	}
	for k := range cm.Data {
		require.Falsef(t, secretName.MatchString(k), "%s looks like a credential: put it in the Secret", k)
	}
	for k, v := range cm.Data {
		if strings.HasSuffix(k, "_RETRY_BASE") || strings.HasSuffix(k, "_RETRY_MAX") || strings.HasSuffix(k, "_TTL") {
			_, err := time.ParseDuration(v)
			require.NoError(t, err, k)
		}
	}

	s, ok := o.secrets["wahaq-secrets"]
	require.True(t, ok)
	require.Empty(t, s.Data, "use stringData placeholders, not encoded values")
	require.ElementsMatch(t, []string{"WAHA_API_KEY", "WAHAQ_API_TOKENS"}, mapKeys(s.StringData))
	for k, v := range s.StringData {
		require.Equalf(t, "change-me", v, "%s: only placeholders belong in the repository", k)
	}
}

func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

type kustomization struct {
	APIVersion string   `yaml:"apiVersion"`
	Kind       string   `yaml:"kind"`
	Resources  []string `yaml:"resources"`
	Images     []struct {
		Name    string `yaml:"name"`
		NewName string `yaml:"newName"`
		NewTag  string `yaml:"newTag"`
	} `yaml:"images"`
}

func (k kustomization) imageNames() []string {
	var names []string
	for _, i := range k.Images {
		names = append(names, i.Name)
	}
	return names
}

func loadKustomization(t *testing.T) kustomization {
	t.Helper()
	var k kustomization
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, k8sDir+"/kustomization.yaml")))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&k))
	return k
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	t.Parallel()
	k := loadKustomization(t)
	require.Equal(t, "kustomize.config.k8s.io/v1beta1", k.APIVersion)
	require.Equal(t, "Kustomization", k.Kind)
	require.Len(t, k.Images, 1)

	files, err := filepath.Glob(filepath.Join(repoRoot, k8sDir, "*.y*ml"))
	require.NoError(t, err)
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	require.NotEmpty(t, want)
	require.ElementsMatch(t, want, k.Resources, "kustomization resources vs files in deploy/k8s")
}

// ------------------------------------------------------------- Prometheus --

type ruleFile struct {
	Groups []struct {
		Name     string `yaml:"name"`
		Interval string `yaml:"interval"`
		Rules    []rule `yaml:"rules"`
	} `yaml:"groups"`
}

type rule struct {
	Alert       string            `yaml:"alert"`
	Record      string            `yaml:"record"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for"`
	Labels      map[string]string `yaml:"labels"`
	Annotations map[string]string `yaml:"annotations"`
}

func loadAlertRules(t *testing.T) []rule {
	t.Helper()
	var f ruleFile
	dec := yaml.NewDecoder(bytes.NewReader(readFile(t, "deploy/prometheus/alerts.yml")))
	dec.KnownFields(true) // Prometheus rejects unknown fields too
	require.NoError(t, dec.Decode(&f))
	require.NotEmpty(t, f.Groups)
	var rules []rule
	for _, g := range f.Groups {
		require.NotEmpty(t, g.Name)
		rules = append(rules, g.Rules...)
	}
	return rules
}

// promTemplate parses an annotation the way Prometheus does: with $labels and
// $value defined, and its template functions available.
func promTemplate(text string) (*template.Template, error) {
	const prelude = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$value := .Value}}"
	stub := func(v any) string { return fmt.Sprint(v) }
	return template.New("annotation").Option("missingkey=zero").Funcs(template.FuncMap{
		"humanize": stub, "humanize1024": stub, "humanizeDuration": stub,
		"humanizePercentage": stub, "humanizeTimestamp": stub, "title": strings.ToTitle,
		"toUpper": strings.ToUpper, "toLower": strings.ToLower, "reReplaceAll": func(a, b, c string) string { return c },
	}).Parse(prelude + text)
}

func TestAlertRules(t *testing.T) {
	t.Parallel()
	rules := loadAlertRules(t)
	byName := map[string]rule{}
	for _, r := range rules {
		require.NotEmpty(t, r.Alert, "only alerting rules expected (expr %q)", r.Expr)
		_, dup := byName[r.Alert]
		require.False(t, dup, "duplicate alert %s", r.Alert)
		byName[r.Alert] = r
	}

	for _, r := range rules {
		t.Run(r.Alert+"/shape", func(t *testing.T) {
			t.Parallel()
			require.NotEmpty(t, strings.TrimSpace(r.Expr))
			require.NoError(t, balanced(r.Expr))
			require.Contains(t, []string{"critical", "warning", "info"}, r.Labels["severity"])
			for _, a := range []string{"summary", "description", "runbook_url"} {
				require.NotEmpty(t, r.Annotations[a], a)
			}
			require.True(t, strings.HasSuffix(r.Annotations["runbook_url"], "README.md#dead-letter-queue"))
			if r.For != "" {
				_, err := model.ParseDuration(r.For)
				require.NoError(t, err)
			}
			for name, text := range r.Annotations {
				tmpl, err := promTemplate(text)
				require.NoError(t, err, name)
				data := map[string]any{"Labels": map[string]string{"instance": "default"}, "ExternalLabels": map[string]string{}, "Value": 0.5}
				require.NoError(t, tmpl.Execute(io.Discard, data), name)
			}
		})
	}

	want := []struct {
		alert, severity, forDur string
		exprHas                 []string
	}{
		{"WahaqDeadLettersGrowing", "warning", "", []string{"wahaq_dead_letters[15m]", "> 0"}},
		{"WahaqQueueBacklogOld", "warning", "10m", []string{"wahaq_oldest_pending_seconds", "> 600"}},
		{"WahaqWahaErrorRate", "warning", "10m", []string{`wahaq_waha_responses_total{code=~"5..|error|429"}`, "sum by (instance)", "> 0.2"}},
		{"WahaqWorkerDown", "critical", "", []string{`up{job="wahaq-worker"} == 0`}},
	}
	for _, w := range want {
		t.Run(w.alert, func(t *testing.T) {
			t.Parallel()
			r, ok := byName[w.alert]
			require.True(t, ok, "missing alert")
			require.Equal(t, w.severity, r.Labels["severity"])
			if w.forDur != "" {
				require.Equal(t, w.forDur, r.For)
			}
			for _, s := range w.exprHas {
				require.Contains(t, r.Expr, s)
			}
		})
	}
}

func balanced(expr string) error {
	depth := 0
	inStr := false
	for _, r := range expr {
		switch {
		case r == '"':
			inStr = !inStr
		case inStr:
		case r == '(' || r == '{' || r == '[':
			depth++
		case r == ')' || r == '}' || r == ']':
			depth--
			if depth < 0 {
				return fmt.Errorf("unbalanced %q", expr)
			}
		}
	}
	if depth != 0 || inStr {
		return fmt.Errorf("unbalanced %q", expr)
	}
	return nil
}

type promConfig struct {
	RuleFiles     []string `yaml:"rule_files"`
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
		MetricRelabelConfigs []map[string]any `yaml:"metric_relabel_configs"`
	} `yaml:"scrape_configs"`
}

func TestPrometheusConfig(t *testing.T) {
	t.Parallel()
	var cfg promConfig
	require.NoError(t, yaml.Unmarshal(readFile(t, "deploy/prometheus/prometheus.yml"), &cfg))

	for _, f := range cfg.RuleFiles {
		_, err := os.Stat(filepath.Join(repoRoot, "deploy/prometheus", f))
		require.NoError(t, err, "rule file %s", f)
	}
	require.Contains(t, cfg.RuleFiles, "alerts.yml")

	ports := map[string][]string{}
	for _, sc := range cfg.ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			for _, tgt := range s.Targets {
				_, port, _ := strings.Cut(tgt, ":")
				ports[sc.JobName] = append(ports[sc.JobName], port)
			}
		}
		for _, d := range sc.DNSSDConfigs {
			ports[sc.JobName] = append(ports[sc.JobName], fmt.Sprint(d.Port))
		}
		// wahaq's `instance` label clashes with the target label: every job
		// must restore it (see the comment in prometheus.yml).
		require.NotEmptyf(t, sc.MetricRelabelConfigs, "job %s", sc.JobName)
	}
	require.Equal(t, []string{"9090"}, ports["wahaq-worker"])
	require.Equal(t, []string{"8080"}, ports["wahaq-api"])

	// Jobs named by alerts exist in the scrape config.
	jobRef := regexp.MustCompile(`job="([^"]+)"`)
	for _, r := range loadAlertRules(t) {
		for _, m := range jobRef.FindAllStringSubmatch(r.Expr, -1) {
			require.Containsf(t, ports, m[1], "alert %s uses job %q that is not scraped", r.Alert, m[1])
		}
	}
}

// ---------------------------------------------------------------- Grafana --

type dashboard struct {
	Title         string  `json:"title"`
	UID           string  `json:"uid"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []panel `json:"panels"`
	Templating    struct {
		List []struct {
			Name  string `json:"name"`
			Type  string `json:"type"`
			Query any    `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type datasourceRef struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

type panel struct {
	ID         int            `json:"id"`
	Type       string         `json:"type"`
	Title      string         `json:"title"`
	Datasource *datasourceRef `json:"datasource"`
	GridPos    struct{ H, W, X, Y int }
	Targets    []struct {
		RefID        string         `json:"refId"`
		Expr         string         `json:"expr"`
		LegendFormat string         `json:"legendFormat"`
		Datasource   *datasourceRef `json:"datasource"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	var d dashboard
	require.NoError(t, json.Unmarshal(readFile(t, "deploy/grafana/wahaq-dashboard.json"), &d))
	return d
}

func TestGrafanaDashboard(t *testing.T) {
	t.Parallel()
	d := loadDashboard(t)
	require.Equal(t, 39, d.SchemaVersion)
	require.NotEmpty(t, d.UID)

	i := slices.IndexFunc(d.Templating.List, func(v struct {
		Name  string `json:"name"`
		Type  string `json:"type"`
		Query any    `json:"query"`
	}) bool {
		return v.Name == "DS_PROMETHEUS"
	})
	require.GreaterOrEqual(t, i, 0, "no DS_PROMETHEUS variable")
	require.Equal(t, "datasource", d.Templating.List[i].Type)
	require.Equal(t, "prometheus", d.Templating.List[i].Query)

	ids := map[int]bool{}
	type cell struct{ x, y int }
	used := map[cell]string{}
	var queries int
	for _, p := range d.Panels {
		require.Falsef(t, ids[p.ID], "duplicate panel id %d", p.ID)
		ids[p.ID] = true
		g := p.GridPos
		require.Truef(t, g.W > 0 && g.H > 0 && g.X >= 0 && g.X+g.W <= 24, "panel %q gridPos %+v", p.Title, g)
		for x := g.X; x < g.X+g.W; x++ {
			for y := g.Y; y < g.Y+g.H; y++ {
				other, taken := used[cell{x, y}]
				require.Falsef(t, taken, "panels %q and %q overlap", p.Title, other)
				used[cell{x, y}] = p.Title
			}
		}
		if p.Type == "row" {
			continue
		}
		require.NotNil(t, p.Datasource, p.Title)
		require.Equal(t, datasourceRef{"prometheus", "${DS_PROMETHEUS}"}, *p.Datasource, p.Title)
		require.NotEmpty(t, p.Targets, p.Title)
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			queries++
			require.NotEmptyf(t, strings.TrimSpace(tg.Expr), "panel %q target %s has no expr", p.Title, tg.RefID)
			require.NoError(t, balanced(tg.Expr))
			require.NotEmpty(t, tg.RefID)
			require.Falsef(t, refs[tg.RefID], "panel %q: duplicate refId %s", p.Title, tg.RefID)
			refs[tg.RefID] = true
			if tg.Datasource != nil {
				require.Equal(t, "${DS_PROMETHEUS}", tg.Datasource.UID)
			}
		}
	}
	require.Greater(t, queries, 0)

	panelByTitle := map[string]panel{}
	for _, p := range d.Panels {
		panelByTitle[p.Title] = p
	}
	want := []struct {
		title   string
		exprHas []string
	}{
		{"Tasks by outcome", []string{"sum by (outcome) (rate(wahaq_tasks_total"}},
		{"WAHA responses by code", []string{"sum by (code)", "wahaq_waha_responses_total"}},
		{"Logout duration", []string{"histogram_quantile(0.50,", "histogram_quantile(0.95,", "histogram_quantile(0.99,", "wahaq_logout_duration_seconds_bucket", "by (le)"}},
		{"Retries", []string{"rate(wahaq_retries_total"}},
		{"Limiter waits", []string{"rate(wahaq_limiter_waits_total", "reason"}},
		{"Queue depth by state", []string{"wahaq_queue_tasks", "by (state)"}},
		{"Dead letters by instance", []string{"wahaq_dead_letters"}},
		{"Oldest pending age", []string{"wahaq_oldest_pending_seconds"}},
	}
	for _, w := range want {
		p, ok := panelByTitle[w.title]
		require.Truef(t, ok, "missing panel %q", w.title)
		var all []string
		for _, tg := range p.Targets {
			all = append(all, tg.Expr)
		}
		joined := strings.Join(all, "\n")
		for _, s := range w.exprHas {
			require.Containsf(t, joined, s, "panel %q", w.title)
		}
	}
}

// ------------------------------------------------------ metric-name guard --

var (
	metricToken  = regexp.MustCompile(`\bwahaq_[a-z_]+`)
	selectorExpr = regexp.MustCompile(`\b([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	matcher      = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)\s*"`)
	grouping     = regexp.MustCompile(`\b(?:by|without)\s*\(([^)]*)\)`)
	legendLabel  = regexp.MustCompile(`\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}`)
)

// histograms are exposed only as <name>_bucket, <name>_sum and <name>_count.
var histograms = map[string]bool{"wahaq_logout_duration_seconds": true}

// baseMetric maps a series name to the metric it belongs to: it strips the
// histogram suffixes, and only from histograms. ok is false for a name wahaq
// does not export (a typo, a suffix on a non-histogram, a bare histogram name).
func baseMetric(series string) (base string, bucket, ok bool) {
	for _, suf := range []string{"_bucket", "_sum", "_count"} {
		if b, cut := strings.CutSuffix(series, suf); cut && histograms[b] {
			return b, suf == "_bucket", true
		}
	}
	_, known := metricLabels[series]
	return series, false, known && !histograms[series]
}

type query struct {
	where, expr, legend string
}

func allQueries(t *testing.T) []query {
	t.Helper()
	var qs []query
	for _, r := range loadAlertRules(t) {
		qs = append(qs, query{where: "alert " + r.Alert, expr: r.Expr})
	}
	for _, p := range loadDashboard(t).Panels {
		for _, tg := range p.Targets {
			qs = append(qs, query{where: fmt.Sprintf("panel %q/%s", p.Title, tg.RefID), expr: tg.Expr, legend: tg.LegendFormat})
		}
	}
	return qs
}

func TestMetricNamesAndLabelsAreKnown(t *testing.T) {
	t.Parallel()
	usedByDashboard := map[string]bool{}
	for _, q := range allQueries(t) {
		// Labels this query may use: those of its metrics, plus target labels.
		allowed := slices.Clone(targetLabels)
		for _, tok := range metricToken.FindAllString(q.expr, -1) {
			base, bucket, ok := baseMetric(tok)
			require.Truef(t, ok, "%s: unknown metric %q", q.where, tok)
			lbls := metricLabels[base]
			allowed = append(allowed, lbls...)
			if bucket {
				allowed = append(allowed, "le")
			}
			if strings.HasPrefix(q.where, "panel") {
				usedByDashboard[base] = true
			}
		}
		for _, m := range selectorExpr.FindAllStringSubmatch(q.expr, -1) {
			name := m[1]
			require.Truef(t, name == "up" || strings.HasPrefix(name, "wahaq_"),
				"%s: metric %q is neither a wahaq metric nor up", q.where, name)
			for _, mm := range matcher.FindAllStringSubmatch(m[2], -1) {
				require.Containsf(t, allowed, mm[1], "%s: label %q is not on %s", q.where, mm[1], name)
			}
		}
		var grouped []string
		for _, g := range grouping.FindAllStringSubmatch(q.expr, -1) {
			for _, l := range strings.Split(g[1], ",") {
				l = strings.TrimSpace(l)
				require.Containsf(t, allowed, l, "%s: grouping by unknown label %q", q.where, l)
				grouped = append(grouped, l)
			}
		}
		for _, l := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			require.Containsf(t, grouped, l[1], "%s: legend uses {{%s}} which the query aggregates away", q.where, l[1])
		}
	}
	require.ElementsMatch(t, mapKeys(metricLabels), mapKeys(usedByDashboard),
		"the dashboard should chart every metric wahaq exports")
}

func TestMetricGuardCatchesTypos(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		expr    string
		unknown bool
	}{
		"plain":           {"rate(wahaq_tasks_total[5m])", false},
		"bucket":          {"rate(wahaq_logout_duration_seconds_bucket[5m])", false},
		"sum suffix":      {"wahaq_logout_duration_seconds_sum", false},
		"typo":            {"rate(wahaq_task_total[5m])", true},
		"wrong suffix":    {"wahaq_dead_letters_total", true},
		"bucket on gauge": {"wahaq_queue_tasks_bucket", true},
		"bare histogram":  {"wahaq_logout_duration_seconds", true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			tok := metricToken.FindString(tc.expr)
			require.NotEmpty(t, tok)
			_, _, ok := baseMetric(tok)
			require.Equal(t, tc.unknown, !ok)
		})
	}
}
