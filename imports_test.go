package obsqra_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
)

// module is this module's path.
const module = "github.com/obsqra/obsqra"

// arrows are the packages of the module each package may import, from the
// layout of ../shared/ARCHITECTURE.md, relative to the module ("." is the
// root package, the domain). Test files are not held to them. A package
// missing from the table fails TestImportRules: give it a room in
// ARCHITECTURE.md and in the README's layout, then a row here.
var arrows = map[string][]string{
	".": {},
	// aave, a data-format reader, is not in ARCHITECTURE.md's layout; the
	// README's layout gives it its room: it reads Aave V3 daily rates into
	// ml's series, for the ml commands' backtests and market's CSV import
	// (market → aave is therefore allowed below).
	"aave":                {".", "ml"},
	"account":             {".", "store", "starknet"},
	"alert":               {".", "store"},
	"advisor":             {".", "store", "ml", "decision"},
	"advisor/advisortest": {".", "decision", "market", "store", "obsqratest"},
	"cmd/benchlive":       {"."},
	"cmd/benchread":       {},    // runs the obsqra binaries and reads their database and API
	"cmd/gqlgen-obsqra":   {},    // gqlgen only: the code generator
	"cmd/obsqra":          {"*"}, // only cmd/obsqra sees everything
	"config":              {"."},
	"decision":            {".", "store"},
	"graph":               {".", "graph/scalar"},
	"graph/scalar":        {"."},
	"ledger":              {".", "store", "starknet"},
	// live reads the outbox through a Source it declares, so it needs less
	// than ARCHITECTURE.md allows it (obsqra, store), and keeps it so.
	"live": {"."},
	// mail sends the store's queued mails; go-mail is its SMTP client.
	"mail": {".", "store"},
	// mail/mailtest: the tests' SMTP servers (go-smtp), for mail's tests
	// and the end-to-end mail flows of resolvers'.
	"mail/mailtest": {},
	"market":        {".", "store", "ml", "decision", "aave"},
	"ml":            {"."},
	"ml/mlcli":      {".", "ml", "aave"}, // `obsqra ml`'s drivers; CSVs through aave
	"obsqratest":    {"."},               // the tests' shared helpers: only other …test packages list it
	"portfolio":     {".", "store"},
	// ratelimit is not in ARCHITECTURE.md's layout: the API's cost
	// budgets, shared between instances through the store.
	"ratelimit": {"store"},
	// rest: the original REST API, as thin as resolvers (ARCHITECTURE.md).
	"rest":      {".", "account", "market", "advisor", "portfolio", "ledger"},
	"resolvers": {".", "graph", "account", "market", "decision", "advisor", "portfolio", "ledger", "subscription"},
	"scheduler": {"."},
	// server imports subscription as server/ws does: its event streams
	// (sse.go) run subscriptions too.
	"server":    {".", "server/ws", "server/wire", "subscription", "ratelimit"},
	"server/ws": {".", "subscription", "server/wire"},
	// server/wire is not in ARCHITECTURE.md's layout: what server and
	// server/ws both write by hand.
	"server/wire":           {},
	"starknet":              {"."},
	"starknet/starknettest": {".", "starknet"},
	"store":                 {"."},
	"store/storetest":       {"store"},
	// subscription is not in ARCHITECTURE.md's layout: the protocol between
	// subscription resolvers and the transports that run them (server/ws,
	// and server's event streams), which all import.
	"subscription": {},
	// telemetry is ARCHITECTURE.md's room for metrics. The packages it
	// measures do not import it: each declares the small observer it
	// reports to, which telemetry's recorders satisfy, so it needs only
	// the domain (obsqra.JobOutcome).
	"telemetry": {"."},
	// telemetry/tracing is the traces and error reports of ARCHITECTURE.md's
	// telemetry room: the OpenTelemetry SDK and its OTLP exporter, the
	// hub's tracer, the log handler that adds trace ids, and the Sentry
	// client. server, store and starknet record into the OpenTelemetry
	// API and live into a Tracer it declares, so none of them imports it;
	// it needs only the domain (events, a request's client).
	"telemetry/tracing": {"."},
	// the tests' OTLP collector and Sentry host
	"telemetry/tracing/tracingtest": {},
}

// outside lists, for the packages whose room is closed to the rest of the
// world, the import path prefixes they may import beyond the standard
// library and the module.
var outside = map[string][]string{
	".":    {}, // the domain imports the standard library only
	"ml":   {"gonum.org/v1/gonum/"},
	"live": {},
	// ml/mlcli builds gonum matrices for ml and nothing else
	"ml/mlcli": {"gonum.org/v1/gonum/"},
	// obsqratest imports the domain and the standard library only
	"obsqratest": {},
	// subscription imports the standard library only
	"subscription": {},
	// wire imports the standard library only
	"server/wire": {},
}

// arrow is an import of one package of the module by another, both
// relative to the module.
type arrow struct{ from, to string }

// knownExceptions are the arrows against ARCHITECTURE.md that the code
// has today, each with what it imports for. TestImportRules accepts them
// and fails when one is gone, so the list shrinks with the code.
//
// issue 16: to be removed.
var knownExceptions = map[arrow]string{}

// listed is what TestImportRules reads of `go list -json`.
type listed struct {
	ImportPath string
	Standard   bool
	Imports    []string
	Module     *struct{ Path string }
}

// TestImportRules holds every package of the module to its arrows.
func TestImportRules(t *testing.T) {
	t.Parallel()
	var stderr bytes.Buffer
	cmd := exec.Command("go", "list", "-deps", "-json=ImportPath,Standard,Imports,Module", "./...")
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	standard := map[string]bool{}
	var ours []listed
	for dec := json.NewDecoder(bytes.NewReader(out)); ; {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		standard[p.ImportPath] = p.Standard
		if p.Module != nil && p.Module.Path == module {
			ours = append(ours, p)
		}
	}
	if len(ours) < len(arrows)/2 {
		t.Fatalf("go list found %d packages of %s, want about %d", len(ours), module, len(arrows))
	}

	seen := map[arrow]bool{}
	for _, p := range ours {
		from := relative(p.ImportPath)
		allowed, ok := arrows[from]
		if !ok {
			t.Errorf("package %s has no arrows: give it a room in ARCHITECTURE.md and the README's layout, and a row in arrows", from)
			continue
		}
		for _, imp := range p.Imports {
			switch {
			case imp == module || strings.HasPrefix(imp, module+"/"):
				to := relative(imp)
				a := arrow{from, to}
				if _, known := knownExceptions[a]; known {
					seen[a] = true
					continue
				}
				if !slices.Contains(allowed, to) && !slices.Contains(allowed, "*") {
					t.Errorf("%s imports %s; its arrows (ARCHITECTURE.md, in imports_test.go) are %v", from, to, allowed)
				}
			case standard[imp]:
			default:
				if prefixes, closed := outside[from]; closed && !slices.ContainsFunc(prefixes, func(pre string) bool { return strings.HasPrefix(imp, pre) }) {
					t.Errorf("%s imports %s; beyond the module it may import the standard library and %v", from, imp, prefixes)
				}
			}
		}
	}

	var gone []string
	for a := range knownExceptions {
		if !seen[a] {
			gone = append(gone, a.from+" → "+a.to)
		}
	}
	sort.Strings(gone)
	for _, a := range gone {
		t.Errorf("known exception %s no longer holds: remove it from knownExceptions", a)
	}
}

// relative returns path relative to the module, "." for the module's root.
func relative(path string) string {
	if path == module {
		return "."
	}
	return strings.TrimPrefix(path, module+"/")
}
