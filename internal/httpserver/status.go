package httpserver

import "net/http"

// StatusWriter remembers the status code a handler wrote, for request logs
// and metrics; Unwrap keeps http.ResponseController working through it.
type StatusWriter struct {
	http.ResponseWriter
	// Code is the status written; 0 until the handler writes.
	Code int
}

// WriteHeader records the first status and passes it on.
func (w *StatusWriter) WriteHeader(code int) {
	if w.Code == 0 {
		w.Code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Write records an implicit 200 and passes the bytes on.
func (w *StatusWriter) Write(b []byte) (int, error) {
	if w.Code == 0 {
		w.Code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap returns the wrapped writer.
func (w *StatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
