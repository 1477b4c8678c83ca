// Package tracing turns OpenTelemetry tracing on when the standard OTEL_*
// variables configure an OTLP exporter, and leaves the global no-op provider
// in place (zero overhead) otherwise.
package tracing

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.34.0"
)

// Enabled reports whether getenv configures trace export: OTEL_TRACES_EXPORTER
// is "otlp", or it is unset and an OTLP endpoint
// (OTEL_EXPORTER_OTLP_ENDPOINT or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set.
// "none" (or unset with no endpoint) is off.
func Enabled(getenv func(string) string) (bool, error) {
	switch v := strings.TrimSpace(getenv("OTEL_TRACES_EXPORTER")); v {
	case "otlp":
		return true, nil
	case "none":
		return false, nil
	case "":
		return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != "", nil
	default:
		return false, fmt.Errorf("OTEL_TRACES_EXPORTER=%q is not supported: use otlp or none", v)
	}
}

// Setup installs an OTLP/HTTP exporter (configured by the standard
// OTEL_EXPORTER_OTLP_* variables, which the exporter reads itself) as the
// global tracer provider, with the W3C trace-context propagator, when
// Enabled says so. It returns whether tracing is on and a shutdown that
// flushes the spans still buffered.
func Setup(ctx context.Context, service string, getenv func(string) string) (bool, func(context.Context) error, error) {
	noop := func(context.Context) error { return nil }
	on, err := Enabled(getenv)
	if err != nil || !on {
		return false, noop, err
	}
	if p := getenv("OTEL_EXPORTER_OTLP_PROTOCOL"); p != "" && p != "http/protobuf" {
		return false, noop, errors.New("OTEL_EXPORTER_OTLP_PROTOCOL=" + p + " is not supported: wahaq exports OTLP over http/protobuf")
	}
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return false, noop, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	res, err := resource.Merge(resource.Default(), resource.NewWithAttributes(semconv.SchemaURL, semconv.ServiceName(service)))
	if err != nil {
		res = resource.Default()
	}
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	Install(tp)
	return true, tp.Shutdown, nil
}

// Install makes tp the global tracer provider with the W3C trace-context
// propagator; tests install one with an in-memory exporter.
func Install(tp *sdktrace.TracerProvider) {
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
}

// URL fills {trace_id} of the template (WAHAQ_TRACE_URL) with id; "" when
// either is empty, so no link is shown.
func URL(template, id string) string {
	if template == "" || id == "" {
		return ""
	}
	return strings.ReplaceAll(template, "{trace_id}", id)
}
