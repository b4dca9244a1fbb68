package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Selections of the signed-in read path of issue 21, one top-level field
// each, so that the signedIn shape is the three in one document.
const (
	dashboardSelection = `dashboard(windowDays: 7) {
    id windowDays expectedApyBps portfolioRiskScore portfolioRiskChange realisedApyBps
    latestAllocation { id weights { protocol { slug } weightBps } createdAt }
    protocols { protocol { slug name } weightBps riskScore riskChange apyBps apyChangeBps apySlopeBpsPerDay expectedApyBps }
    pendingSuggestion {
      id expectedImprovementBps costUsd breakEvenDays clearsThreshold thresholdBps confidence tolerance decisionId createdAt
      current { protocol { slug } weightBps }
      target { protocol { slug } weightBps }
      trades { protocol { slug } fromBps toBps amountUsd }
    }
  }`
	allocationHistorySelection = `allocationHistory(first: 20) {
    edges { cursor node { id weights { protocol { slug } weightBps } reason createdAt } }
    pageInfo { hasNextPage endCursor }
  }`
	transactionsSelection = `transactions(first: 20) {
    edges { cursor node { id txHash status createdAt } }
    pageInfo { hasNextPage endCursor }
  }`
)

// shape is one request the bench repeats: a GraphQL document of one or
// more of the selections above.
type shape struct {
	name string
	// fields are the top-level fields the document asks for, which its
	// answer must hold with data.
	fields []string
	body   []byte // the POST /graphql body
}

// shapes returns the four shapes of the signed-in read path, in the order
// they are measured.
func shapes() []shape {
	one := func(name, sel string) shape {
		return newShape(name, []string{name}, sel)
	}
	return []shape{
		one("dashboard", dashboardSelection),
		one("allocationHistory", allocationHistorySelection),
		one("transactions", transactionsSelection),
		newShape("signedIn", []string{"dashboard", "allocationHistory", "transactions"},
			dashboardSelection+"\n  "+allocationHistorySelection+"\n  "+transactionsSelection),
	}
}

func newShape(name string, fields []string, selection string) shape {
	// The document is sent as written (its spaces and newlines included),
	// as a client would send it; json.Marshal of a string cannot fail.
	body, _ := json.Marshal(struct {
		Query string `json:"query"`
	}{"{\n  " + selection + "\n}"})
	return shape{name: name, fields: fields, body: body}
}

// check verifies an answer to s: no errors, and data in every field of
// it: a dashboard with an allocation and its protocols, connections with
// edges. It returns whether the dashboard has a pending suggestion.
func (s shape) check(answer []byte) (pending bool, err error) {
	var resp struct {
		Data struct {
			Dashboard *struct {
				LatestAllocation  *struct{ ID string }
				Protocols         []json.RawMessage
				PendingSuggestion *struct{ ID string }
			}
			AllocationHistory *connection
			Transactions      *connection
		}
		Errors []json.RawMessage
	}
	if err := json.Unmarshal(answer, &resp); err != nil {
		return false, fmt.Errorf("%s: answer is not JSON (%w): %.300s", s.name, err, answer)
	}
	if len(resp.Errors) > 0 {
		return false, fmt.Errorf("%s: errors: %.500s", s.name, answer)
	}
	for _, f := range s.fields {
		var empty bool
		switch d := resp.Data; f {
		case "dashboard":
			empty = d.Dashboard == nil || d.Dashboard.LatestAllocation == nil || len(d.Dashboard.Protocols) == 0
			pending = d.Dashboard != nil && d.Dashboard.PendingSuggestion != nil
		case "allocationHistory":
			empty = d.AllocationHistory == nil || len(d.AllocationHistory.Edges) == 0
		case "transactions":
			empty = d.Transactions == nil || len(d.Transactions.Edges) == 0
		}
		if empty {
			return false, fmt.Errorf("%s: no data in %s: %.500s", s.name, f, answer)
		}
	}
	return pending, nil
}

// connection is what check reads of a connection.
type connection struct {
	Edges []json.RawMessage
}

// gqlClient sends single GraphQL operations, for the seeding and the
// checks; the load goes through load.go.
type gqlClient struct {
	http *http.Client
	url  string // the server's /graphql
}

// do sends query with variables, signed in with token unless it is "",
// and decodes the answer's data into out. An answer with errors is an
// error that quotes them.
func (c gqlClient) do(ctx context.Context, token, query string, variables map[string]any, out any) error {
	body, err := json.Marshal(map[string]any{"query": query, "variables": variables})
	if err != nil {
		return fmt.Errorf("encode request: %w", err)
	}
	raw, err := c.post(ctx, token, body)
	if err != nil {
		return err
	}
	var resp struct {
		Data   json.RawMessage
		Errors []struct{ Message string }
	}
	if err := json.Unmarshal(raw, &resp); err != nil {
		return fmt.Errorf("decode answer (%w): %.300s", err, raw)
	}
	if len(resp.Errors) > 0 {
		msgs := make([]string, len(resp.Errors))
		for i, e := range resp.Errors {
			msgs[i] = e.Message
		}
		return fmt.Errorf("graphql errors: %s", strings.Join(msgs, "; "))
	}
	if err := json.Unmarshal(resp.Data, out); err != nil {
		return fmt.Errorf("decode data (%w): %.300s", err, resp.Data)
	}
	return nil
}

// post sends body to /graphql and returns the answer of a 2xx status.
func (c gqlClient) post(ctx context.Context, token string, body []byte) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("POST %s: %w", c.url, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("read answer of %s: %w", c.url, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, fmt.Errorf("POST %s: HTTP %d: %.300s", c.url, resp.StatusCode, raw)
	}
	return raw, nil
}
