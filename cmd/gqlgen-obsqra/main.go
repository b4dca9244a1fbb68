// Command gqlgen-obsqra is `make generate`: gqlgen's generate with gqlgen.yml,
// plus the inOrderLists plugin, so that every list of objects is marshalled
// in order on the calling goroutine (see graph/slice.go for why). gqlgen has
// no option for it: its template always calls graphql.MarshalSliceConcurrently,
// and worker_limit only bounds the goroutines it starts.
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
	if err := api.Generate(cfg, api.AddPlugin(inOrderLists{})); err != nil {
		return fmt.Errorf("generate: %w", err)
	}
	return checkNoConcurrentLists(cfg.Exec.Dir())
}

// checkNoConcurrentLists fails the generation if any generated file still
// marshals a list concurrently: a gqlgen upgrade that emits the call from
// another template must not quietly bring the goroutines back.
func checkNoConcurrentLists(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.generated.go"))
	if err != nil {
		return fmt.Errorf("list generated files: %w", err)
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("read generated file: %w", err)
		}
		if bytes.Contains(b, []byte("MarshalSliceConcurrently")) {
			return fmt.Errorf("%s calls graphql.MarshalSliceConcurrently; see cmd/gqlgen-obsqra/lists.gotpl", f)
		}
	}
	return nil
}
