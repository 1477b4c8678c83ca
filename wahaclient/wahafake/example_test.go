package wahafake_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"strings"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// A fake WAHA with a key and two logged-in sessions; one answers 503 twice
// before it logs out. The counters tell a test what the client did.
func Example() {
	srv, err := wahafake.New(wahafake.Options{APIKey: "secret", Sessions: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer func() {
		if err := srv.Close(); err != nil {
			log.Fatal(err)
		}
	}()
	srv.Script("session-0001", wahafake.Fault{Status: http.StatusServiceUnavailable, Times: 2})

	c, err := wahaclient.New(wahaclient.Config{BaseURL: srv.URL(), APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		res, err := c.Logout(context.Background(), "session-0001")
		if err != nil {
			fmt.Printf("attempt %d: %v\n", attempt, err)
			continue
		}
		fmt.Printf("attempt %d: HTTP %d, now %s\n", attempt, res.HTTPStatus, res.Session.Status)
		break
	}
	s, _ := srv.Session("session-0001")
	fmt.Println("stored status:", s.Status)
	fmt.Println("logout calls:", srv.LogoutCalls("session-0001"), "by status:", srv.CallsByStatus())
	fmt.Println("overlapping logouts of one session:", srv.ConcurrentSameSession())
	// Output:
	// attempt 1: waha logout: 503 Service Unavailable
	// attempt 2: waha logout: 503 Service Unavailable
	// attempt 3: HTTP 201, now STARTING
	// stored status: SCAN_QR_CODE
	// logout calls: 3 by status: map[201:1 503:2]
	// overlapping logouts of one session: 0
}

// The control API lets another process (a shell script, the fakewaha
// command's users) script the same faults over HTTP.
func Example_controlAPI() {
	srv, err := wahafake.New(wahafake.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer func() { _ = srv.Close() }()

	resp, err := http.Post(srv.URL()+"/_fake/default-fault", "application/json", nil)
	if err != nil {
		log.Fatal(err)
	}
	_ = resp.Body.Close()
	fmt.Println("without a body:", resp.StatusCode)

	resp, err = http.Post(srv.URL()+"/_fake/script", "application/json",
		strings.NewReader(`{"session":"default","faults":[{"status":401,"times":1}]}`))
	if err != nil {
		log.Fatal(err)
	}
	_ = resp.Body.Close()
	fmt.Println("script:", resp.StatusCode)

	resp, err = http.Post(srv.URL()+"/api/sessions/default/logout", "", nil)
	if err != nil {
		log.Fatal(err)
	}
	_ = resp.Body.Close()
	fmt.Println("first logout:", resp.StatusCode)
	fmt.Println("stats:", srv.Stats().CallsByStatus)
	// Output:
	// without a body: 400
	// script: 200
	// first logout: 401
	// stats: map[401:1]
}
