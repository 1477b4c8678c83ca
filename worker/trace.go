package worker

import (
	"context"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/wahaq/wahaq/internal/base"
)

// tracerName names the spans the worker starts.
const tracerName = "github.com/wahaq/wahaq/worker"

// startAttempt starts the span of one attempt, a child of the enqueue span
// whose context the payload carries (W3C traceparent). With tracing off (the
// global no-op provider) it costs next to nothing.
func startAttempt(ctx context.Context, a *attempt) context.Context {
	if tp := a.Payload.TraceParent; tp != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": tp})
	}
	ctx, a.span = otel.Tracer(tracerName).Start(ctx, "wahaq.attempt", trace.WithSpanKind(trace.SpanKindConsumer))
	if a.span.IsRecording() {
		a.span.SetAttributes(attribute.String("task_id", a.ID), attribute.String("instance", a.Payload.Instance),
			attribute.String("session", a.Payload.Session), attribute.Int("attempt", a.Number))
	}
	return ctx
}

// endAttempt records what the policy decided on the attempt's span.
func endAttempt(a *attempt, v verdict) {
	if a.span == nil || !a.span.IsRecording() {
		return
	}
	outcome := string(v.Outcome)
	if v.State == "retrying" || outcome == "" {
		outcome = "retrying"
	}
	a.span.SetAttributes(attribute.String("outcome", outcome), attribute.String("state", string(v.State)))
	if v.LastError != "" {
		a.span.SetStatus(codes.Error, v.LastError)
	}
}

// startDiscover starts the span of a discovery, a child of the batch
// request's span (wahaq.enqueue_discovery) whose context the payload
// carries, and returns the traceparent the batch's logouts are enqueued
// with, so their attempts are children of the discovery: one trace per
// batch request. "" when tracing is off.
func startDiscover(ctx context.Context, p base.DiscoverPayload) (context.Context, trace.Span, string) {
	if p.TraceParent != "" {
		ctx = propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": p.TraceParent})
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, "wahaq.discover", trace.WithSpanKind(trace.SpanKindConsumer),
		trace.WithAttributes(attribute.String("instance", p.Instance), attribute.String("batch_id", p.BatchID)))
	carrier := propagation.MapCarrier{}
	propagation.TraceContext{}.Inject(ctx, carrier)
	return ctx, span, carrier["traceparent"]
}
