package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/obsqra/obsqra/config"
)

// healthcheckTimeout bounds one probe, connection and answer together. It
// is longer than the database ping of /ready (2 s, server's readyTimeout),
// so that a slow database reads as its 503 rather than as a timeout, and
// shorter than the image's HEALTHCHECK --timeout (5 s), so that the probe
// reports its own failure instead of being killed.
const healthcheckTimeout = 3 * time.Second

// healthcheckBodyLimit bounds what is read of an answer: /health and
// /ready answer a few dozen bytes of JSON.
const healthcheckBodyLimit = 4 << 10

// healthcheckUsage is the usage line of `obsqra healthcheck`.
const healthcheckUsage = "usage: obsqra healthcheck [-ready]"

// runHealthcheck is `obsqra healthcheck`, the container's health check
// (the image has no shell, hence no curl): it asks the server that cfg
// configures, on this machine, whether it is alive, and prints one line.
// It returns nil when the server answered 200, and an error of one line
// otherwise, on which main exits with status 1, Docker's "unhealthy".
//
// It asks /health, which answers while the process serves HTTP and
// touches nothing else: an unhealthy container is one to restart (Docker
// Swarm, autoheal and orchestrators act so), and restarting servers
// because their database is slow or down would only add their starts to
// the outage while curing nothing. With -ready it asks /ready instead (the
// database answers a ping and no shutdown has begun), the question of a
// load balancer deciding where to send requests.
func runHealthcheck(ctx context.Context, cfg *config.Config, args []string, stdout io.Writer) error {
	flags := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	flags.SetOutput(io.Discard)
	ready := flags.Bool("ready", false, "ask /ready (database answering, not shutting down) instead of /health")
	if err := flags.Parse(args); err != nil || flags.NArg() > 0 {
		return errors.New(healthcheckUsage)
	}
	path := "/health"
	if *ready {
		path = "/ready"
	}
	target := "http://" + net.JoinHostPort(probeHost(cfg.APIHost), strconv.Itoa(cfg.APIPort)) + path
	if err := probe(ctx, target); err != nil {
		return fmt.Errorf("unhealthy: GET %s: %w", target, err)
	}
	fmt.Fprintf(stdout, "healthy: GET %s answered 200\n", target)
	return nil
}

// probeHost is the host the health check connects to: the loopback
// address when the server listens on every interface (API_HOST 0.0.0.0,
// its default, or ::, which Go listens on for IPv4 too), else the
// interface it listens on.
func probeHost(apiHost string) string {
	switch apiHost {
	case "", "0.0.0.0", "::":
		return "127.0.0.1"
	}
	return apiHost
}

// probe GETs target within healthcheckTimeout and returns nil when it
// answers 200. An error says what went wrong in a few words: the
// connection's failure, or the status and the answer's reason.
func probe(ctx context.Context, target string) error {
	ctx, cancel := context.WithTimeout(ctx, healthcheckTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return err
	}
	// No proxy from the environment (HTTP_PROXY would otherwise apply to a
	// non-loopback API_HOST), and no connection kept: the process exits.
	client := &http.Client{Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true}}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("no answer within %s", healthcheckTimeout)
		}
		// The cause alone: the *url.Error's method and URL are in our
		// message already.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			return uerr.Err
		}
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var answer struct {
		Status, Reason string
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, healthcheckBodyLimit))
	if json.Unmarshal(body, &answer) == nil && answer.Reason != "" {
		return fmt.Errorf("%s (%s)", resp.Status, answer.Reason)
	}
	return errors.New(resp.Status)
}
