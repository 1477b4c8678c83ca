package access

import (
	"context"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestRoleAllows(t *testing.T) {
	t.Parallel()
	for _, have := range Roles {
		for _, need := range Roles {
			require.Equal(t, have >= need, have.Allows(need), "%s needs %s", have, need)
		}
		require.False(t, have.Allows(0), "no route needs the zero role")
	}
	require.False(t, Role(0).Allows(RoleRead))
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	for _, r := range Roles {
		got, err := ParseRole(r.String())
		require.NoError(t, err)
		require.Equal(t, r, got)
	}
	_, err := ParseRole("root")
	require.ErrorIs(t, err, ErrBadTokens)
	require.Contains(t, err.Error(), `"root"`)
}

func TestParseFile(t *testing.T) {
	t.Parallel()
	h1, h2 := Hash("token-one"), Hash("token-two")
	for _, tc := range []struct {
		name, yaml string
		want       []Token // names, roles, instances
		err        string
	}{
		{name: "two tokens", yaml: fmt.Sprintf("tokens:\n  - name: n8n\n    sha256: %s\n    role: enqueue\n    instances: [eu]\n  - name: ops\n    sha256: %s\n    role: admin\n", h1, h2),
			want: []Token{{Name: "n8n", Role: RoleEnqueue, Instances: []string{"eu"}}, {Name: "ops", Role: RoleAdmin}}},
		{name: "upper-case hex", yaml: fmt.Sprintf("tokens:\n  - {name: a, sha256: %s, role: read}\n", strings.ToUpper(h1)),
			want: []Token{{Name: "a", Role: RoleRead}}},
		{name: "not yaml", yaml: "tokens: [", err: "bad tokens file"},
		{name: "empty", yaml: "", err: "lists no token"},
		{name: "unknown key", yaml: fmt.Sprintf("tokens:\n  - {name: a, sha256: %s, role: read, token: x}\n", h1), err: "field token not found"},
		{name: "unknown role", yaml: fmt.Sprintf("tokens:\n  - {name: a, sha256: %s, role: root}\n", h1), err: `unknown role "root"`},
		{name: "no role", yaml: fmt.Sprintf("tokens:\n  - {name: a, sha256: %s}\n", h1), err: "has no role"},
		{name: "no name", yaml: fmt.Sprintf("tokens:\n  - {sha256: %s, role: read}\n", h1), err: "has no name"},
		{name: "token instead of hash", yaml: "tokens:\n  - {name: a, sha256: my-secret-token, role: read}\n", err: "64 hex digits"},
		{name: "repeated hash", yaml: fmt.Sprintf("tokens:\n  - {name: a, sha256: %s, role: read}\n  - {name: b, sha256: %s, role: admin}\n", h1, h1), err: "given twice"},
		{name: "repeated name", yaml: fmt.Sprintf("tokens:\n  - {name: a, sha256: %s, role: read}\n  - {name: a, sha256: %s, role: admin}\n", h1, h2), err: "given to two tokens"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := ParseFile([]byte(tc.yaml))
			if tc.err != "" {
				require.ErrorIs(t, err, ErrBadTokens)
				require.Contains(t, err.Error(), tc.err)
				require.NotContains(t, err.Error(), "my-secret-token", "the error must not echo what may be a token")
				return
			}
			require.NoError(t, err)
			require.Len(t, got, len(tc.want))
			for i, w := range tc.want {
				require.Equal(t, w.Name, got[i].Name)
				require.Equal(t, w.Role, got[i].Role)
				require.Equal(t, w.Instances, got[i].Instances)
			}
		})
	}
}

func TestSetLookup(t *testing.T) {
	t.Parallel()
	named, err := ParseFile([]byte(fmt.Sprintf("tokens:\n  - {name: reader, sha256: %s, role: read, instances: [eu]}\n", Hash("r-token"))))
	require.NoError(t, err)
	s, err := NewSet([]string{"admin-token", " "}, named)
	require.NoError(t, err)
	require.Len(t, s.Tokens(), 2)

	a := s.Lookup("admin-token")
	require.NotNil(t, a)
	require.Equal(t, RoleAdmin, a.Role)
	require.Equal(t, "env-"+Hash("admin-token")[:8], a.Name)
	require.True(t, a.InScope("anything"))

	r := s.Lookup(" r-token ")
	require.NotNil(t, r)
	require.Equal(t, "reader", r.Name)
	require.True(t, r.InScope("eu"))
	require.False(t, r.InScope("us"))

	require.Nil(t, s.Lookup("nope"))
	require.Nil(t, s.Lookup(""))

	_, err = NewSet([]string{"r-token"}, named)
	require.ErrorIs(t, err, ErrBadTokens, "a plain token equal to a file entry is a repeat")

	none, err := NewSet([]string{"", " "}, nil)
	require.NoError(t, err)
	require.Nil(t, none)
	require.Nil(t, none.Lookup("x"))
}

func TestContext(t *testing.T) {
	t.Parallel()
	require.Nil(t, FromContext(context.Background()))
	tok := &Token{Name: "x", Role: RoleRead}
	require.Same(t, tok, FromContext(WithToken(context.Background(), tok)))
}

func TestLookupCompares(t *testing.T) {
	t.Parallel()
	s, err := NewSet([]string{"alpha-token", "", " beta "}, nil)
	require.NoError(t, err)
	require.Len(t, s.Tokens(), 2)
	for _, tc := range []struct {
		tok  string
		want bool
	}{
		{"alpha-token", true},
		{"beta", true},
		{" beta ", true},       // surrounding space is not part of a token
		{"alpha-tokex", false}, // same length, last byte differs
		{"xlpha-token", false}, // same length, first byte differs
		{"alpha-toke", false},  // prefix
		{"alpha-token-", false},
		{"", false},
		{strings.Repeat("a", 10_000), false},
	} {
		require.Equal(t, tc.want, s.Lookup(tc.tok) != nil, "%q", tc.tok)
	}
}

// TestLookupIsConstantTime checks the shape of Set.Lookup, since timing
// cannot be measured reliably in a test: it must hash the presented token,
// compare with subtle.ConstantTimeCompare, pick with
// subtle.ConstantTimeSelect, and visit every token without returning from
// inside the loop, branching or comparing with ==.
func TestLookupIsConstantTime(t *testing.T) {
	t.Parallel()
	f, err := parser.ParseFile(token.NewFileSet(), "access.go", nil, 0)
	require.NoError(t, err)
	var lookup *ast.FuncDecl
	for _, d := range f.Decls {
		if fd, ok := d.(*ast.FuncDecl); ok && fd.Name.Name == "Lookup" {
			lookup = fd
		}
	}
	require.NotNil(t, lookup, "Set.Lookup not found")
	calls := map[string]int{}
	var loops int
	ast.Inspect(lookup.Body, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.CallExpr:
			if sel, ok := n.Fun.(*ast.SelectorExpr); ok {
				if x, ok := sel.X.(*ast.Ident); ok {
					calls[x.Name+"."+sel.Sel.Name]++
				}
			}
		case *ast.RangeStmt, *ast.ForStmt:
			loops++
			ast.Inspect(n, func(m ast.Node) bool {
				switch m := m.(type) {
				case *ast.ReturnStmt, *ast.BranchStmt, *ast.IfStmt:
					t.Errorf("early exit or branch inside the comparison loop: %T", m)
				case *ast.BinaryExpr:
					if m.Op == token.EQL || m.Op == token.NEQ {
						t.Errorf("== or != inside the comparison loop")
					}
				}
				return true
			})
		}
		return true
	})
	require.Equal(t, 1, calls["subtle.ConstantTimeCompare"], "calls: %v", calls)
	require.Equal(t, 1, calls["subtle.ConstantTimeSelect"], "calls: %v", calls)
	require.Equal(t, 1, calls["sha256.Sum256"], "calls: %v", calls)
	require.Equal(t, 1, loops)
}
