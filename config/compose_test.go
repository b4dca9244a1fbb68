package config

import (
	"encoding/json"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
)

// composeFile is what the tests read of compose.yaml.
type composeFile struct {
	Services map[string]struct {
		// Environment is the service's variables in compose's map form
		// (NAME: value), the form compose.yaml uses.
		Environment map[string]string `yaml:"environment"`
		Healthcheck struct {
			Test []string `yaml:"test"`
		} `yaml:"healthcheck"`
	} `yaml:"services"`
}

// readCompose parses ../compose.yaml.
func readCompose(t *testing.T) composeFile {
	t.Helper()
	b, err := os.ReadFile("../compose.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var c composeFile
	if err := yaml.Unmarshal(b, &c); err != nil {
		t.Fatalf("compose.yaml: %v (the server's environment must be a map, NAME: value)", err)
	}
	if _, ok := c.Services["server"]; !ok {
		t.Fatalf("compose.yaml has no service server")
	}
	return c
}

// interpolation finds compose's ${NAME…} interpolations.
var interpolation = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)`)

// TestCompose keeps compose.yaml's server in step with Variables, as
// TestEnvExample keeps .env.example: its environment names every variable
// Load reads and nothing else, and a value that interpolates one of them
// interpolates its own (API_PORT: "${API_PORT:-}", not another's).
func TestCompose(t *testing.T) {
	t.Parallel()
	env := readCompose(t).Services["server"].Environment
	known := make(map[string]bool)
	for _, v := range Variables() {
		known[v.Name] = true
		if _, ok := env[v.Name]; !ok {
			t.Errorf("compose.yaml's server does not set %s; add %s: \"${%s:-}\" (empty: the server's default)", v.Name, v.Name, v.Name)
		}
	}
	for name, value := range env {
		if !known[name] {
			t.Errorf("compose.yaml's server sets %s, which is not in Variables()", name)
		}
		for _, m := range interpolation.FindAllStringSubmatch(value, -1) {
			if known[m[1]] && m[1] != name {
				t.Errorf("compose.yaml's server sets %s from ${%s}", name, m[1])
			}
		}
	}
}

// TestComposeHealthcheck: compose.yaml's server checks its health with the
// command of the Dockerfile's HEALTHCHECK, which scripts/check-container
// runs.
func TestComposeHealthcheck(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.ReplaceAll(string(b), "\\\n", " ")
	var image []string
	for line := range strings.Lines(text) {
		if _, cmd, ok := strings.Cut(line, " CMD "); ok && strings.HasPrefix(line, "HEALTHCHECK ") {
			if err := json.Unmarshal([]byte(cmd), &image); err != nil {
				t.Fatalf("Dockerfile: HEALTHCHECK's CMD is not in exec form: %v", err)
			}
		}
	}
	if len(image) == 0 {
		t.Fatal("Dockerfile has no HEALTHCHECK … CMD")
	}
	want := append([]string{"CMD"}, image...)
	if got := readCompose(t).Services["server"].Healthcheck.Test; !slices.Equal(got, want) {
		t.Errorf("compose.yaml's server healthcheck test = %q, want the Dockerfile's %q", got, want)
	}
}
