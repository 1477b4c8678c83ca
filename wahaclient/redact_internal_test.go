package wahaclient

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/require"
)

// TestRedactorText pins what free-text redaction takes and what it leaves:
// every run of MinEchoRun or more of a long secret, in any letter case; a
// short secret only where it stands as a token of its own.
func TestRedactorText(t *testing.T) {
	t.Parallel()
	const key = "Waha-Key-9f3e1c77d2"
	tests := []struct {
		name    string
		secrets []string
		in      string
		want    string
	}{
		{"exact", []string{key}, "bad key " + key + ".", "bad key [redacted]."},
		{"upper case", []string{key}, "bad key " + strings.ToUpper(key), "bad key [redacted]"},
		{"lower case", []string{key}, "k=" + strings.ToLower(key) + ";", "k=[redacted];"},
		{"first 10", []string{key}, "got " + key[:10] + "…", "got [redacted]…"},
		{"a run of MinEchoRun in the middle", []string{key}, "x" + key[5:13] + "x", "x[redacted]x"},
		{"a run one shorter stays", []string{key}, "x" + key[5:12] + "x", "x" + key[5:12] + "x"},
		{"ordinary words stay", []string{key}, "waha logout: 500 Internal Server Error: key missing", "waha logout: 500 Internal Server Error: key missing"},
		{"twice, touching", []string{key}, key + key, "[redacted]"},
		{"JSON-escaped form", []string{`a"b\c-9f3e1c77`}, `k=a\"b\\c-9f3e1c77`, "k=[redacted]"},
		{"short key as a word", []string{"321"}, "bad key 321, again (321)", "bad key [redacted], again ([redacted])"},
		{"short key inside a name stays", []string{"321"}, "session bot-321 and 321x and x_321 busy", "session bot-321 and 321x and x_321 busy"},
		{"short key upper case", []string{"abc"}, "key ABC refused", "key [redacted] refused"},
		{"short key at the ends", []string{"321"}, "321", "[redacted]"},
		{"short key inside WORKING stays", []string{"ORKIN"}, "status WORKING", "status WORKING"},
		{"two secrets", []string{key, "321"}, key + " / 321", "[redacted] / [redacted]"},
		{"nothing", nil, "bad key " + key, "bad key " + key},
		{"a run that ends inside a character", []string{"abcdefgè1"}, "abcdefgé!", "[redacted]!"},
		{"a run that begins inside a character", []string{"è1234567"}, "<Ш1234567>", "<[redacted]>"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got := newRedactor(tc.secrets...).text(tc.in)
			require.Equal(t, tc.want, got)
			require.True(t, utf8.ValidString(got))
		})
	}
}

// A long text costs a bounded redaction: it is looked at up to
// maxRedactInput bytes.
func TestRedactorBoundsItsInput(t *testing.T) {
	t.Parallel()
	r := newRedactor(strings.Repeat("k", 64))
	got := r.text(strings.Repeat("k", 1<<20))
	require.Equal(t, Redacted+"…", got)
}
