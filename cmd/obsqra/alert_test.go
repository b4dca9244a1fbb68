package main

import (
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/alert"
)

// TestServeUnsubscribe: the server serves the alert mails' one-click
// unsubscribe on its own routes, with tokens signed by SECRET_KEY.
func TestServeUnsubscribe(t *testing.T) {
	env(t)
	const key = "unsubscribe test key, 32 bytes.."
	port := freePort(t)
	t.Setenv("API_PORT", strconv.Itoa(port))
	t.Setenv("SECRET_KEY", key)
	base := "http://127.0.0.1:" + strconv.Itoa(port)
	// The token of user 1, the first to register, as the alerts job makes
	// it; the service needs no database for that.
	tokens, err := alert.New(nil, alert.Config{Secret: []byte(key), PublicAPIURL: base})
	if err != nil {
		t.Fatal(err)
	}
	serveWhile(t, base, func() {
		body := post(t, base, "", register("alerts@example.com"))
		_, rest, ok := strings.Cut(string(body), `"accessToken":"`)
		access, _, _ := strings.Cut(rest, `"`)
		if !ok {
			t.Fatalf("register = %s", body)
		}
		emailAlerts := func() string {
			return string(post(t, base, access, `{ me { preferences { emailAlerts } } }`))
		}
		if got := emailAlerts(); !strings.Contains(got, `"emailAlerts":true`) {
			t.Fatalf("me before = %s, want alerts on", got)
		}
		unsubscribe := func(method, url string) int {
			req, _ := http.NewRequest(method, url, strings.NewReader("List-Unsubscribe=One-Click"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s %s: %v", method, url, err)
			}
			resp.Body.Close()
			return resp.StatusCode
		}
		link := tokens.UnsubscribeURL(1)
		if code := unsubscribe(http.MethodGet, link); code != http.StatusOK {
			t.Errorf("GET the link = %d, want 200", code)
		}
		if code := unsubscribe(http.MethodPost, base+"/unsubscribe?token=forged"); code != http.StatusBadRequest {
			t.Errorf("POST a forged token = %d, want 400", code)
		}
		if got := emailAlerts(); !strings.Contains(got, `"emailAlerts":true`) {
			t.Fatalf("me after a GET and a forged POST = %s, want alerts on", got)
		}
		if code := unsubscribe(http.MethodPost, link); code != http.StatusOK {
			t.Errorf("POST the link = %d, want 200", code)
		}
		if got := emailAlerts(); !strings.Contains(got, `"emailAlerts":false`) {
			t.Errorf("me after the one-click POST = %s, want alerts off", got)
		}
	})
}
