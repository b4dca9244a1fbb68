// Command gqlgen-obsqra is `make generate`: gqlgen's generate with gqlgen.yml,
// plus two plugins. inOrderLists marshals every list of objects in order on
// the calling goroutine (see graph/slice.go for why); gqlgen has no option
// for it: its template always calls graphql.MarshalSliceConcurrently, and
// worker_limit only bounds the goroutines it starts. deferRoot (root.go)
// regenerates the root file so that @defer delivers: a query's handler
// stops waiting for a deferred result that will never come, and leaves
// deferred fields out of the results that hold their objects.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"

	"github.com/99designs/gqlgen/api"
	"github.com/99designs/gqlgen/codegen/config"
)

func main() {
	verbose := flag.Bool("v", false, "show gqlgen's logs (notes on binding), hidden by default as gqlgen generate hides them")
	flag.Parse()
	if *verbose {
		log.SetFlags(0)
	} else {
		log.SetOutput(io.Discard)
	}
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "gqlgen-obsqra:", err)
		os.Exit(1)
	}
}

func run() error {
	cfg, err := config.LoadConfig("gqlgen.yml")
	if err != nil {
		return fmt.Errorf("load gqlgen.yml: %w", err)
	}
	root := &deferRoot{}
	if err := api.Generate(cfg, api.AddPlugin(inOrderLists{}), api.AddPlugin(root)); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	if err := root.render(); err != nil {
		return err
	}
	return checkGenerated(cfg.Exec.Dir())
}

// unwanted is code that no generated file may hold, and where to look when
// one does: a gqlgen upgrade that emits it from another template must not
// quietly bring back what the plugins took out.
var unwanted = []struct{ code, see string }{
	// A list marshalled with a goroutine per element.
	{"MarshalSliceConcurrently", "cmd/gqlgen-obsqra/lists.gotpl"},
	// A wait for a deferred result that does not end with its context.
	{"result := <-ec.DeferredResults", "deferredWaitPatches in cmd/gqlgen-obsqra/root.go"},
}

// checkGenerated fails the generation if any generated file holds unwanted
// code.
func checkGenerated(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.generated.go"))
	if err != nil {
		return fmt.Errorf("list generated files: %w", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read generated file: %w", err)
		}
		for _, u := range unwanted {
			if bytes.Contains(b, []byte(u.code)) {
				return fmt.Errorf("%s holds %q; see %s", f, u.code, u.see)
			}
		}
	}
	return nil
}
