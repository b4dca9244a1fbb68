package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestRateLimitAcrossProcesses runs two server processes on one
// PostgreSQL database with one client address spending its anonymous
// budget on both at once: together they never admit more than the budget
// (its capacity, plus its refill over the test), and they admit nearly
// all of it (each may hold one unspent lease, a sixteenth of it).
func TestRateLimitAcrossProcesses(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("starts server processes")
	}
	const capacity = 20000
	env := append(serveEnv(t, postgresSchema(t)), fmt.Sprintf("RATE_LIMIT_ANONYMOUS=%d/24h", capacity))
	_, first := startServe(t, env)
	_, second := startServe(t, env)

	// 20 aliases of riskParams with 5 fields: 120 points requested, and
	// as many returned.
	var q strings.Builder
	q.WriteString("{")
	for i := range 20 {
		fmt.Fprintf(&q, " a%d: riskParams { version wUtilization wVolatility wAudit wAge }", i)
	}
	q.WriteString(" }")
	body, _ := json.Marshal(map[string]string{"query": q.String()})

	start := time.Now()
	var mu sync.Mutex
	var admitted, refused int64
	perServer := map[string]int64{}
	var wg sync.WaitGroup
	for _, base := range []string{first, second, first, second} {
		wg.Go(func() {
			for {
				resp, err := http.Post(base+"/graphql", "application/json", strings.NewReader(string(body)))
				if err != nil {
					t.Error(err)
					return
				}
				var res struct {
					Errors []struct {
						Extensions struct {
							Code       string
							RetryAfter int
						}
					}
					Extensions struct {
						Cost struct{ Requested, Actual, Remaining int64 }
					}
				}
				err = json.NewDecoder(resp.Body).Decode(&res)
				resp.Body.Close()
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				switch {
				case resp.StatusCode == http.StatusOK && res.Extensions.Cost.Requested == 120:
					// Charged (a field failing on a database shared with
					// other tests, SERVICE_UNAVAILABLE, is charged too).
					admitted += res.Extensions.Cost.Actual
					perServer[base] += res.Extensions.Cost.Actual
				case resp.StatusCode == http.StatusServiceUnavailable:
					// The budget could not be read: a database shared with
					// other tests, out of connections. Nothing was charged.
				case resp.StatusCode == http.StatusTooManyRequests && res.Errors[0].Extensions.Code == "RATE_LIMITED" &&
					res.Errors[0].Extensions.RetryAfter > 0 && resp.Header.Get("Retry-After") != "":
					refused++
				default:
					t.Errorf("answer %d %+v", resp.StatusCode, res)
				}
				done := refused >= 20
				mu.Unlock()
				if done || t.Failed() {
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	limit := capacity + int64(elapsed.Seconds()*capacity/(24*3600)) + 1
	t.Logf("admitted %d points (%v) in %v, refused %d requests; the budget allows %d", admitted, perServer, elapsed.Round(time.Millisecond), refused, limit)
	if admitted > limit {
		t.Errorf("the two processes admitted %d points, over the budget's %d", admitted, limit)
	}
	if lease := int64(capacity / 16); admitted < capacity-2*lease {
		t.Errorf("the two processes admitted %d points of %d: more than a lease each was stranded", admitted, capacity)
	}
	if perServer[first] == 0 || perServer[second] == 0 {
		t.Errorf("admitted per server %v: both should have admitted some", perServer)
	}
}
