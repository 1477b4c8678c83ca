package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wahaq/wahaq/internal/access"
	"github.com/wahaq/wahaq/internal/audit"
)

// TestCLITokenHash: the token comes on standard input, never as an
// argument, and the hash is the one the tokens file takes.
func TestCLITokenHash(t *testing.T) {
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetIn(strings.NewReader("  my-secret-token \n"))
	require.NoError(t, execute(context.Background(), root, []string{"token", "hash"}))
	require.Equal(t, access.Hash("my-secret-token")+"\n", out.String())
	require.Len(t, strings.TrimSpace(out.String()), 64)

	root = newRoot(&out, &errb)
	root.SetIn(strings.NewReader(""))
	err := execute(context.Background(), root, []string{"token", "hash"})
	require.Equal(t, exitUsage, exitCode(err))
	require.Contains(t, err.Error(), "standard input holds no token")

	root = newRoot(&out, &errb)
	err = execute(context.Background(), root, []string{"token", "hash", "my-secret-token"})
	require.Equal(t, exitUsage, exitCode(err), "the token is refused as an argument")
}

// TestCLIServeRefusesBadTokensFile: serve stops with exit 2 and a sentence
// on a tokens file that does not parse, names an unknown role or repeats a
// hash.
func TestCLIServeRefusesBadTokensFile(t *testing.T) {
	c := newCLI(t)
	h := access.Hash("tok")
	for name, tc := range map[string]struct{ file, want string }{
		"not yaml":      {"tokens: [", "bad tokens file"},
		"unknown role":  {"tokens:\n  - {name: a, sha256: " + h + ", role: superuser}\n", `unknown role "superuser"`},
		"repeated hash": {"tokens:\n  - {name: a, sha256: " + h + ", role: read}\n  - {name: b, sha256: " + h + ", role: admin}\n", "given twice"},
	} {
		t.Run(name, func(t *testing.T) {
			r := c.run("serve", "--addr", "127.0.0.1:0", "--api-tokens-file", writeFile(t, "tokens.yaml", tc.file))
			require.Equal(t, exitUsage, r.code, r.stderr)
			sentence(t, r.stderr, tc.want)
		})
	}
}

// TestCLIAudit: state-changing commands append an entry as cli:<user>, a
// failed one too, and wahaq audit shows them, in its table and as the
// API's JSON.
func TestCLIAudit(t *testing.T) {
	c := newCLI(t)
	const wahaKey = "audit-waha-key-s3cr3t"
	id := strings.TrimSpace(c.ok("enqueue", "--session", "audited", "--in", "1h", "--waha-api-key", wahaKey).stdout)
	c.ok("cancel", id, "--waha-api-key", wahaKey)
	r := c.run("batch", "cancel", "0b6f3c1e-5f0e-4a44-9d55-0d8c3d1f8f20", "--waha-api-key", wahaKey)
	require.Equal(t, exitFailure, r.code)
	c.ok("dlq", "purge", "--all", "--yes", "--api-tokens", "audit-api-token-s3cr3t")
	raw, err := c.rdb.XRange(context.Background(), "wahaq:"+c.ns+":audit", "-", "+").Result()
	require.NoError(t, err)
	require.Len(t, raw, 4)
	require.NotContains(t, fmt.Sprint(raw), wahaKey, "no WAHA key in the audit log")
	require.NotContains(t, fmt.Sprint(raw), "audit-api-token-s3cr3t", "no API token in the audit log")

	out := c.ok("audit", "--json").stdout
	var p audit.Page
	require.NoError(t, json.Unmarshal([]byte(out), &p))
	require.Len(t, p.Entries, 4)
	actor := audit.CLIActor()
	var actions []string
	for _, e := range p.Entries {
		require.Equal(t, actor, e.Actor)
		require.Equal(t, audit.ViaCLI, e.Via)
		actions = append(actions, e.Action+" "+e.Outcome)
	}
	require.Equal(t, []string{"dlq.purge ok", "batch.cancel failed", "task.cancel ok", "logout.enqueue ok"}, actions)
	require.Equal(t, id, p.Entries[2].Target.Task)
	require.Equal(t, map[string]int64{"canceled": 1}, p.Entries[2].Result)
	require.Contains(t, p.Entries[1].Detail, "0b6f3c1e")
	require.EqualValues(t, 4, p.Retention.Entries)

	table := c.ok("audit", "--action", "task.cancel").stdout
	require.Contains(t, table, "audit log: 4 entries, kept 90d and at most 1000000")
	require.Contains(t, table, "task.cancel")
	require.NotContains(t, table, "logout.enqueue")
	r = c.run("audit", "--since", "yesterday")
	require.Equal(t, exitUsage, r.code)
}
