// The deploy tests check the files operators copy (compose, Dockerfile,
// Kubernetes manifests, alerts and dashboard) against what wahaq really does;
// one file per subject, shared helpers here.
package deploy

import (
	"os"
	"path/filepath"
	"regexp"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// repoRoot is the module root: this package lives in <root>/deploy.
const repoRoot = ".."

// defaultShutdownGrace is WAHAQ_SHUTDOWN_GRACE's documented default (docs/cli.md).
const defaultShutdownGrace = 30 * time.Second

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
