package resolvers_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/obsqratest"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// userPage is a page of Query.users as the tests select it.
type userPage struct {
	Edges []struct {
		Cursor string `json:"cursor"`
		Node   struct {
			ID            string `json:"id"`
			Email         string `json:"email"`
			Role          string `json:"role"`
			Active        bool   `json:"active"`
			EmailVerified bool   `json:"emailVerified"`
		} `json:"node"`
	} `json:"edges"`
	PageInfo struct {
		HasNextPage     bool    `json:"hasNextPage"`
		HasPreviousPage bool    `json:"hasPreviousPage"`
		StartCursor     *string `json:"startCursor"`
		EndCursor       *string `json:"endCursor"`
	} `json:"pageInfo"`
}

// emails returns the page's emails in order.
func (p userPage) emails() []string {
	out := []string{}
	for _, e := range p.Edges {
		out = append(out, e.Node.Email)
	}
	return out
}

const usersQuery = `query($f: UserFilter, $n: Int, $after: String) { users(filter: $f, first: $n, after: $after) {
	edges { cursor node { id email role active emailVerified } }
	pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }`

// TestUsersQuery: admins find accounts by email prefix (case-insensitive,
// % and _ literal), role, active and emailVerified, a page at a time;
// anyone else is refused; the field is priced per row like the other
// connections.
func TestUsersQuery(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		h := setup(t, db)
		admin := registerVia(t, h, "admin@example.com")
		user := registerVia(t, h, "ada@example.com")
		for _, email := range []string{"Ada.Byron@Example.com", "a%b@example.com", "abc@example.com", "a_b@example.com", "axb@example.com"} {
			registerVia(t, h, email)
		}
		gone := registerVia(t, h, "gone@example.com")
		if r := do(t, h, admin.AccessToken, `mutation($id: ID!) { setUserActive(userId: $id, active: false) { active } }`,
			map[string]any{"id": gone.User.ID}); len(r.Errors) != 0 {
			t.Fatalf("setUserActive: %+v", r.Errors)
		}
		// Newest first: the order of registration, reversed.
		all := []string{"gone@example.com", "axb@example.com", "a_b@example.com", "abc@example.com", "a%b@example.com",
			"Ada.Byron@Example.com", "ada@example.com", "admin@example.com"}

		users := func(t *testing.T, token string, vars map[string]any) (userPage, gqlResponse) {
			t.Helper()
			r := do(t, h, token, usersQuery, vars)
			var p userPage
			if len(r.Errors) == 0 {
				p = decode[userPage](t, r.Data["users"])
			}
			return p, r
		}

		obsqratest.Step(t, "admins only", func(t *testing.T) {
			for _, tt := range []struct{ who, token, code string }{
				{"anonymous", "", "UNAUTHENTICATED"},
				{"a user", user.AccessToken, "FORBIDDEN"},
			} {
				_, r := users(t, tt.token, nil)
				if r.code() != tt.code || string(r.Data["users"]) != "" && string(r.Data["users"]) != "null" {
					t.Errorf("users as %s = %s %+v, want %s", tt.who, r.Data["users"], r.Errors, tt.code)
				}
			}
		})

		obsqratest.Step(t, "filters", func(t *testing.T) {
			for _, tt := range []struct {
				name   string
				filter map[string]any
				want   []string
			}{
				{"none", nil, all},
				{"email prefix in another case", map[string]any{"emailPrefix": "ADA"}, []string{"Ada.Byron@Example.com", "ada@example.com"}},
				{"percent matches itself", map[string]any{"emailPrefix": "a%"}, []string{"a%b@example.com"}},
				{"underscore matches itself", map[string]any{"emailPrefix": "A_"}, []string{"a_b@example.com"}},
				{"role", map[string]any{"role": "ADMIN"}, []string{"admin@example.com"}},
				{"inactive", map[string]any{"active": false}, []string{"gone@example.com"}},
				{"verified", map[string]any{"emailVerified": true}, []string{}},
				{"unverified, active, by prefix", map[string]any{"emailVerified": false, "active": true, "emailPrefix": "ab"}, []string{"abc@example.com"}},
			} {
				p, r := users(t, admin.AccessToken, map[string]any{"f": tt.filter})
				if len(r.Errors) != 0 {
					t.Errorf("users(%s): %+v", tt.name, r.Errors)
					continue
				}
				if got := p.emails(); !slices.Equal(got, tt.want) {
					t.Errorf("users(%s) = %q, want %q", tt.name, got, tt.want)
				}
			}
		})

		obsqratest.Step(t, "pages", func(t *testing.T) {
			// first = the users there are: one page, no next.
			p, r := users(t, admin.AccessToken, map[string]any{"n": len(all)})
			if len(r.Errors) != 0 || !slices.Equal(p.emails(), all) || p.PageInfo.HasNextPage || p.PageInfo.HasPreviousPage {
				t.Fatalf("users(first %d) = %q %+v %+v, want every user and no next page", len(all), p.emails(), p.PageInfo, r.Errors)
			}
			// One fewer: a next page holding the oldest.
			p, r = users(t, admin.AccessToken, map[string]any{"n": len(all) - 1})
			if len(r.Errors) != 0 || !slices.Equal(p.emails(), all[:len(all)-1]) || !p.PageInfo.HasNextPage ||
				p.PageInfo.EndCursor == nil || *p.PageInfo.EndCursor != p.Edges[len(p.Edges)-1].Cursor ||
				p.PageInfo.StartCursor == nil || *p.PageInfo.StartCursor != p.Edges[0].Cursor {
				t.Fatalf("users(first %d) = %q %+v %+v, want all but the oldest and a next page", len(all)-1, p.emails(), p.PageInfo, r.Errors)
			}
			next, r := users(t, admin.AccessToken, map[string]any{"n": len(all) - 1, "after": *p.PageInfo.EndCursor})
			if len(r.Errors) != 0 || !slices.Equal(next.emails(), all[len(all)-1:]) || next.PageInfo.HasNextPage || !next.PageInfo.HasPreviousPage {
				t.Fatalf("users(after the end cursor) = %q %+v %+v, want the oldest alone", next.emails(), next.PageInfo, r.Errors)
			}
			// Past the end: an empty page without cursors.
			last, r := users(t, admin.AccessToken, map[string]any{"after": *next.PageInfo.EndCursor})
			if len(r.Errors) != 0 || len(last.Edges) != 0 || last.PageInfo.HasNextPage || last.PageInfo.StartCursor != nil || last.PageInfo.EndCursor != nil {
				t.Fatalf("users(after the oldest) = %q %+v %+v, want an empty page", last.emails(), last.PageInfo, r.Errors)
			}
			// A filter with a cursor continues the filtered walk.
			p, r = users(t, admin.AccessToken, map[string]any{"f": map[string]any{"emailPrefix": "a"}, "n": 2})
			if len(r.Errors) != 0 || !slices.Equal(p.emails(), []string{"axb@example.com", "a_b@example.com"}) || !p.PageInfo.HasNextPage {
				t.Fatalf("users(prefix a, first 2) = %q %+v %+v", p.emails(), p.PageInfo, r.Errors)
			}
			p, r = users(t, admin.AccessToken, map[string]any{"f": map[string]any{"emailPrefix": "a"}, "n": 2, "after": *p.PageInfo.EndCursor})
			if len(r.Errors) != 0 || !slices.Equal(p.emails(), []string{"abc@example.com", "a%b@example.com"}) || !p.PageInfo.HasNextPage {
				t.Fatalf("users(prefix a, first 2, page 2) = %q %+v %+v", p.emails(), p.PageInfo, r.Errors)
			}
		})

		obsqratest.Step(t, "bounds of first and after", func(t *testing.T) {
			if _, r := users(t, admin.AccessToken, map[string]any{"n": 100}); len(r.Errors) != 0 {
				t.Errorf("users(first 100): %+v, want a page", r.Errors)
			}
			for _, vars := range []map[string]any{
				{"n": 101}, {"n": 0}, {"n": -1},
				{"after": "bogus"},
				{"after": "aDox"}, // base64url of "h:1", a history cursor
				{"f": map[string]any{"emailPrefix": strings.Repeat("a", 255)}},
				{"f": map[string]any{"role": "ROOT"}},
			} {
				_, r := users(t, admin.AccessToken, vars)
				if c := r.code(); c != "BAD_USER_INPUT" && c != "GRAPHQL_VALIDATION_FAILED" {
					t.Errorf("users(%v) = %+v, want BAD_USER_INPUT", vars, r.Errors)
				}
			}
			_, r := users(t, admin.AccessToken, map[string]any{"n": 101})
			if len(r.Errors) == 0 || r.code() != "BAD_USER_INPUT" || !strings.Contains(r.Errors[0].Message, "first must be between 1 and 100, got 101") {
				t.Errorf("users(first 101) = %+v, want BAD_USER_INPUT naming the bounds", r.Errors)
			}
		})

		obsqratest.Step(t, "complexity", func(t *testing.T) {
			// A row of every field costs about 20; three full pages of 100
			// are past the budget of 5,000, one is not.
			const row = `edges { cursor node { id email fullName walletAddress emailVerified role active createdAt
				preferences { riskTolerance autoRebalance rebalanceThresholdBps maxSingleBps minDiversification emailAlerts } } }`
			one := `{ users(first: 100) { ` + row + ` } }`
			r := do(t, h, admin.AccessToken, one, nil)
			if len(r.Errors) != 0 {
				t.Errorf("one page of 100 users: %+v", r.Errors)
			}
			var three strings.Builder
			three.WriteString("{")
			for i := range 3 {
				fmt.Fprintf(&three, " u%d: users(first: 100) { %s }", i, row)
			}
			three.WriteString(" }")
			r = do(t, h, admin.AccessToken, three.String(), nil)
			if r.code() != "COMPLEXITY_LIMIT_EXCEEDED" {
				raw, _ := json.Marshal(r.Errors)
				t.Errorf("three pages of 100 users: %s, want COMPLEXITY_LIMIT_EXCEEDED", raw)
			}
		})
	})
}
