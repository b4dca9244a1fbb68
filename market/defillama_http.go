// This file holds DefiLlama's HTTP client: one GET with its retries, the
// backoff between them, Retry-After, and which failures are permanent.

package market

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/obsqra/obsqra"
)

// llamaStatusError is a response with a status other than 2xx.
type llamaStatusError struct {
	code int
	// retryAfter is the wait the server asked for, 0 if none.
	retryAfter time.Duration
	// body is the start of the response body, for the log.
	body string
}

func (e *llamaStatusError) Error() string {
	msg := fmt.Sprintf("status %d %s", e.code, http.StatusText(e.code))
	if e.retryAfter > 0 {
		msg += fmt.Sprintf(", retry after %s", e.retryAfter)
	}
	if e.body != "" {
		msg += fmt.Sprintf(": %q", e.body)
	}
	return msg
}

// llamaPermanent marks a failure that a retry would only repeat.
type llamaPermanent struct{ err error }

func (e *llamaPermanent) Error() string { return e.err.Error() }
func (e *llamaPermanent) Unwrap() error { return e.err }

// get requests path and hands the body to decode, trying again after a
// failure that may pass (see DefiLlamaConfig.Retries). decode must start
// its results afresh on every call.
func (d *DefiLlama) get(ctx context.Context, path string, decode func(io.Reader) error) error {
	for attempt := 1; ; attempt++ {
		err := d.try(ctx, path, decode)
		if err == nil {
			return nil
		}
		if ctxErr := ctx.Err(); ctxErr != nil {
			if errors.Is(err, ctxErr) {
				return fmt.Errorf("defillama: GET %s: %w", path, err)
			}
			return fmt.Errorf("defillama: GET %s: %w (attempt %d: %w)", path, ctxErr, attempt, err)
		}
		var perm *llamaPermanent
		if errors.As(err, &perm) {
			return fmt.Errorf("defillama: GET %s: %w", path, perm.err)
		}
		if attempt > d.cfg.Retries {
			if attempt == 1 {
				return fmt.Errorf("defillama: GET %s: %w", path, err)
			}
			return fmt.Errorf("defillama: GET %s: failed %d times, the last: %w", path, attempt, err)
		}
		wait := d.backoff(attempt)
		var status *llamaStatusError
		if errors.As(err, &status) && status.retryAfter > 0 {
			if status.retryAfter > d.cfg.MaxRetryAfter {
				return fmt.Errorf("defillama: GET %s: not retried, the wait asked for is longer than %s: %w", path, d.cfg.MaxRetryAfter, err)
			}
			wait = status.retryAfter
		}
		if werr := d.cfg.Wait(ctx, wait); werr != nil {
			return fmt.Errorf("defillama: GET %s: %w (attempt %d: %w)", path, werr, attempt, err)
		}
	}
}

// backoff returns the jittered wait after the attempt-th failure.
func (d *DefiLlama) backoff(attempt int) time.Duration {
	return obsqra.Backoff{Base: d.cfg.Backoff, Max: d.cfg.MaxBackoff}.Delay(attempt, d.cfg.Rand)
}

// try makes one attempt; a permanent failure comes as *llamaPermanent.
func (d *DefiLlama) try(ctx context.Context, path string, decode func(io.Reader) error) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.cfg.BaseURL+path, nil)
	if err != nil {
		return &llamaPermanent{err}
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.cfg.HTTPClient.Do(req)
	if err != nil {
		// Refused, reset, timed out: all may pass. *url.Error quotes the
		// URL, and a paid plan's carries its API key (DEFILLAMA_URL_FILE):
		// it quotes only the path here.
		var ue *url.Error
		if errors.As(err, &ue) {
			ue.URL = path
		}
		return err
	}
	defer resp.Body.Close()

	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		head, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		err := &llamaStatusError{
			code:       resp.StatusCode,
			retryAfter: llamaRetryAfter(resp.Header.Get("Retry-After"), d.cfg.Now()),
			body:       strings.ToValidUTF8(strings.TrimSpace(string(head)), "?"),
		}
		if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 {
			return err
		}
		return &llamaPermanent{err}
	}

	body := http.MaxBytesReader(nil, resp.Body, d.cfg.MaxBodyBytes)
	if err := decode(body); err != nil {
		var syntax *json.SyntaxError
		var shape *llamaShapeError
		var tooBig *http.MaxBytesError
		if errors.As(err, &syntax) || errors.As(err, &shape) || errors.As(err, &tooBig) {
			return &llamaPermanent{err}
		}
		return err // a body cut short: the connection dropped
	}
	// Let the connection be reused: read what little may follow.
	io.Copy(io.Discard, io.LimitReader(body, 4<<10))
	return nil
}

// llamaRetryAfter returns the wait a Retry-After header asks for: seconds
// or an HTTP date; 0 when absent, malformed or past.
func llamaRetryAfter(h string, now time.Time) time.Duration {
	h = strings.TrimSpace(h)
	if h == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(h, 10, 64); err == nil {
		if secs <= 0 {
			return 0
		}
		return time.Duration(min(secs, 1<<32)) * time.Second
	}
	if t, err := http.ParseTime(h); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}
