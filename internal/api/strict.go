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

// checkKeys walks data against the Go type it decodes into and returns a
// *keyError for the first object key that is repeated or does not match a
// field's json name exactly. Other errors are the tokenizer's, for data
// that is not JSON; the decoder words those better.
func checkKeys(data []byte, t reflect.Type) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	return walkValue(dec, t, "")
}

// walkValue reads one JSON value from dec; t is its Go type, or nil when
// only duplicates can be checked (maps of any, json.RawMessage).
func walkValue(dec *json.Decoder, t reflect.Type, path string) error {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	tok, err := dec.Token()
	if err != nil {
		return err
	}
	switch tok {
	case json.Delim('{'):
		return walkObject(dec, t, path)
	case json.Delim('['):
		var elem reflect.Type
		if t != nil && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array) && t != rawMessage {
			elem = t.Elem()
		}
		for i := 0; dec.More(); i++ {
			if err := walkValue(dec, elem, fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		_, err := dec.Token() // ']'
		return err
	}
	return nil // a scalar
}

var rawMessage = reflect.TypeOf(json.RawMessage(nil))

func walkObject(dec *json.Decoder, t reflect.Type, path string) error {
	var fields map[string]reflect.Type
	var elem reflect.Type
	switch {
	case t != nil && t.Kind() == reflect.Struct:
		fields = jsonFieldTypes(t)
	case t != nil && t.Kind() == reflect.Map:
		elem = t.Elem()
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		key, _ := tok.(string)
		if seen[key] {
			return &keyError{Key: key, Path: path, Problem: keyTwice}
		}
		seen[key] = true
		vt := elem
		if fields != nil {
			ft, ok := fields[key]
			if !ok {
				known := make([]string, 0, len(fields))
				for name := range fields {
					if strings.EqualFold(name, key) {
						return &keyError{Key: key, Path: path, Problem: keyCase, Want: name}
					}
					known = append(known, strconv.Quote(name))
				}
				slices.Sort(known)
				return &keyError{Key: key, Path: path, Problem: keyUnknown, Known: known}
			}
			vt = ft
		}
		sub := key
		if path != "" {
			sub = path + "." + key
		}
		if err := walkValue(dec, vt, sub); err != nil {
			return err
		}
	}
	_, err := dec.Token() // '}'
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
