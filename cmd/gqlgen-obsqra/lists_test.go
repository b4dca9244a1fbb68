package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestListsTemplateFollowsGqlgen checks that lists.gotpl is the type.gotpl of
// the gqlgen in go.mod with only the list marshalling changed, so that a
// gqlgen upgrade cannot leave the list functions generated from an old
// template beside the rest generated from a new one.
func TestListsTemplateFollowsGqlgen(t *testing.T) {
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/99designs/gqlgen").Output()
	if err != nil {
		t.Fatalf("locate gqlgen: %v", err)
	}
	upstream, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "codegen", "type.gotpl"))
	if err != nil {
		t.Fatalf("read gqlgen's type.gotpl: %v", err)
	}
	const (
		concurrent = "ret := graphql.MarshalSliceConcurrently(ctx, len(v), {{ $.Config.Exec.WorkerLimit }}, {{ $.Config.OmitPanicHandler }}, "
		inOrder    = "ret := marshalSliceInOrder(ctx, len(v), {{ $.Config.OmitPanicHandler }}, "
	)
	if n := strings.Count(string(upstream), concurrent); n != 1 {
		t.Fatalf("gqlgen's type.gotpl calls MarshalSliceConcurrently as expected %d times, want 1: update lists.gotpl from it", n)
	}
	want := strings.Replace(string(upstream), concurrent, inOrder, 1)
	got, err := listsTemplateFS.ReadFile("lists.gotpl")
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != want {
		t.Errorf("lists.gotpl differs from gqlgen's type.gotpl by more than the list marshalling: update it from %s", filepath.Join(strings.TrimSpace(string(out)), "codegen", "type.gotpl"))
	}
}
