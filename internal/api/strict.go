package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
)

// keyError is a request body key the API refuses: one that names no
// field, one given twice (encoding/json would keep the last), or one that
// matches a field only when case is ignored (encoding/json would read
// "SESSION" as "session"). In the last two the client meant something else
// than the server would read, so the request is refused whole.
type keyError struct {
	// Key is the key as the client wrote it.
	Key string
	// Path locates the object holding it ("" for the body itself).
	Path string
	// Problem says what is wrong with the key.
	Problem keyProblem
	// Want is the field a keyCase key differs from.
	Want string
	// Known lists the fields of the object, for keyUnknown.
	Known []string
}

// keyProblem is what is wrong with a key.
type keyProblem int

const (
	keyUnknown keyProblem = iota + 1
	keyTwice
	keyCase
)

func (e *keyError) Error() string {
	where := ""
	if e.Path != "" {
		where = fmt.Sprintf(" in %q", e.Path)
	}
	switch e.Problem {
	case keyTwice:
		return fmt.Sprintf("key %q is given twice%s; give each field once", e.Key, where)
	case keyCase:
		return fmt.Sprintf("key %q%s is not a field; did you mean %q? Keys are case-sensitive", e.Key, where, e.Want)
	}
	return fmt.Sprintf("unknown field %q%s; known fields: %s", e.Key, where, strings.Join(e.Known, ", "))
}

// Bounds on the shape of a request body, checked by checkShape in one pass
// over its bytes before anything else reads it. No body the API takes nests
// deeper than 3 (an object, an array, a string); 32 leaves room for any
// future field and is far below what would cost memory. A 1 MiB body can
// hold ~260,000 one-letter sessions; maxJSONTokens is above that and above
// the largest batch (tasks.DefaultMaxBatch, 100,000), so it refuses only
// bodies that no route could accept, before the walk allocates per token.
const (
	maxJSONDepth  = 32
	maxJSONTokens = 1 << 19
)

// shapeError is a body refused for its shape alone: nested deeper than
// maxJSONDepth or holding more than maxJSONTokens tokens.
type shapeError struct {
	// Offset is the byte at which the bound was passed.
	Offset int
	// Depth is true for the depth bound, false for the token bound.
	Depth bool
}

func (e *shapeError) Error() string {
	if e.Depth {
		return fmt.Sprintf("request body nests JSON more than %d levels deep (at byte %d); the API's bodies are flat objects", maxJSONDepth, e.Offset)
	}
	return fmt.Sprintf("request body holds more than %d JSON values (at byte %d)", maxJSONTokens, e.Offset)
}

// checkShape scans data once, without allocating, and returns a
// *shapeError when it nests deeper than maxJSONDepth or holds more than
// maxJSONTokens tokens. It does not check the syntax (the decoder does):
// it only tracks strings, so that brackets and commas inside them do not
// count. Everything that walks the body later (checkKeys, encoding/json)
// then does work linear in its size: without this bound, 100,000 nested
// '[' under 1 MiB made the key walk use gigabytes (issue 23, S1).
func checkShape(data []byte) error {
	depth, tokens := 0, 0
	inString, escaped := false, false
	for i, c := range data {
		if inString {
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
			continue
		}
		switch c {
		case '"':
			inString = true
			tokens++
		case '{', '[':
			depth++
			if depth > maxJSONDepth {
				return &shapeError{Offset: i, Depth: true}
			}
			tokens++
		case '}', ']':
			// Not below 0: a stray closing bracket must not buy depth
			// for what follows (the decoder refuses it anyway).
			depth = max(depth-1, 0)
		case ',', ':':
			tokens++
		default:
			continue
		}
		if tokens > maxJSONTokens {
			return &shapeError{Offset: i}
		}
	}
	return nil
}

// checkKeys walks data against the Go type it decodes into and returns a
// *keyError for the first object key that is repeated or does not match a
// field's json name exactly. Other errors are the tokenizer's, for data
// that is not JSON; the decoder words those better. Call it only on data
// that passed checkShape: the walk recurses once per level.
func checkKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	w := walker{dec: dec}
	return w.value(t)
}

// walker walks one body. It keeps where it is as a stack of steps and
// spells the path only for an error: building it at every level made the
// work grow with the square of the depth.
type walker struct {
	dec   *json.Decoder
	steps []step
}

// step is one level of the path: an object key, or an array index when key
// is "" and index >= 0.
type step struct {
	key   string
	index int
}

// path spells the current location: "a.b[2].c", "" for the body itself.
func (w *walker) path() string {
	var b strings.Builder
	for _, s := range w.steps {
		if s.index >= 0 {
			fmt.Fprintf(&b, "[%d]", s.index)
			continue
		}
		if b.Len() > 0 {
			b.WriteByte('.')
		}
		b.WriteString(s.key)
	}
	return b.String()
}

// value reads one JSON value; t is its Go type, or nil when only
// duplicates can be checked (maps of any, json.RawMessage).
func (w *walker) value(t reflect.Type) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := w.dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return w.object(t)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t != rawMessage {
			elem = t.Elem()
		}
		w.steps = append(w.steps, step{index: 0})
		for i := 0; w.dec.More(); i++ {
			w.steps[len(w.steps)-1].index = i
			if err := w.value(elem); err != nil {
				return err
			}
		}
		w.steps = w.steps[:len(w.steps)-1]
		_, err := w.dec.Token() // ']'
		return err
	}
	return nil // a scalar
}

var rawMessage = reflect.TypeOf(json.RawMessage(nil))

func (w *walker) object(t reflect.Type) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t != nil && t.Kind() == reflect.Struct:
		fields = jsonFieldTypes(t)
	case t != nil && t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for w.dec.More() {
		tok, err := w.dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return &keyError{Key: key, Path: w.path(), Problem: keyTwice}
		}
		seen[key] = true
		vt := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				known := make([]string, 0, len(fields))
				for name := range fields {
					if strings.EqualFold(name, key) {
						return &keyError{Key: key, Path: w.path(), Problem: keyCase, Want: name}
					}
					known = append(known, strconv.Quote(name))
				}
				slices.Sort(known)
				return &keyError{Key: key, Path: w.path(), Problem: keyUnknown, Known: known}
			}
			vt = ft
		}
		w.steps = append(w.steps, step{key: key, index: -1})
		if err := w.value(vt); err != nil {
			return err
		}
		w.steps = w.steps[:len(w.steps)-1]
	}
	_, err := w.dec.Token() // '}'
	return err
}

// jsonFieldTypes maps the exact JSON names of a struct's fields (embedded
// structs flattened, as encoding/json does) to their types.
func jsonFieldTypes(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		tag := f.Tag.Get("json")
		name, _, _ := strings.Cut(tag, ",")
		if name == "-" || (!f.IsExported() && !f.Anonymous) {
			continue
		}
		if f.Anonymous && name == "" {
			ft := f.Type
			if ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if ft.Kind() == reflect.Struct {
				for k, v := range jsonFieldTypes(ft) {
					if _, ok := out[k]; !ok {
						out[k] = v
					}
				}
				continue
			}
		}
		if name == "" {
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}
