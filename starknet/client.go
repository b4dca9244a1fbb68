// Package starknet talks to Starknet nodes over JSON-RPC (spec 0.9) and
// builds and checks what a wallet signs: SNIP-12 typed data, and the
// account contract's is_valid_signature. It uses
// github.com/NethermindEth/starknet.go for the cryptography (SNIP-12
// hashing, Starknet Keccak) and speaks JSON-RPC itself, so that one
// request can fail over between several nodes.
//
// Addresses and hashes are obsqra.Felt everywhere, so "0xABC" and
// "0x0…0abc" are the same wallet.
package starknet

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/obsqra/obsqra"
)

// Networks that STARKNET_NETWORK names, and their chain ids.
const (
	NetworkSepolia = "sepolia"
	NetworkMainnet = "mainnet"

	ChainSepolia = "SN_SEPOLIA"
	ChainMainnet = "SN_MAIN"
)

// ChainIDOf returns the chain id of a network name (sepolia → SN_SEPOLIA,
// mainnet → SN_MAIN; case does not matter). Any other name is EINVALID.
func ChainIDOf(network string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(network)) {
	case NetworkSepolia:
		return ChainSepolia, nil
	case NetworkMainnet:
		return ChainMainnet, nil
	}
	return "", obsqra.Errorf(obsqra.EINVALID, "STARKNET_NETWORK must be %s or %s, not %q", NetworkSepolia, NetworkMainnet, network)
}

// Config configures a Client. Zero fields take their defaults.
type Config struct {
	// URLs are the JSON-RPC endpoints, in order of preference. Required.
	// They may carry an API key: errors and logs name an endpoint by its
	// number and host only.
	URLs []string
	// Network is "sepolia" or "mainnet"; it fixes the chain id that every
	// node must report (SN_SEPOLIA, SN_MAIN). Required.
	Network string
	// Timeout bounds one request to one node, answer body included.
	// Default 10 s.
	Timeout time.Duration
	// Rounds is how many times the whole list of endpoints is tried before
	// a request fails with ErrUnavailable. Default 3.
	Rounds int
	// Backoff is the wait after the first round in which every endpoint
	// failed; it doubles after each later round up to MaxBackoff, and each
	// wait is drawn uniformly from its upper half (jitter). Default 250 ms.
	Backoff time.Duration
	// MaxBackoff caps the wait between rounds. Default 5 s.
	MaxBackoff time.Duration
	// MaxResponseBytes caps an answer's body; a longer one is a failure of
	// that node. Default 16 MiB.
	MaxResponseBytes int64
	// HTTPClient sends the requests. Default: a client of its own with
	// no overall timeout (Timeout bounds each request).
	HTTPClient *http.Client
	// TracerProvider, when set, traces each request to a node inside a
	// recorded span (see trace.go). Default nil: none.
	TracerProvider trace.TracerProvider
	// Logger receives a warning when a request succeeded only after
	// failing over. Default slog.Default().
	Logger *slog.Logger
	// Wait waits d or until ctx ends, returning ctx's error in that case.
	// Default: a timer. Tests set it so that no test sleeps.
	Wait func(ctx context.Context, d time.Duration) error
	// Rand returns a uniform number in [0, 1) for the jitter. Default
	// math/rand/v2's Float64.
	Rand func() float64
	// Observer is told of every call and every failover, for metrics.
	// Default: nobody.
	Observer Observer
}

// Observer is told what a Client does (*telemetry.Starknet is one). Its
// methods must be quick: they are called on the callers' goroutines.
type Observer interface {
	// RPCCall: a call of method (a JSON-RPC method name such as
	// starknet_call) ended with outcome (one of the Outcome constants)
	// after took, failovers and backoff included.
	RPCCall(method, outcome string, took time.Duration)
	// RPCFailover: a call was answered by another node than the one it
	// was sent to first, which is the one asked first from then on.
	RPCFailover()
}

// Outcomes of a call, as Observer.RPCCall reports them.
const (
	// OutcomeOK: a node answered with a result.
	OutcomeOK = "ok"
	// OutcomeRPCError: a node answered with a JSON-RPC error (*RPCError).
	OutcomeRPCError = "rpc_error"
	// OutcomeUnavailable: no node answered (*UnavailableError).
	OutcomeUnavailable = "unavailable"
	// OutcomeCancelled: the caller's context ended first.
	OutcomeCancelled = "cancelled"
	// OutcomeError: anything else (an answer that does not decode).
	OutcomeError = "error"
)

// outcomeOf is the outcome of a call that returned err.
func outcomeOf(err error) string {
	var rpcErr *RPCError
	var unavailable *UnavailableError
	switch {
	case err == nil:
		return OutcomeOK
	case errors.As(err, &rpcErr):
		return OutcomeRPCError
	case errors.As(err, &unavailable):
		return OutcomeUnavailable
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		return OutcomeCancelled
	}
	return OutcomeError
}

// nobody is the Observer that ignores everything.
type nobody struct{}

func (nobody) RPCCall(string, string, time.Duration) {}
func (nobody) RPCFailover()                          {}

func (c Config) withDefaults() Config {
	if c.Timeout <= 0 {
		c.Timeout = 10 * time.Second
	}
	if c.Rounds <= 0 {
		c.Rounds = 3
	}
	if c.Backoff <= 0 {
		c.Backoff = 250 * time.Millisecond
	}
	if c.MaxBackoff <= 0 {
		c.MaxBackoff = 5 * time.Second
	}
	if c.MaxResponseBytes <= 0 {
		c.MaxResponseBytes = 16 << 20
	}
	if c.HTTPClient == nil {
		c.HTTPClient = &http.Client{}
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Wait == nil {
		c.Wait = obsqra.Sleep
	}
	if c.Rand == nil {
		c.Rand = rand.Float64
	}
	if c.Observer == nil {
		c.Observer = nobody{}
	}
	return c
}

// Client is a Starknet JSON-RPC client over one or more nodes of one
// network. A request goes to the endpoint that answered last and fails
// over to the next one, in order, on anything that is not an answer: a
// timeout, a refused or dropped connection, an HTTP error status (5xx,
// 429, 401, …), a malformed body. When every endpoint has failed, it
// waits (see Config.Backoff) and tries the list again, Config.Rounds
// times in all, then returns an *UnavailableError. A JSON-RPC error
// (with status 200, or 400) is an answer: it comes back at once as an
// *RPCError.
//
// Before its first use, each endpoint's chain id is checked against the
// network's; a node on another chain is not used (see CheckChain).
//
// A Client is safe for concurrent use.
type Client struct {
	cfg       Config
	chainID   string
	endpoints []*endpoint
	// preferred is the index of the endpoint that answered last.
	preferred atomic.Int64
	ids       atomic.Uint64
}

// endpoint is one node and what is known of its chain.
type endpoint struct {
	url string
	// name identifies the node in errors and logs without its URL's path
	// or query, where API keys live: "node 2 (rpc.example.com)".
	name string

	mu sync.Mutex
	// checked is set once the node reported the right chain id.
	checked bool
	// refused is set once the node reported another chain id; it is not
	// used until a CheckChain finds it on the right chain.
	refused *ChainMismatchError
}

// New returns a Client for cfg. It sends nothing: CheckChain does, and
// so does the first request to each node. A missing or malformed URL or
// network is EINVALID.
func New(cfg Config) (*Client, error) {
	cfg = cfg.withDefaults()
	chainID, err := ChainIDOf(cfg.Network)
	if err != nil {
		return nil, err
	}
	cfg.Network = strings.ToLower(strings.TrimSpace(cfg.Network))
	if len(cfg.URLs) == 0 {
		return nil, obsqra.Errorf(obsqra.EINVALID, "no Starknet RPC URL is configured (STARKNET_RPC_URL)")
	}
	c := &Client{cfg: cfg, chainID: chainID}
	for i, raw := range cfg.URLs {
		u, err := url.Parse(strings.TrimSpace(raw))
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			// The URL itself is not quoted: it may hold an API key.
			return nil, obsqra.Errorf(obsqra.EINVALID, "Starknet RPC URL %d of %d is not an http or https URL (STARKNET_RPC_URL)", i+1, len(cfg.URLs))
		}
		c.endpoints = append(c.endpoints, &endpoint{url: u.String(), name: fmt.Sprintf("node %d (%s)", i+1, u.Host)})
	}
	return c, nil
}

// Network returns the configured network, "sepolia" or "mainnet".
func (c *Client) Network() string { return c.cfg.Network }

// ExpectedChainID returns the chain id of the configured network,
// "SN_SEPOLIA" or "SN_MAIN": the one every node must report, and the one
// wallet challenges are signed for.
func (c *Client) ExpectedChainID() string { return c.chainID }

// CheckChain asks every endpoint for its chain id, once each, without
// failing over or retrying. It returns a *ChainMismatchError (errors.Is
// ErrChainMismatch) naming the node, the expected and the actual chain id
// when a node is on another chain; the client does not use that node
// until a later CheckChain finds it on the right one. It returns an
// *UnavailableError when no node answered. A node that does not answer
// while another does is not an error: it is checked before its first use.
func (c *Client) CheckChain(ctx context.Context) error {
	var causes []error
	var mismatch *ChainMismatchError
	answered := 0
	for _, ep := range c.endpoints {
		err := c.askChain(ctx, ep)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("starknet: check chain id: %w", ctxErr)
		}
		var m *ChainMismatchError
		switch {
		case errors.As(err, &m):
			if mismatch == nil {
				mismatch = m
			}
		case err != nil:
			causes = append(causes, fmt.Errorf("%s: %w", ep.name, err))
		default:
			answered++
		}
	}
	if mismatch != nil {
		return mismatch
	} else if answered == 0 {
		return &UnavailableError{Method: "starknet_chainId", Causes: causes}
	}
	return nil
}

// check makes sure ep is on the configured chain, asking it the first
// time. Two concurrent first requests may both ask; the answers agree.
func (c *Client) check(ctx context.Context, ep *endpoint) error {
	ep.mu.Lock()
	checked, refused := ep.checked, ep.refused
	ep.mu.Unlock()
	if refused != nil {
		return refused
	} else if checked {
		return nil
	}
	return c.askChain(ctx, ep)
}

// askChain asks ep for its chain id and records whether it may be used.
// An error of the exchange is returned, with no verdict recorded.
func (c *Client) askChain(ctx context.Context, ep *endpoint) error {
	raw, err := c.post(ctx, ep, "starknet_chainId", nil)
	if err != nil {
		return fmt.Errorf("check chain id: %w", err)
	}
	actual, err := decodeChainID(raw)
	if err != nil {
		return fmt.Errorf("check chain id: %w", err)
	}
	ep.mu.Lock()
	defer ep.mu.Unlock()
	if actual != c.chainID {
		ep.checked, ep.refused = false, &ChainMismatchError{Endpoint: ep.name, Network: c.cfg.Network, Expected: c.chainID, Actual: actual}
		return ep.refused
	}
	ep.checked, ep.refused = true, nil
	return nil
}

// call sends method with params and decodes the result into result,
// failing over between endpoints as the Client's comment describes, and
// tells the Observer how it went. Errors start with the method's name.
func (c *Client) call(ctx context.Context, method string, params any, result any) error {
	start := time.Now()
	err := c.exchange(ctx, method, params, result)
	c.cfg.Observer.RPCCall(method, outcomeOf(err), time.Since(start))
	return err
}

// exchange is call without the Observer.
func (c *Client) exchange(ctx context.Context, method string, params any, result any) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	var causes []error
	n := len(c.endpoints)
	start := int(c.preferred.Load())
	refused := make([]bool, n) // nodes found on another chain, reported once
	for round := 0; round < c.cfg.Rounds; round++ {
		if round > 0 {
			if err := c.cfg.Wait(ctx, c.backoff(round)); err != nil {
				return fmt.Errorf("%s: %w (after %d failed attempts, the last: %w)", method, err, len(causes), causes[len(causes)-1])
			}
		}
		usable := 0
		for k := range n {
			i := (start + k) % n
			ep := c.endpoints[i]
			if method != "starknet_chainId" { // the chain id is the check itself
				err := c.check(ctx, ep)
				var mismatch *ChainMismatchError
				switch {
				case errors.As(err, &mismatch):
					if !refused[i] {
						refused[i] = true
						causes = append(causes, mismatch)
					}
					continue
				case err != nil:
					usable++
					if ctxErr := ctx.Err(); ctxErr != nil {
						return fmt.Errorf("%s: %w", method, ctxErr)
					}
					causes = append(causes, fmt.Errorf("%s: %w", ep.name, err))
					continue
				}
			}
			usable++
			raw, err := c.post(ctx, ep, method, params)
			if err == nil {
				if i != start {
					c.cfg.Observer.RPCFailover()
				}
				c.preferred.Store(int64(i))
				if len(causes) > 0 {
					c.cfg.Logger.Warn("starknet: node answered after failover", "method", method, "node", ep.name,
						"failed_attempts", len(causes), "failures", joinErrors(causes))
				}
				if err := json.Unmarshal(raw, result); err != nil {
					return fmt.Errorf("%s: decode the answer of %s: %w", method, ep.name, err)
				}
				return nil
			}
			if ctxErr := ctx.Err(); ctxErr != nil {
				return fmt.Errorf("%s: %w", method, ctxErr)
			}
			var rpcErr *RPCError
			if errors.As(err, &rpcErr) {
				return fmt.Errorf("%s: %w", method, rpcErr)
			}
			causes = append(causes, fmt.Errorf("%s: %w", ep.name, err))
		}
		if usable == 0 {
			break // every node is on another chain: waiting will not change that
		}
	}
	return &UnavailableError{Method: method, Causes: causes}
}

// backoff returns the jittered wait before round (1 for the second).
func (c *Client) backoff(round int) time.Duration {
	return obsqra.Backoff{Base: c.cfg.Backoff, Max: c.cfg.MaxBackoff}.Delay(round, c.cfg.Rand)
}

type rpcRequest struct {
	JSONRPC string `json:"jsonrpc"`
	ID      uint64 `json:"id"`
	Method  string `json:"method"`
	Params  any    `json:"params"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  json.RawMessage `json:"result"`
	Error   *struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data"`
	} `json:"error"`
}

// post makes one request to one node and returns its result. A JSON-RPC
// error comes back as *RPCError; any other error is a failure of the
// node. nil params are sent as [].
func (c *Client) post(ctx context.Context, ep *endpoint, method string, params any) (_ json.RawMessage, err error) {
	ctx, span := c.startRequest(ctx, ep, method)
	defer func() { span.end(err) }()
	if params == nil {
		params = []any{}
	}
	id := c.ids.Add(1)
	body, err := json.Marshal(rpcRequest{JSONRPC: "2.0", ID: id, Method: method, Params: params})
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	actx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, ep.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := c.cfg.HTTPClient.Do(req)
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, c.cfg.MaxResponseBytes+1))
	if err != nil {
		return nil, c.transportError(ctx, err)
	}
	if int64(len(data)) > c.cfg.MaxResponseBytes {
		return nil, fmt.Errorf("answer larger than %d bytes", c.cfg.MaxResponseBytes)
	}

	var r rpcResponse
	decodeErr := json.Unmarshal(data, &r)
	if resp.StatusCode != http.StatusOK {
		// Some gateways send a JSON-RPC error about the request (invalid
		// params) with a 400; it is still the answer. Any other status is
		// this endpoint's trouble, whatever its body says: a 5xx, a 429,
		// or a 401 or 403 of an API key that another endpoint may not
		// share.
		if resp.StatusCode == http.StatusBadRequest && decodeErr == nil && r.Error != nil && string(r.ID) == fmt.Sprint(id) {
			return nil, &RPCError{Code: r.Error.Code, Message: r.Error.Message, Data: r.Error.Data}
		}
		return nil, fmt.Errorf("HTTP %s: %q", resp.Status, obsqra.Clip(string(data), 200))
	}
	if decodeErr != nil {
		return nil, fmt.Errorf("malformed JSON-RPC answer: %w", decodeErr)
	}
	if r.JSONRPC != "2.0" || string(r.ID) != fmt.Sprint(id) {
		return nil, fmt.Errorf("malformed JSON-RPC answer: jsonrpc %q and id %s, want \"2.0\" and %d", r.JSONRPC, obsqra.Clip(string(r.ID), 80), id)
	}
	if r.Error != nil {
		return nil, &RPCError{Code: r.Error.Code, Message: r.Error.Message, Data: r.Error.Data}
	}
	if len(r.Result) == 0 || string(r.Result) == "null" {
		return nil, errors.New("malformed JSON-RPC answer: neither a result nor an error")
	}
	return r.Result, nil
}

// transportError describes a failed exchange without the request's URL
// (*url.Error quotes it, and it may carry an API key), and turns the
// request's own deadline into a plain timeout, so that the caller does not
// take it for the expiry of its context.
func (c *Client) transportError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	if errors.Is(err, context.DeadlineExceeded) || (ue != nil && ue.Timeout()) {
		return fmt.Errorf("no answer within %s", c.cfg.Timeout)
	}
	return fmt.Errorf("request failed: %w", err)
}
