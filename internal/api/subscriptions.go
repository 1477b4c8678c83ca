package api

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/wahaq/wahaq/tasks"
)

// subscriptionRequest is the body of POST /v1/subscriptions.
type subscriptionRequest struct {
	URL       string   `json:"url"`
	Events    []string `json:"events"`
	Instances []string `json:"instances"`
}

// subscriptionList is the answer of GET /v1/subscriptions.
type subscriptionList struct {
	Subscriptions []tasks.Subscription `json:"subscriptions"`
}

func subscriptionNotFound(id string) string {
	return fmt.Sprintf("no subscription with id %q", truncate(id, 80))
}

// postSubscription makes a subscription: 201 with it.
func (s *server) postSubscription(w http.ResponseWriter, r *http.Request) {
	var req subscriptionRequest
	if !s.decode(w, r, &req) {
		return
	}
	if req.URL == "" {
		s.problem(w, r, http.StatusBadRequest, `missing field "url": name the URL that receives the events (a host of WAHAQ_CALLBACK_ALLOW)`)
		return
	}
	if !s.instancesInScope(w, r, req.Instances) {
		return
	}
	sub, err := s.cfg.Producer.Subscribe(r.Context(), tasks.SubscriptionRequest{URL: req.URL, Events: req.Events, Instances: req.Instances})
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	w.Header().Set("Location", "/v1/subscriptions/"+url.PathEscape(sub.ID))
	s.writeJSON(w, http.StatusCreated, sub)
}

// listSubscriptions answers every subscription, oldest first.
func (s *server) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	for k := range r.URL.Query() {
		s.problem(w, r, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q; this call takes none", truncate(k, 40)))
		return
	}
	subs, err := s.cfg.Inspector.Subscriptions(r.Context())
	if err != nil {
		s.fail(w, r, err, details{})
		return
	}
	s.writeJSON(w, http.StatusOK, subscriptionList{Subscriptions: subs})
}

func (s *server) getSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	sub, err := s.cfg.Inspector.Subscription(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, details{notFound: subscriptionNotFound(id)})
		return
	}
	s.writeJSON(w, http.StatusOK, sub)
}

// deleteSubscription deletes a subscription and answers it.
func (s *server) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if scoped(r) {
		// A scoped token deletes only a subscription wholly in its scope.
		if cur, err := s.cfg.Inspector.Subscription(r.Context(), id); err == nil && !s.instancesInScope(w, r, cur.Instances) {
			return
		}
	}
	sub, err := s.cfg.Producer.Unsubscribe(r.Context(), id)
	if err != nil {
		s.fail(w, r, err, details{notFound: subscriptionNotFound(id)})
		return
	}
	s.writeJSON(w, http.StatusOK, sub)
}

// instancesInScope checks a subscription's instances for a scoped token:
// it must name them, and each must be in its scope.
func (s *server) instancesInScope(w http.ResponseWriter, r *http.Request, instances []string) bool {
	if !scoped(r) {
		return true
	}
	if len(instances) == 0 {
		tok := Caller(r)
		s.refuse(w, r, fmt.Sprintf(`this token (%s) may touch only the instances %s: name them with "instances"`, tok.Name, strings.Join(tok.Instances, ", ")))
		return false
	}
	for _, in := range instances {
		if !s.inScope(w, r, in) {
			return false
		}
	}
	return true
}
