package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"
	"github.com/stretchr/testify/require"
	"github.com/wahaq/wahaq/internal/metrics"
	"gopkg.in/yaml.v3"
)

// metricLabels are the metrics wahaq exports, with their labels, and
// histograms the ones among them exposed only as <name>_bucket, <name>_sum and
// <name>_count. Alerts and the dashboard may use only these (and `up`). They
// are read from the code (metrics.New and the queue collector), so a renamed
// metric or label fails here rather than in an operator's Grafana.
var metricLabels, histograms = exportedMetrics()

// exportedMetrics gathers metrics.New from a fresh registry (each vec touched
// once, or it would not show) and describes the queue collector, which reads
// Redis only at scrape time.
func exportedMetrics() (map[string][]string, map[string]bool) {
	reg := prometheus.NewPedanticRegistry()
	m := metrics.New(reg)
	// Touching with the wrong number of labels panics: the arity is checked.
	m.Tasks.WithLabelValues("i", "o").Inc()
	m.Responses.WithLabelValues("i", "201").Inc()
	m.LogoutDuration.WithLabelValues("i").Observe(1)
	m.Retries.WithLabelValues("i").Inc()
	m.LimiterWaits.WithLabelValues("i", "cap").Inc()
	m.Enqueued.WithLabelValues("i").Inc()
	m.CircuitState.WithLabelValues("i").Set(0)
	m.Reconciled.WithLabelValues("i", "gone").Inc()
	m.Events.WithLabelValues("i", "recorded").Inc()
	m.AuthRefused.WithLabelValues("api", "invalid").Inc()
	m.FastPath.WithLabelValues("on").Set(1)
	m.Callbacks.WithLabelValues("i", "delivered").Inc()
	families, err := reg.Gather()
	if err != nil {
		panic(err)
	}
	labels := map[string][]string{}
	hist := map[string]bool{}
	for _, f := range families {
		var names []string
		for _, lp := range f.GetMetric()[0].GetLabel() {
			names = append(names, lp.GetName())
		}
		labels[f.GetName()] = names
		if f.GetType() == dto.MetricType_HISTOGRAM {
			hist[f.GetName()] = true
		}
	}

	descs := make(chan *prometheus.Desc, 16)
	metrics.NewQueueCollector(nil, nil, nil, zerolog.Nop()).Describe(descs)
	metrics.NewConfirmCollector(nil, zerolog.Nop()).Describe(descs)
	close(descs)
	for d := range descs {
		sm := descString.FindStringSubmatch(d.String())
		if sm == nil {
			panic("cannot read the metric description " + d.String())
		}
		labels[sm[1]] = strings.Split(sm[2], ",")
	}
	return labels, hist
}

// descString reads name and variable labels from prometheus.Desc.String.
var descString = regexp.MustCompile(`^Desc\{fqName: "([^"]+)", .*variableLabels: \{([^}]*)\}\}$`)

// uncharted are exported metrics the dashboard does not chart, and why.
var uncharted = map[string]string{
	"wahaq_queue_scrape_errors": "a health flag of the scrape itself, not of the queue",
	"wahaq_reconciled_total":    "repairs are rare and each is logged with its task id; alert on it rather than chart it",
	// WAHA's events (README "Confirmation from WAHA's events") are off
	// unless an instance names webhook_hmac_key_env
	"wahaq_waha_events_total":         "only with WAHA's events configured; the receiver's traffic, not the logouts' health",
	"wahaq_logouts_confirmed_total":   "only with WAHA's events configured; compare with wahaq_tasks_total by hand",
	"wahaq_logouts_unconfirmed_total": "only with WAHA's events configured; a rise means WAHA's webhooks do not arrive",
	"wahaq_auth_refused_total":        "wrong tokens are alerted on (WahaqTokenGuessing) and each is logged with its address",
	"wahaq_fast_path_enabled":         "a worker's mode, set at its start (or once on an asynq it does not know) and logged then; not a figure that moves",
}

// The derivation must find what operators' alerts rely on; an empty or
// half-read list would make the guards below pass vacuously.
func TestExportedMetricsAreRead(t *testing.T) {
	t.Parallel()
	require.Equal(t, []string{"instance", "outcome"}, metricLabels["wahaq_tasks_total"])
	require.Equal(t, []string{"instance", "state"}, metricLabels["wahaq_queue_tasks"])
	require.Equal(t, map[string]bool{"wahaq_logout_duration_seconds": true}, histograms)
	require.Len(t, metricLabels, 19)
	require.Equal(t, []string{"instance", "result"}, metricLabels["wahaq_callback_deliveries_total"])
	require.Equal(t, []string{"instance"}, metricLabels["wahaq_callback_backlog"])
	for name := range uncharted {
		require.Contains(t, metricLabels, name, "uncharted lists only exported metrics")
	}
}

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
			require.True(t, strings.HasSuffix(r.Annotations["runbook_url"], "README.md#dead-letter-queue") ||
				strings.HasSuffix(r.Annotations["runbook_url"], "docs/security.md#wrong-tokens") ||
				strings.HasSuffix(r.Annotations["runbook_url"], "docs/callbacks.md#watching-deliveries"), r.Annotations["runbook_url"])
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
		{"WahaqTokenGuessing", "warning", "", []string{`wahaq_auth_refused_total{reason="limited"}`, "sum by (surface)", "> 0"}},
		{"WahaqCallbacksFailing", "warning", "", []string{`wahaq_callback_deliveries_total{result="failed"}`, "sum by (instance)", "> 0"}},
		{"WahaqCallbackBacklogGrowing", "warning", "30m", []string{"delta(wahaq_callback_backlog[30m])", "max by (instance)"}},
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
	var charted []string
	for name := range metricLabels {
		if _, ok := uncharted[name]; !ok {
			charted = append(charted, name)
		}
	}
	require.ElementsMatch(t, charted, mapKeys(usedByDashboard),
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
