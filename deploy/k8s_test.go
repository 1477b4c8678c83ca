package deploy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

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
				// More than one replica: the console's session key must be the
				// same in every pod, so it comes from the one Secret, and a
				// missing key stops the pod instead of falling back to a
				// random key per replica.
				require.Greater(t, *d.Spec.Replicas, int32(1))
				e, ok = findEnv(c, "WAHAQ_CONSOLE_KEY")
				require.True(t, ok, "replicas would each sign console sessions with a random key")
				require.NotNil(t, e.ValueFrom)
				require.NotNil(t, e.ValueFrom.SecretKeyRef)
				require.Equal(t, "wahaq-secrets", e.ValueFrom.SecretKeyRef.Name)
				require.Equal(t, "WAHAQ_CONSOLE_KEY", e.ValueFrom.SecretKeyRef.Key)
				require.Falsef(t, e.ValueFrom.SecretKeyRef.Optional != nil && *e.ValueFrom.SecretKeyRef.Optional,
					"an optional key would let a replica start with a random one")
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
	require.ElementsMatch(t, []string{"WAHA_API_KEY", "WAHAQ_API_TOKENS", "WAHAQ_CONSOLE_KEY"}, mapKeys(s.StringData))
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
