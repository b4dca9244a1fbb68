package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/obsqra/obsqra/server"
)

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// persisted POSTs an APQ request: query may be empty (hash only).
func (b *testBundle) persisted(t *testing.T, query, hash string, headers ...string) (*httptest.ResponseRecorder, gqlResult) {
	t.Helper()
	body := map[string]any{"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": hash}}}
	if query != "" {
		body["query"] = query
	}
	raw, err := json.Marshal(body)
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/graphql", bytes.NewReader(raw))
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	rec := b.serve(req)
	return rec, decodeResult(t, rec)
}

// persistedGET is the GET form of an APQ request by hash alone.
func persistedGET(hash string) *http.Request {
	ext := `{"persistedQuery":{"version":1,"sha256Hash":"` + hash + `"}}`
	return httpGET("/graphql?extensions=" + url.QueryEscape(ext) + "&variables=" + url.QueryEscape(`{}`))
}

func code(res gqlResult) any {
	if len(res.Errors) == 0 {
		return nil
	}
	return res.Errors[0].Extensions["code"]
}

func TestAutomaticPersistedQueries(t *testing.T) {
	t.Parallel()
	b := setup(t)
	const query = `query Typename { __typename }`
	hash := sha256Hex(query)

	t.Run("unknown hash", func(t *testing.T) {
		_, res := b.persisted(t, "", hash)
		if code(res) != "PERSISTED_QUERY_NOT_FOUND" || res.Errors[0].Message != "PersistedQueryNotFound" {
			t.Fatalf("hash only, unknown = %+v, want PERSISTED_QUERY_NOT_FOUND", res.Errors)
		}
	})
	t.Run("mismatched hash is refused and not registered", func(t *testing.T) {
		other := `{ me { id } }`
		_, res := b.persisted(t, other, sha256Hex(`{ me { email } }`))
		if code(res) != "PERSISTED_QUERY_HASH_MISMATCH" {
			t.Fatalf("mismatched hash = %+v, want PERSISTED_QUERY_HASH_MISMATCH", res.Errors)
		}
		if _, res := b.persisted(t, "", sha256Hex(`{ me { email } }`)); code(res) != "PERSISTED_QUERY_NOT_FOUND" {
			t.Errorf("a mismatched document was registered: %+v", res)
		}
	})
	t.Run("bad version", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(
			`{"extensions":{"persistedQuery":{"version":2,"sha256Hash":"`+hash+`"}}}`))
		req.Header.Set("Content-Type", "application/json")
		if res := decodeResult(t, b.serve(req)); code(res) != "PERSISTED_QUERY_NOT_SUPPORTED" {
			t.Errorf("version 2 = %+v, want PERSISTED_QUERY_NOT_SUPPORTED", res.Errors)
		}
	})
	t.Run("register then hash only", func(t *testing.T) {
		rec, res := b.persisted(t, query, hash)
		noErrors(t, rec, res)
		rec, res = b.persisted(t, "", strings.ToUpper(hash))
		noErrors(t, rec, res)
		if string(res.Data) != `{"__typename":"Query"}` {
			t.Errorf("hash only = %s, want the registered query's answer", res.Data)
		}
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("POST Cache-Control = %q, want no-store", cc)
		}
	})
	t.Run("anonymous GET by hash is public", func(t *testing.T) {
		rec := b.serve(persistedGET(hash))
		noErrors(t, rec, decodeResult(t, rec))
		if cc := rec.Header().Get("Cache-Control"); cc != "public, max-age=5" {
			t.Errorf("anonymous GET Cache-Control = %q, want public, max-age=5", cc)
		}
		if rec.Header().Get("Set-Cookie") != "" {
			t.Errorf("anonymous GET sets a cookie: %q", rec.Header().Get("Set-Cookie"))
		}
	})
	t.Run("GET with Authorization or Cookie is not public", func(t *testing.T) {
		for _, h := range [][2]string{{"Authorization", "Bearer " + goodToken}, {"Cookie", "session=x"}} {
			req := persistedGET(hash)
			req.Header.Set(h[0], h[1])
			rec := b.serve(req)
			noErrors(t, rec, decodeResult(t, rec))
			if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
				t.Errorf("GET with %s: Cache-Control = %q, want no-store", h[0], cc)
			}
		}
	})
	t.Run("GET with the full query or an error is not public", func(t *testing.T) {
		rec := b.serve(httpGET("/graphql?query=" + queryEscape(query)))
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET of a full query: Cache-Control = %q, want no-store", cc)
		}
		rec = b.serve(persistedGET(sha256Hex("{ unknown }")))
		if cc := rec.Header().Get("Cache-Control"); cc != "no-store" {
			t.Errorf("GET of an unknown hash: Cache-Control = %q, want no-store", cc)
		}
		failing := `{ node(id: "x") { id } }`
		b.persisted(t, failing, sha256Hex(failing))
		rec = b.serve(persistedGET(sha256Hex(failing)))
		if res := decodeResult(t, rec); len(res.Errors) == 0 || rec.Header().Get("Cache-Control") != "no-store" {
			t.Errorf("GET of a failing query: %s Cache-Control = %q, want an error and no-store", rec.Body, rec.Header().Get("Cache-Control"))
		}
	})
}

const trustedQuery = `query Typename { __typename }`

func writeManifest(t *testing.T, content string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "manifest.json")
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestParseTrustedDocuments(t *testing.T) {
	t.Parallel()
	h := sha256Hex(trustedQuery)
	body, _ := json.Marshal(trustedQuery)
	tests := []struct {
		name, manifest string
		wantErr        string // "" for a manifest that loads
	}{
		{"apollo", `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + h + `","name":"Typename","type":"query","body":` + string(body) + `}]}`, ""},
		{"codegen", `{"` + h + `":` + string(body) + `}`, ""},
		{"codegen sha256: prefix", `{"sha256:` + h + `":` + string(body) + `}`, ""},
		{"not JSON", `{"`, "not a JSON object"},
		{"apollo wrong hash", `{"format":"apollo-persisted-query-manifest","version":1,"operations":[{"id":"` + sha256Hex("x") + `","name":"Typename","body":` + string(body) + `}]}`, "operation Typename"},
		{"apollo other version", `{"format":"apollo-persisted-query-manifest","version":2,"operations":[]}`, "version 1"},
		{"codegen wrong hash", `{"abc":` + string(body) + `}`, "not the SHA-256"},
		{"codegen not a string", `{"` + h + `":1}`, "not a string"},
	}
	for _, tc := range tests {
		d, err := server.LoadTrustedDocuments(writeManifest(t, tc.manifest))
		switch {
		case tc.wantErr == "" && (err != nil || d.Len() != 1):
			t.Errorf("%s: LoadTrustedDocuments = %v, %v; want one document", tc.name, d.Len(), err)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: LoadTrustedDocuments error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
	if _, err := server.LoadTrustedDocuments(filepath.Join(t.TempDir(), "missing.json")); err == nil {
		t.Error("LoadTrustedDocuments(missing file) = nil error")
	}
}

// TestTrustedDocumentsOperationNames: the names of the manifest's
// operations, each once, sorted; anonymous operations and documents that
// do not parse name none.
func TestTrustedDocumentsOperationNames(t *testing.T) {
	t.Parallel()
	manifest := map[string]string{}
	for _, doc := range []string{
		`query Dashboard { me { id } } mutation Login { logout }`,
		`query Dashboard($x: ID) { node(id: $x) { id } }`,
		`{ me { id } }`,
		`query Broken {`,
		`subscription Ticks { ticks }`,
	} {
		manifest[sha256Hex(doc)] = doc
	}
	b, _ := json.Marshal(manifest)
	d, err := server.ParseTrustedDocuments(b)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := d.OperationNames(), []string{"Dashboard", "Login", "Ticks"}; !slices.Equal(got, want) {
		t.Errorf("OperationNames() = %q, want %q", got, want)
	}
	if got := (*server.TrustedDocuments)(nil).OperationNames(); got != nil {
		t.Errorf("OperationNames() of no manifest = %q, want none", got)
	}
}

func TestTrustedDocuments(t *testing.T) {
	t.Parallel()
	h := sha256Hex(trustedQuery)
	docs, err := server.ParseTrustedDocuments([]byte(`{"sha256:` + h + `":"` + trustedQuery + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	for _, only := range []bool{false, true} {
		b := setup(t, func(c *server.Config) { c.TrustedDocuments, c.TrustedDocumentsOnly = docs, only })
		// A trusted document runs by hash alone, without being registered.
		rec, res := b.persisted(t, "", h)
		noErrors(t, rec, res)
		// And in full.
		rec, res = b.graphQL(t, trustedQuery, nil)
		noErrors(t, rec, res)

		other := `{ me { id } }`
		_, res = b.graphQL(t, other, nil)
		_, apq := b.persisted(t, other, sha256Hex(other))
		if only {
			if code(res) != "PERSISTED_QUERY_NOT_TRUSTED" || code(apq) != "PERSISTED_QUERY_NOT_TRUSTED" {
				t.Errorf("trusted only: another document = %+v and by APQ %+v, want PERSISTED_QUERY_NOT_TRUSTED", res.Errors, apq.Errors)
			}
			if _, res := b.persisted(t, "", sha256Hex(other)); code(res) != "PERSISTED_QUERY_NOT_FOUND" {
				t.Errorf("trusted only: an untrusted hash = %+v, want PERSISTED_QUERY_NOT_FOUND", res.Errors)
			}
		} else if code(res) == "PERSISTED_QUERY_NOT_TRUSTED" || code(apq) == "PERSISTED_QUERY_NOT_TRUSTED" {
			t.Errorf("not trusted only: another document refused: %+v %+v", res.Errors, apq.Errors)
		}
	}
}

// TestTrustedDocumentsOnlyWebSocket: a WebSocket runs trusted documents,
// by hash alone too, and refuses any other like HTTP does.
func TestTrustedDocumentsOnlyWebSocket(t *testing.T) {
	t.Parallel()
	const trusted = `query Who { whoami }`
	docs, err := server.ParseTrustedDocuments([]byte(`{"` + sha256Hex(trusted) + `":"` + trusted + `"}`))
	if err != nil {
		t.Fatal(err)
	}
	b := setupWS(t, func(c *server.Config) { c.TrustedDocuments, c.TrustedDocumentsOnly = docs, true })
	c := b.dial(t, "graphql-transport-ws")
	c.init(nil)

	c.send(map[string]any{"id": "h", "type": "subscribe", "payload": map[string]any{
		"extensions": map[string]any{"persistedQuery": map[string]any{"version": 1, "sha256Hash": sha256Hex(trusted)}},
	}})
	if m := c.expect("next", "h", ""); !strings.Contains(string(m.Payload), "whoami") {
		t.Errorf("trusted document by hash = %s, want its data", m.Payload)
	}
	c.expect("complete", "h", "")

	c.subscribe("u", `{ role }`, nil)
	if errs := wsErrors(t, c.expect("error", "u", "")); errs[0].Extensions["code"] != "PERSISTED_QUERY_NOT_TRUSTED" {
		t.Errorf("untrusted document over WebSocket = %+v, want PERSISTED_QUERY_NOT_TRUSTED", errs)
	}
}
