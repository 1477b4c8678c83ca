// Package httpserver builds wahaq's HTTP servers (`wahaq serve` and the
// worker's metrics server) with bounds on every connection, so that idle
// keep-alive connections and clients that send their request slowly cannot
// hold file descriptors for ever.
//
// The bounds are http.Server's own: ReadHeaderTimeout (headers),
// ReadTimeout (headers and body), WriteTimeout (from the end of the headers
// to the end of the answer), IdleTimeout (a keep-alive connection between
// requests) and MaxHeaderBytes. A route that must wait or stream longer
// than WriteTimeout (a long-poll, server-sent events) extends its own
// deadlines with ExtendWrite; every other route keeps the defaults.
package httpserver

import (
	"errors"
	"fmt"
	"net/http"
	"time"
)

// Defaults of Limits.
const (
	// DefaultReadHeaderTimeout bounds reading a request's headers: 5 s.
	DefaultReadHeaderTimeout = 5 * time.Second
	// DefaultReadTimeout bounds reading a whole request, body included: 30 s,
	// room for a 1 MiB body on a slow link, while a client sending a byte a
	// second is cut off.
	DefaultReadTimeout = 30 * time.Second
	// DefaultWriteTimeout bounds a handler and its answer: 60 s. Routes that
	// wait longer (a long-poll of up to 60 s) extend it with ExtendWrite.
	DefaultWriteTimeout = 60 * time.Second
	// DefaultIdleTimeout closes a keep-alive connection idle this long: 60 s.
	DefaultIdleTimeout = 60 * time.Second
	// DefaultMaxHeaderBytes bounds the request line and headers: 64 KiB.
	DefaultMaxHeaderBytes = 64 << 10
)

// Limits bound the connections of a server. A zero field takes its
// default.
type Limits struct {
	// ReadHeaderTimeout bounds reading the headers. Defaults to
	// DefaultReadHeaderTimeout.
	ReadHeaderTimeout time.Duration
	// ReadTimeout bounds reading the whole request. Defaults to
	// DefaultReadTimeout.
	ReadTimeout time.Duration
	// WriteTimeout bounds the handler and its answer. Defaults to
	// DefaultWriteTimeout.
	WriteTimeout time.Duration
	// IdleTimeout closes idle keep-alive connections. Defaults to
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// MaxHeaderBytes bounds the request line and headers. Defaults to
	// DefaultMaxHeaderBytes.
	MaxHeaderBytes int
}

// withDefaults fills zero fields.
func (l Limits) withDefaults() Limits {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.ReadHeaderTimeout, DefaultReadHeaderTimeout)
	def(&l.ReadTimeout, DefaultReadTimeout)
	def(&l.WriteTimeout, DefaultWriteTimeout)
	def(&l.IdleTimeout, DefaultIdleTimeout)
	if l.MaxHeaderBytes == 0 {
		l.MaxHeaderBytes = DefaultMaxHeaderBytes
	}
	return l
}

// Check refuses limits that would leave a connection unbounded or no
// request possible: negative values, and a header timeout longer than the
// whole read.
func (l Limits) Check() error {
	l = l.withDefaults()
	var errs []error
	for _, d := range []struct {
		name string
		v    time.Duration
	}{{"read header timeout", l.ReadHeaderTimeout}, {"read timeout", l.ReadTimeout}, {"write timeout", l.WriteTimeout}, {"idle timeout", l.IdleTimeout}} {
		if d.v < 0 {
			errs = append(errs, fmt.Errorf("the HTTP %s %s is negative", d.name, d.v))
		}
	}
	if l.MaxHeaderBytes < 0 {
		errs = append(errs, fmt.Errorf("the HTTP header limit %d is negative", l.MaxHeaderBytes))
	}
	if l.ReadHeaderTimeout > l.ReadTimeout {
		errs = append(errs, fmt.Errorf("the HTTP read header timeout (%s) is longer than the read timeout (%s)", l.ReadHeaderTimeout, l.ReadTimeout))
	}
	return errors.Join(errs...)
}

// New returns a server for h with the limits (zero fields: defaults). The
// caller runs it (Serve on a listener) and shuts it down.
func New(h http.Handler, l Limits) *http.Server {
	l = l.withDefaults()
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: l.ReadHeaderTimeout,
		ReadTimeout:       l.ReadTimeout,
		WriteTimeout:      l.WriteTimeout,
		IdleTimeout:       l.IdleTimeout,
		MaxHeaderBytes:    l.MaxHeaderBytes,
	}
}

// ExtendWrite gives the handler of w d more time from now to write its
// answer, for a route that waits (a long-poll) or streams (server-sent
// events) longer than the server's WriteTimeout. Call it after the request
// body has been read, and again before each wait of a stream. It extends
// the read deadline as much: once the body is read, the server reads the
// connection only to notice the client leaving, and a read deadline that
// passes there would cancel the request's context. It returns an error
// when w cannot set deadlines (e.g. a test's ResponseRecorder); the handler
// may then go on within the usual bounds.
func ExtendWrite(w http.ResponseWriter, d time.Duration) error {
	rc := http.NewResponseController(w)
	at := time.Now().Add(d)
	if err := rc.SetWriteDeadline(at); err != nil {
		return fmt.Errorf("httpserver: extending the write deadline: %w", err)
	}
	if err := rc.SetReadDeadline(at); err != nil {
		return fmt.Errorf("httpserver: extending the read deadline: %w", err)
	}
	return nil
}
