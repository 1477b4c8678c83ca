package tasks

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the spans wahaq's producer starts.
const tracerName = "github.com/wahaq/wahaq/tasks"

// startEnqueue starts the enqueue span of a logout and returns the W3C
// traceparent the task carries to the worker, or "" when the span is not
// recorded (tracing is off: the global no-op provider makes this free).
func startEnqueue(ctx context.Context, instance, session string) (context.Context, trace.Span, string) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, "wahaq.enqueue", trace.WithSpanKind(trace.SpanKindProducer),
		trace.WithAttributes(attribute.String("instance", instance), attribute.String("session", session)))
	sc := span.SpanContext()
	if !sc.IsValid() {
		return ctx, span, ""
	}
	return ctx, span, "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}
