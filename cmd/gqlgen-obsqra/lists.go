package main

import (
	"embed"
	"fmt"
	"path/filepath"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/config"
	"github.com/99designs/gqlgen/codegen/templates"
)

// listsTemplateFS holds lists.gotpl: gqlgen's codegen/type.gotpl (v0.17.98)
// with one change, a list of objects is marshalled by marshalSliceInOrder
// (graph/slice.go) instead of graphql.MarshalSliceConcurrently.
// TestListsTemplateFollowsGqlgen fails when gqlgen's template moves on
// without it.
//
//go:embed lists.gotpl
var listsTemplateFS embed.FS

// listsFile is the file's template: the imports lists.gotpl's code uses,
// as gqlgen's generated!.gotpl reserves them for type.gotpl, then the list
// functions.
const listsFile = `
{{ reserveImport "context" }}
{{ reserveImport "github.com/vektah/gqlparser/v2/ast" }}
{{ reserveImport "github.com/99designs/gqlgen/graphql" }}
{{ template "lists.gotpl" . }}
`

// listsFilename is the file, in the exec package, that holds the marshalling
// and unmarshalling functions of every list type. The trailing underscore,
// as in gqlgen's root_.generated.go, keeps it from colliding with the file
// of a schema named lists.graphqls.
const listsFilename = "lists_.generated.go"

// inOrderLists is a gqlgen plugin that takes every list type out of the
// types gqlgen generates functions for and generates them itself, into
// listsFilename, from lists.gotpl. gqlgen runs a plugin's GenerateCode
// before its own, on the same data, so its files then hold every other type.
type inOrderLists struct{}

// Name implements plugin.Plugin.
func (inOrderLists) Name() string { return "inorderlists" }

// GenerateCode implements plugin.CodeGenerator.
func (inOrderLists) GenerateCode(data *codegen.Data) error {
	lists := map[string]*config.TypeReference{}
	for name, t := range data.ReferencedTypes {
		if t.IsSlice() {
			lists[name] = t
			delete(data.ReferencedTypes, name)
		}
	}
	// The template reads everything else (batch fields, the execution
	// context's receiver) from the whole schema's data, as gqlgen's does.
	d := *data
	d.ReferencedTypes = lists
	err := templates.Render(templates.Options{
		PackageName:     data.Config.Exec.Package,
		Filename:        filepath.Join(data.Config.Exec.Dir(), listsFilename),
		Template:        listsFile,
		TemplateFS:      listsTemplateFS,
		Data:            &d,
		RegionTags:      false,
		GeneratedHeader: true,
		Packages:        data.Config.Packages,
		PruneOptions:    data.Config.GetPruneOptions(),
	})
	if err != nil {
		return fmt.Errorf("render %s: %w", listsFilename, err)
	}
	return nil
}
