package main

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"sync"
	"time"
)

// requestTimeout bounds one request of the load: a server that stops
// answering fails the round instead of hanging it.
const requestTimeout = 30 * time.Second

// errorsKey in an answer marks a GraphQL error: the shapes' data never
// holds the word as a key.
const errorsKey = `"errors"`

// result is what one server did with one shape in one measurement.
type result struct {
	hist    *hist // latencies of the successful requests
	elapsed time.Duration
	// failures counts non-2xx answers, answers with errors and requests
	// that failed outright; firstFailure describes one of them.
	failures     int
	firstFailure string
}

// rps is the successful requests per second.
func (r result) rps() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.hist.count()) / r.elapsed.Seconds()
}

// load drives one server with one request body.
type load struct {
	url   string // the server's /graphql
	auth  string // the Authorization header: Bearer and the token
	body  []byte
	conns int
}

// measure sends the request back to back on conns keep-alive HTTP/1.1
// connections for warm, unrecorded, and then for d, recording every
// latency. The connections are the same for both, and closed afterwards.
// Failures in the warm-up count too. It returns early, with ctx's error,
// when ctx ends.
func (l load) measure(ctx context.Context, warm, d time.Duration) (result, error) {
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        l.conns,
		MaxIdleConnsPerHost: l.conns,
		MaxConnsPerHost:     l.conns,
		IdleConnTimeout:     time.Minute,
		// Bodies are measured as the server writes them uncompressed, as
		// wrk asks for them in ../shared/bench/peer-compare.sh.
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: requestTimeout}
	if warm > 0 {
		r := l.drive(ctx, client, warm)
		if err := ctx.Err(); err != nil {
			return r, err
		}
		if r.failures > 0 {
			r.firstFailure = "in the warm-up: " + r.firstFailure
			return r, nil
		}
	}
	r := l.drive(ctx, client, d)
	return r, ctx.Err()
}

// drive runs l.conns workers for d and merges what they recorded. The
// elapsed time runs until the last worker's last answer, so that the
// requests in flight at d count in the time they took.
func (l load) drive(ctx context.Context, client *http.Client, d time.Duration) result {
	workers := make([]*worker, l.conns)
	var wg sync.WaitGroup
	start := time.Now()
	end := start.Add(d)
	for i := range workers {
		w := &worker{load: l, client: client}
		workers[i] = w
		wg.Go(func() { w.run(ctx, end) })
	}
	wg.Wait()
	r := result{hist: new(hist), elapsed: time.Since(start)}
	for _, w := range workers {
		r.hist.merge(&w.hist)
		if w.failure != "" {
			r.failures++
			if r.firstFailure == "" {
				r.firstFailure = w.failure
			}
		}
	}
	return r
}

// worker sends one request after the other on its connection. It stops at
// its first failure: the run fails anyway, and a worker spinning on a
// refused connection would only load the machine.
type worker struct {
	load
	client  *http.Client
	hist    hist
	failure string // the first failure, "" while there is none
}

func (w *worker) run(ctx context.Context, end time.Time) {
	var buf bytes.Buffer
	for ctx.Err() == nil {
		t0 := time.Now()
		if !t0.Before(end) {
			return
		}
		status, err := w.send(ctx, &buf)
		latency := time.Since(t0)
		switch {
		case ctx.Err() != nil:
			return // interrupted: no failure of the server's
		case err != nil:
			w.failure = err.Error()
		case status/100 != 2:
			w.failure = fmt.Sprintf("HTTP %d: %.300s", status, buf.Bytes())
		case bytes.Contains(buf.Bytes(), []byte(errorsKey)):
			w.failure = fmt.Sprintf("errors in the answer: %.300s", buf.Bytes())
		default:
			w.hist.record(latency)
			continue
		}
		return
	}
}

// send posts the request and reads the whole answer into buf, so that the
// connection is reused; it returns the status.
func (w *worker) send(ctx context.Context, buf *bytes.Buffer) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.url, bytes.NewReader(w.body))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", w.auth)
	resp, err := w.client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	buf.Reset()
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		return resp.StatusCode, fmt.Errorf("read answer: %w", err)
	}
	return resp.StatusCode, nil
}
