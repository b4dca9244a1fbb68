package main

import (
	"strings"
	"testing"
)

// TestRootPatchesApply checks that rootPatches apply to the internal!.gotpl
// of the gqlgen in go.mod, taking out its unbounded wait and putting in the
// record of deferred fields, so that a gqlgen upgrade that moves the code
// fails here before it fails `make generate`.
func TestRootPatchesApply(t *testing.T) {
	files, err := patchedRootTemplates()
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range rootTemplates {
		if files[name] == nil {
			t.Fatalf("%s is not among the root templates", name)
		}
	}
	got := string(files[rootTemplate].Data)
	if strings.Contains(got, "result := <-ec.DeferredResults") {
		t.Errorf("the patched %s still waits for a deferred result unconditionally", rootTemplate)
	}
	for _, want := range []string{
		"case <-deferredDone:", "deferredDone = ctx.Done()", "var deferredDone <-chan struct{}",
		"ec.deferred.record(dg)", "deferred deferredFields", "response.Data = ec.deferred.omit(buf.Bytes(), response.Path)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("the patched %s lacks %q", rootTemplate, want)
		}
	}
}

func TestPatch(t *testing.T) {
	patches := []templatePatch{{line: "b", with: "B1\nB2"}}
	for _, tt := range []struct {
		name, text, want, err string
	}{
		{name: "one line", text: "a\n  b \nc\n", want: "a\nB1\nB2\nc\n"},
		{name: "last line without newline", text: "a\nb", want: "a\nB1\nB2\n"},
		{name: "missing", text: "a\nbb\n", err: `line "b" is not there`},
		{name: "twice", text: "b\na\n\tb\n", err: `line "b" is there more than once`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, err := patch(tt.text, patches)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Errorf("patch(%q) = %q, %v; want error %q", tt.text, got, err, tt.err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("patch(%q) = %q, %v; want %q", tt.text, got, err, tt.want)
			}
		})
	}
}
