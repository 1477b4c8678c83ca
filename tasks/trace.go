package tasks

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// tracerName names the spans wahaq's producer starts.
const tracerName = "github.com/wahaq/wahaq/tasks"

// startEnqueue starts the enqueue span of a logout and returns the W3C
// traceparent the task carries to the worker, or "" when the span is not
// recorded (tracing is off: the global no-op provider makes this free).
func startEnqueue(ctx context.Context, instance, session string) (context.Context, trace.Span, string) {
	return startProducer(ctx, "wahaq.enqueue", attribute.String("instance", instance), attribute.String("session", session))
}

// startEnqueueBatch starts the span of a batch request (a session list or
// a discovery). Its traceparent goes into every task of the batch (through
// the discovery task for "all"), so one batch request is one trace: each
// task's attempts, and their WAHA calls, are its descendants. A sampler
// (OTEL_TRACES_SAMPLER=parentbased_traceidratio) samples a batch whole or
// not at all.
func startEnqueueBatch(ctx context.Context, name, instance, batchID string, sessions int) (context.Context, trace.Span, string) {
	attrs := []attribute.KeyValue{attribute.String("instance", instance), attribute.String("batch_id", batchID)}
	if sessions > 0 {
		attrs = append(attrs, attribute.Int("sessions", sessions))
	}
	return startProducer(ctx, name, attrs...)
}

func startProducer(ctx context.Context, name string, attrs ...attribute.KeyValue) (context.Context, trace.Span, string) {
	ctx, span := otel.Tracer(tracerName).Start(ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	return ctx, span, traceParent(span.SpanContext())
}

// traceParent is the W3C traceparent (version 00) of sc, or "" when sc is
// not valid (tracing off).
func traceParent(sc trace.SpanContext) string {
	if !sc.IsValid() {
		return ""
	}
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-" + sc.TraceFlags().String()
}

// endSpan records err, if any, on span and ends it.
func endSpan(span trace.Span, err error) {
	if err != nil && span.IsRecording() {
		span.RecordError(err)
		span.SetStatus(codes.Error, err.Error())
	}
	span.End()
}
