package server_test

import (
	"context"
	"errors"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"

	"github.com/obsqra/obsqra"
	"github.com/obsqra/obsqra/alert"
	"github.com/obsqra/obsqra/server"
	"github.com/obsqra/obsqra/store"
	"github.com/obsqra/obsqra/store/storetest"
)

// unsubscriberFunc is an Unsubscriber of a function.
type unsubscriberFunc func(ctx context.Context, token string) error

func (f unsubscriberFunc) Unsubscribe(ctx context.Context, token string) error { return f(ctx, token) }

// mustURL parses s.
func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("url.Parse(%q) = %v", s, err)
	}
	return u
}

func TestUnsubscribe(t *testing.T) {
	t.Parallel()
	storetest.Each(t, func(t *testing.T, db *store.DB) {
		t.Parallel()
		ctx := context.Background()
		alerts, err := alert.New(db, alert.Config{Secret: []byte("unsubscribe tests' secret"), PublicAPIURL: "https://api.example"})
		if err != nil {
			t.Fatal(err)
		}
		b := setup(t, func(c *server.Config) { c.Unsubscriber = alerts })
		user := func(email string) *obsqra.User {
			u := &obsqra.User{Email: email, PasswordHash: "x", Role: obsqra.RoleUser, Active: true, EmailVerified: true,
				Preferences: obsqra.DefaultPreferences()}
			u.Preferences.EmailAlerts = true
			if err := db.WithTx(ctx, func(tx *store.Tx) error { return tx.CreateUser(ctx, u) }); err != nil {
				t.Fatalf("CreateUser() = %v", err)
			}
			return u
		}
		on := func(u *obsqra.User) bool {
			got, err := db.UserByID(ctx, u.ID)
			if err != nil {
				t.Fatalf("UserByID() = %v", err)
			}
			return got.Preferences.EmailAlerts
		}
		ada, bob := user("ada@example.com"), user("bob@example.com")
		link := alerts.UnsubscribeURL(ada.ID)
		target := strings.TrimPrefix(link, "https://api.example")

		t.Run("GET shows a form and changes nothing", func(t *testing.T) {
			rec := b.serve(httptest.NewRequest(http.MethodGet, target, nil))
			if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
				t.Fatalf("GET = %d %s, want 200 HTML", rec.Code, rec.Header().Get("Content-Type"))
			}
			action := regexp.MustCompile(`<form method="post" action="([^"]+)"`).FindStringSubmatch(rec.Body.String())
			base, _ := url.Parse("https://api.example/prefix" + target)
			if action == nil || base.ResolveReference(mustURL(t, html.UnescapeString(action[1]))).String() != "https://api.example/prefix"+target {
				t.Errorf("GET page's form = %v, want it to POST to %s:\n%s", action, target, rec.Body)
			}
			if rec.Header().Get("Referrer-Policy") != "no-referrer" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Errorf("GET headers = %v, want no-referrer and no-store", rec.Header())
			}
			if !on(ada) {
				t.Errorf("alerts after GET = off, want on")
			}
		})

		t.Run("bad tokens are 400", func(t *testing.T) {
			tampered := []byte(target)
			tampered[len(tampered)-2] ^= 1
			for _, bad := range []string{"/unsubscribe", "/unsubscribe?token=", "/unsubscribe?token=forged", string(tampered)} {
				rec := b.serve(httptest.NewRequest(http.MethodPost, bad, strings.NewReader("List-Unsubscribe=One-Click")))
				if rec.Code != http.StatusBadRequest || !strings.Contains(rec.Body.String(), "link") {
					t.Errorf("POST %s = %d %q, want 400 with an explanation", bad, rec.Code, rec.Body)
				}
			}
			if !on(ada) || !on(bob) {
				t.Errorf("alerts after bad tokens = %v, %v, want on, on", on(ada), on(bob))
			}
		})

		t.Run("one-click POST", func(t *testing.T) {
			for range 2 { // a second click is no error
				req := httptest.NewRequest(http.MethodPost, target, strings.NewReader("List-Unsubscribe=One-Click"))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if rec := b.serve(req); rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), "unsubscribed") {
					t.Fatalf("POST = %d %q, want 200", rec.Code, rec.Body)
				}
			}
			if on(ada) || !on(bob) {
				t.Errorf("alerts after ada's POST = %v, %v, want off for ada only", on(ada), on(bob))
			}
		})
	})
}

func TestUnsubscribeFailures(t *testing.T) {
	t.Parallel()
	fail := errors.New("database on fire")
	b := setup(t, func(c *server.Config) {
		c.Unsubscriber = unsubscriberFunc(func(context.Context, string) error { return fail })
	})
	rec := b.serve(httptest.NewRequest(http.MethodPost, "/unsubscribe?token=x", nil))
	if rec.Code != http.StatusInternalServerError || strings.Contains(rec.Body.String(), "fire") {
		t.Errorf("POST with a failing store = %d %q, want 500 without details", rec.Code, rec.Body)
	}
	if len(b.logs.entries(t, "unsubscribe failed")) != 1 {
		t.Errorf("logs = %s, want the failure logged once", b.logs)
	}

	none := setup(t)
	if rec := none.serve(httptest.NewRequest(http.MethodPost, "/unsubscribe?token=x", nil)); rec.Code != http.StatusNotFound {
		t.Errorf("POST without an Unsubscriber = %d, want 404", rec.Code)
	}
}
