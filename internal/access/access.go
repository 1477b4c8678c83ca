// Package access decides who may do what over wahaq's HTTP API and console:
// the roles of API tokens, the tokens file that names them (by SHA-256, never
// the token itself), the instances a token may touch, and the authenticated
// token carried in a request's context.
//
// Roles are ordered, each one everything the one before may do and more:
//
//	read     every GET: tasks, batches, dead letters, the console's pages
//	enqueue  read, plus logouts and batches of named sessions (no "all")
//	operate  enqueue, plus "all" batches, cancel, batch pause/resume,
//	         dead-letter requeue, subscriptions
//	admin    operate, plus dead-letter purge and the audit log
//
// Which role each route needs is written once, in the API's route table
// (internal/api/server.go); this package only orders the roles.
package access

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// Role is what a token may do. The zero Role is no role at all.
type Role int

// The roles, weakest first: a token of a role may do everything the roles
// before it may.
const (
	RoleRead Role = iota + 1
	RoleEnqueue
	RoleOperate
	RoleAdmin
)

// Roles are every role, weakest first.
var Roles = []Role{RoleRead, RoleEnqueue, RoleOperate, RoleAdmin}

// String is the role's name as the tokens file writes it.
func (r Role) String() string {
	switch r {
	case RoleRead:
		return "read"
	case RoleEnqueue:
		return "enqueue"
	case RoleOperate:
		return "operate"
	case RoleAdmin:
		return "admin"
	}
	return "none"
}

// Allows reports whether a token of role r may do what needs role need.
func (r Role) Allows(need Role) bool { return r >= need && need >= RoleRead }

// ErrBadTokens marks a tokens file that cannot be used: it does not parse,
// names an unknown role, or repeats a hash or a name.
var ErrBadTokens = errors.New("bad tokens file")

// ParseRole reads a role's name.
func ParseRole(s string) (Role, error) {
	for _, r := range Roles {
		if s == r.String() {
			return r, nil
		}
	}
	return 0, fmt.Errorf("%w: unknown role %q (known: read, enqueue, operate, admin)", ErrBadTokens, s)
}

// Token is one accepted bearer token, known by its name and its SHA-256.
type Token struct {
	// Name names the token in logs and the audit log.
	Name string
	// Role is what the token may do.
	Role Role
	// Instances are the WAHA servers the token may touch. Defaults to nil:
	// every instance.
	Instances []string
	sum       [sha256.Size]byte
}

// InScope reports whether the token may touch instance.
func (t *Token) InScope(instance string) bool {
	return len(t.Instances) == 0 || slices.Contains(t.Instances, instance)
}

// Sum returns the token's SHA-256.
func (t *Token) Sum() [sha256.Size]byte { return t.sum }

// Hash returns the hex SHA-256 of a token, as the tokens file holds it
// (`wahaq token hash`). Surrounding white space is not part of the token.
func Hash(token string) string {
	s := sha256.Sum256([]byte(strings.TrimSpace(token)))
	return hex.EncodeToString(s[:])
}

// Set is the accepted tokens. It is safe for concurrent use (read-only).
type Set struct {
	tokens []*Token
}

// plainName names a token of WAHAQ_API_TOKENS: "env-" and the first 8 hex
// digits of its SHA-256, stable whatever its place in the list, and no more
// of a hint about the token than the file's full hash.
func plainName(sum [sha256.Size]byte) string { return "env-" + hex.EncodeToString(sum[:4]) }

// NewSet returns the set of the plain tokens (WAHAQ_API_TOKENS: each an
// admin, named "env-<first 8 hex digits of its SHA-256>") and the named ones
// (the tokens file), or nil when there are none. A hash given twice is an
// error wrapping ErrBadTokens.
func NewSet(plain []string, named []Token) (*Set, error) {
	var s Set
	seen := map[[sha256.Size]byte]string{}
	names := map[string]bool{}
	add := func(t *Token, where string) error {
		if prev, dup := seen[t.sum]; dup {
			return fmt.Errorf("%w: the same token is given twice (%s and %s); give each token once", ErrBadTokens, prev, where)
		}
		if names[t.Name] {
			return fmt.Errorf("%w: the name %q is given to two tokens; names must be unique (logs and the audit log name tokens by them)", ErrBadTokens, t.Name)
		}
		seen[t.sum], names[t.Name] = where, true
		s.tokens = append(s.tokens, t)
		return nil
	}
	for i, p := range plain {
		if p = strings.TrimSpace(p); p == "" {
			continue
		}
		sum := sha256.Sum256([]byte(p))
		if err := add(&Token{Name: plainName(sum), Role: RoleAdmin, sum: sum}, fmt.Sprintf("WAHAQ_API_TOKENS entry %d", i+1)); err != nil {
			return nil, err
		}
	}
	for i := range named {
		t := named[i]
		if err := add(&t, fmt.Sprintf("tokens file entry %q", t.Name)); err != nil {
			return nil, err
		}
	}
	if len(s.tokens) == 0 {
		return nil, nil
	}
	return &s, nil
}

// Lookup returns the token presented, or nil. Both sides are compared as
// SHA-256 digests, against every token with no early exit, so the time taken
// does not say which token matched or how much of one did.
func (s *Set) Lookup(presented string) *Token {
	if s == nil {
		return nil
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(presented)))
	found := -1
	for i, t := range s.tokens {
		found = subtle.ConstantTimeSelect(subtle.ConstantTimeCompare(sum[:], t.sum[:]), i, found)
	}
	if found < 0 {
		return nil
	}
	return s.tokens[found]
}

// Tokens returns every token of the set.
func (s *Set) Tokens() []*Token {
	if s == nil {
		return nil
	}
	return slices.Clone(s.tokens)
}

// fileEntry is one entry of the tokens file.
type fileEntry struct {
	Name      string   `yaml:"name"`
	SHA256    string   `yaml:"sha256"`
	Role      string   `yaml:"role"`
	Instances []string `yaml:"instances"`
}

// file is the tokens file.
type file struct {
	Tokens []fileEntry `yaml:"tokens"`
}

// ParseFile reads a tokens file (WAHAQ_API_TOKENS_FILE):
//
//	tokens:
//	  - name: n8n-prod
//	    sha256: 3b1f…   # wahaq token hash < token.txt
//	    role: enqueue
//	    instances: [eu] # absent: every instance
//
// Unknown keys, a missing name, a hash that is not 64 hex digits, an
// unknown role, and a hash or name given twice are errors wrapping
// ErrBadTokens. Whether the instances exist is the caller's to check.
func ParseFile(data []byte) ([]Token, error) {
	var f file
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: %v", ErrBadTokens, err)
	}
	var out []Token
	for i, e := range f.Tokens {
		where := fmt.Sprintf("entry %d", i+1)
		if e.Name == "" {
			return nil, fmt.Errorf("%w: %s has no name", ErrBadTokens, where)
		}
		where = fmt.Sprintf("entry %d (%s)", i+1, e.Name)
		raw, err := hex.DecodeString(strings.TrimSpace(e.SHA256))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("%w: %s: sha256 must be the token's SHA-256 as 64 hex digits (wahaq token hash < token.txt), never the token itself", ErrBadTokens, where)
		}
		if e.Role == "" {
			return nil, fmt.Errorf("%w: %s has no role (read, enqueue, operate or admin)", ErrBadTokens, where)
		}
		role, err := ParseRole(e.Role)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		t := Token{Name: e.Name, Role: role, Instances: e.Instances}
		copy(t.sum[:], raw)
		out = append(out, t)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: it lists no token (a list under \"tokens:\")", ErrBadTokens)
	}
	// Repeats are found by NewSet too; finding them here names the file.
	if _, err := NewSet(nil, out); err != nil {
		return nil, err
	}
	return out, nil
}

// LoadFile reads and parses the tokens file at path.
func LoadFile(path string) ([]Token, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadTokens, err)
	}
	return ParseFile(data)
}

// ctxKey keys the authenticated token in a context.
type ctxKey struct{}

// WithToken returns ctx carrying the authenticated token t.
func WithToken(ctx context.Context, t *Token) context.Context {
	return context.WithValue(ctx, ctxKey{}, t)
}

// FromContext returns the token a request authenticated with, or nil (no
// authentication: --insecure-no-auth, or an open route).
func FromContext(ctx context.Context) *Token {
	t, _ := ctx.Value(ctxKey{}).(*Token)
	return t
}

// Open is the token of every request when the API serves without
// authentication (--insecure-no-auth): an admin of every instance, named
// "anonymous".
var Open = &Token{Name: "anonymous", Role: RoleAdmin}
