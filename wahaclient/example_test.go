package wahaclient_test

import (
	"context"
	"errors"
	"fmt"
	"log"

	"github.com/wahaq/wahaq/wahaclient"
	"github.com/wahaq/wahaq/wahaclient/wahafake"
)

// Logging a session out, and telling the outcomes apart with errors.Is.
func Example() {
	// A fake WAHA with a key and one logged-in session, "session-0001".
	srv, err := wahafake.New(wahafake.Options{APIKey: "secret", Sessions: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer srv.Close()
	// The fake's proxy answers 503 once, like a WAHA restarting behind nginx.
	srv.Script("session-0001", wahafake.Fault{Status: 503, Times: 1})

	c, err := wahaclient.New(wahaclient.Config{BaseURL: srv.URL(), APIKey: "secret"})
	if err != nil {
		log.Fatal(err)
	}
	ctx := context.Background()

	for _, name := range []string{"session-0001", "session-0001", "nosuch", "not valid!"} {
		res, err := c.Logout(ctx, name)
		switch {
		case err == nil:
			fmt.Printf("%s: logged out (HTTP %d), now %s\n", name, res.HTTPStatus, res.Session.Status)
		case errors.Is(err, wahaclient.ErrTransient):
			fmt.Printf("%s: try again later: %v\n", name, err)
		case errors.Is(err, wahaclient.ErrSessionNotFound):
			fmt.Printf("%s: nothing to log out\n", name)
		case errors.Is(err, wahaclient.ErrInvalidSessionName):
			fmt.Printf("bad input: %v\n", err)
		default:
			fmt.Printf("%s: needs a person: %v\n", name, err)
		}
	}
	after, _ := c.GetSession(ctx, "session-0001")
	fmt.Printf("session-0001 is %s, linked account: %v\n", after.Status, after.Me)

	// Output:
	// session-0001: try again later: waha logout: 503 Service Unavailable
	// session-0001: logged out (HTTP 201), now STARTING
	// nosuch: nothing to log out
	// bad input: invalid session name "not valid!": only letters, digits, '_' and '-' are allowed (WAHA's rule ^[a-zA-Z0-9_-]+$)
	// session-0001 is SCAN_QR_CODE, linked account: <nil>
}
