package server_test

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestGzipIntrospection checks the response gzip is for: the introspection
// result, compressed for a client that accepts gzip and the same once
// decompressed, while a small result and a client without gzip get plain
// JSON.
func TestGzipIntrospection(t *testing.T) {
	t.Parallel()
	b := setup(t)
	post := func(query, acceptEncoding string) *httptest.ResponseRecorder {
		req := httptest.NewRequest(http.MethodPost, "/graphql", strings.NewReader(`{"query":"`+query+`"}`))
		req.Header.Set("Content-Type", "application/json")
		if acceptEncoding != "" {
			req.Header.Set("Accept-Encoding", acceptEncoding)
		}
		return b.serve(req)
	}
	const introspection = "{ __schema { types { name kind description fields { name description args { name } type { name kind ofType { name kind } } } } } }"
	plain := post(introspection, "")
	zipped := post(introspection, "gzip, deflate, br")
	if plain.Code != http.StatusOK || plain.Header().Get("Content-Encoding") != "" || plain.Body.Len() < 10000 {
		t.Fatalf("plain introspection = %d %v, %d bytes", plain.Code, plain.Header(), plain.Body.Len())
	}
	if zipped.Code != http.StatusOK || zipped.Header().Get("Content-Encoding") != "gzip" || zipped.Body.Len() > plain.Body.Len()/4 {
		t.Fatalf("gzip introspection = %d %v, %d bytes of %d", zipped.Code, zipped.Header(), zipped.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(zipped.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(got, plain.Body.Bytes()) {
		t.Errorf("gunzipped introspection differs from the plain one (%v)", err)
	}
	if !strings.HasPrefix(zipped.Header().Get("Content-Type"), "application/") {
		t.Errorf("gzip Content-Type = %q, want JSON's", zipped.Header().Get("Content-Type"))
	}

	small := post("{ __typename }", "gzip")
	if small.Header().Get("Content-Encoding") != "" || small.Body.String() != `{"data":{"__typename":"Query"}}` {
		t.Errorf("small result = %v %s, want it plain", small.Header(), small.Body)
	}
}

// TestGzipLeavesWebSocketsAlone upgrades with Accept-Encoding: gzip, as
// browsers send it.
func TestGzipLeavesWebSocketsAlone(t *testing.T) {
	t.Parallel()
	b := setupWS(t)
	b.dial(t, "graphql-transport-ws", "Accept-Encoding", "gzip, deflate")
}
