package deploy

import (
	"bufio"
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

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
