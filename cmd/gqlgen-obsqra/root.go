package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing/fstest"

	"github.com/99designs/gqlgen/codegen"
	"github.com/99designs/gqlgen/codegen/templates"
)

// rootFilename is the file, in the exec package, that gqlgen renders from
// its root templates (api!.gotpl, internal!.gotpl and directives_.gotpl):
// the executable schema, its Exec, and the execution context.
const rootFilename = "root_.generated.go"

// rootTemplate is the template of Exec and of the execution context, which
// rootPatches patch.
const rootTemplate = "internal!.gotpl"

// rootTemplates are gqlgen's root templates, read from the gqlgen in
// go.mod and rendered together as gqlgen renders them.
var rootTemplates = []string{"api!.gotpl", rootTemplate, "directives_.gotpl"}

// templatePatch replaces the one line of a template whose text (trimmed) is
// line with with. The generated code is gofmt'ed, so indentation in with
// does not matter.
type templatePatch struct {
	line, with string
}

// deferredWaitPatches make the query handler of gqlgen's Exec (v0.17.98)
// wait for a deferred result only while the result can still come.
//
// gqlgen's handler receives `result := <-ec.DeferredResults` unconditionally,
// but ProcessDeferredGroup drops a result instead of sending it once the
// context its fields were resolved under is done (the client went away, the
// request's deadline passed): the goroutine calling the handler then waits
// forever, one per cancelled deferred request, holding the request's
// memory. The patched handler selects on that context too (the one of its
// first call, under which every deferred field is resolved) and on the
// calling context, and ends the results (returns nil) when either is done.
var deferredWaitPatches = []templatePatch{
	{
		line: `{{- if .QueryRoot }} case ast.Query:`,
		with: `{{- if .QueryRoot }} case ast.Query:
		// deferredDone is the done channel of the first call's context,
		// under which every deferred field is resolved, so that a wait for a
		// deferred result ends when ProcessDeferredGroup drops the result
		// (it does once that context is done). Patched in by
		// cmd/gqlgen-obsqra (root.go).
		var deferredDone <-chan struct{}`,
	},
	{
		line: `var data graphql.Marshaler`,
		with: `var data graphql.Marshaler
			if first {
				deferredDone = ctx.Done()
			}`,
	},
	{
		line: `result := <-ec.DeferredResults`,
		with: `var result graphql.DeferredResult
					select {
					case result = <-ec.DeferredResults:
					case <-deferredDone:
						return nil
					case <-ctx.Done():
						return nil
					}`,
	},
}

// deferredFieldPatches make the query handler leave out of each result the
// fields gqlgen deferred, which it writes as null there, as the @defer draft
// that Apollo Client reads has them: absent until their increment (see
// deferredFields in graph/deferred.go). The execution context records each
// deferred group, in a ProcessDeferredGroup of its own that the generated
// objects' code calls in place of gqlgen's, which it then calls.
var deferredFieldPatches = []templatePatch{
	{
		line: `type executionContext struct {`,
		with: `// ProcessDeferredGroup records the fields of dg, which the query handler
// leaves out of the result that holds their object (graph/deferred.go), and
// processes dg as gqlgen does. Patched in by cmd/gqlgen-obsqra (root.go).
func (ec *executionContext) ProcessDeferredGroup(dg graphql.DeferredGroup) {
	ec.deferred.record(dg)
	ec.ExecutionContextState.ProcessDeferredGroup(dg)
}

type executionContext struct {`,
	},
	{
		line: `*graphql.ExecutionContextState[ResolverRoot, DirectiveRoot, ComplexityRoot]`,
		with: `*graphql.ExecutionContextState[ResolverRoot, DirectiveRoot, ComplexityRoot]
	// deferred are the fields gqlgen deferred, by their object's path.
	deferred deferredFields`,
	},
	{
		line: `response.Data = buf.Bytes()`,
		with: `response.Data = ec.deferred.omit(buf.Bytes(), response.Path)`,
	},
}

// rootPatches are every patch of rootTemplate.
var rootPatches = append(append([]templatePatch(nil), deferredWaitPatches...), deferredFieldPatches...)

// deferRoot is a gqlgen plugin that regenerates rootFilename from gqlgen's
// root templates with rootPatches applied, so that @defer delivers: the
// query handler waits for a deferred result only while it can come
// (deferredWaitPatches), and leaves deferred fields out of the results
// that hold their objects (deferredFieldPatches). gqlgen renders its own
// files after every plugin's GenerateCode and has no option to replace a
// template, so the plugin keeps the data it is given and render writes the
// file again once gqlgen is done.
type deferRoot struct {
	data *codegen.Data
}

// Name implements plugin.Plugin.
func (*deferRoot) Name() string { return "deferroot" }

// GenerateCode implements plugin.CodeGenerator: it keeps data, the same
// that gqlgen renders its root file from next.
func (p *deferRoot) GenerateCode(data *codegen.Data) error {
	p.data = data
	return nil
}

// render writes rootFilename over gqlgen's, from the patched templates, with
// the options gqlgen's own root file is rendered with.
func (p *deferRoot) render() error {
	if p.data == nil {
		return fmt.Errorf("%s: gqlgen did not call the plugin", p.Name())
	}
	files, err := patchedRootTemplates()
	if err != nil {
		return err
	}
	cfg := p.data.Config
	err = templates.Render(templates.Options{
		PackageName: cfg.Exec.Package,
		Filename:    filepath.Join(cfg.Exec.Dir(), rootFilename),
		// An in-memory file system of the three templates: Render executes
		// the "!" ones in name order and takes named templates from the
		// rest, as it does for gqlgen's embedded copies.
		TemplateFS:      files,
		Data:            p.data,
		RegionTags:      false,
		GeneratedHeader: true,
		Packages:        cfg.Packages,
		PruneOptions:    cfg.GetPruneOptions(),
	})
	if err != nil {
		return fmt.Errorf("render %s: %w", rootFilename, err)
	}
	return nil
}

// patchedRootTemplates reads gqlgen's root templates and patches Exec's.
func patchedRootTemplates() (fstest.MapFS, error) {
	dir, err := gqlgenCodegenDir()
	if err != nil {
		return nil, err
	}
	files := fstest.MapFS{}
	for _, name := range rootTemplates {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("read gqlgen's %s: %w", name, err)
		}
		text := string(b)
		if name == rootTemplate {
			if text, err = patch(text, rootPatches); err != nil {
				return nil, fmt.Errorf("patch gqlgen's %s (%s): %w", name, dir, err)
			}
		}
		files[name] = &fstest.MapFile{Data: []byte(text), Mode: 0o444}
	}
	return files, nil
}

// gqlgenCodegenDir is the directory of the gqlgen codegen package that
// go.mod requires, which holds its templates.
func gqlgenCodegenDir() (string, error) {
	out, err := exec.Command("go", "list", "-f", "{{.Dir}}", "github.com/99designs/gqlgen/codegen").Output()
	if err != nil {
		return "", fmt.Errorf("locate gqlgen's codegen package: %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// patch applies patches to text. Each patch's line must be exactly one line
// of text: a gqlgen upgrade that changes the code around it fails the
// generation instead of leaving the handler unpatched.
func patch(text string, patches []templatePatch) (string, error) {
	lines := strings.SplitAfter(text, "\n")
	for _, p := range patches {
		at := -1
		for i, l := range lines {
			if strings.TrimSpace(l) != p.line {
				continue
			}
			if at >= 0 {
				return "", fmt.Errorf("line %q is there more than once: update rootPatches", p.line)
			}
			at = i
		}
		if at < 0 {
			return "", fmt.Errorf("line %q is not there: update rootPatches", p.line)
		}
		lines[at] = p.with + "\n"
	}
	return strings.Join(lines, ""), nil
}
